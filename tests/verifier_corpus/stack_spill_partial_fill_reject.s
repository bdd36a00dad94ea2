# Filling 4 bytes of a spilled pointer gives a scalar, which cannot be dereferenced.
# type: socket_filter
stxdw [%r10-8], %r1     # spill ctx
ldxw %r2, [%r10-8]
ldxw %r0, [%r2+0]
mov %r0, 0
exit
