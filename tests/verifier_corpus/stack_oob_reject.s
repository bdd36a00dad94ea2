# The stack is 512 bytes: r10-520 is below it.
# type: socket_filter
stdw [%r10-520], 0
mov %r0, 0
exit
