# The context pointer spilled and filled back is still the context.
# type: socket_filter
stxdw [%r10-8], %r1
mov %r1, 0
ldxdw %r2, [%r10-8]
ldxw %r0, [%r2+0]       # len
mov %r0, 0
exit
