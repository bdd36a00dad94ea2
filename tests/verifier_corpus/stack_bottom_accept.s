# The lowest and highest 8-byte slots of the stack.
# type: socket_filter
stdw [%r10-512], 1
stdw [%r10-8], 2
ldxdw %r0, [%r10-512]
ldxdw %r1, [%r10-8]
mov %r0, 0
exit
