# Arithmetic on r10 itself writes it.
# type: socket_filter
add %r10, -8
mov %r0, 0
exit
