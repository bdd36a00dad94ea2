# Half of a spilled pointer overwritten by a constant: the fill is no longer a pointer.
# type: socket_filter
stxdw [%r10-8], %r1     # spill ctx
stw [%r10-8], 0
ldxdw %r2, [%r10-8]
ldxw %r0, [%r2+0]
mov %r0, 0
exit
