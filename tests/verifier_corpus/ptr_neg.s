# Negating a pointer (allowed only when privileged: the result is an unknown scalar).
# type: socket_filter
mov %r2, %r10
neg %r2
mov %r0, 0
exit
