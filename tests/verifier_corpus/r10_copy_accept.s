# Copying r10 and moving the copy is fine.
# type: socket_filter
mov %r1, %r10
add %r1, -8
stdw [%r1], 0
mov %r0, 0
exit
