# A map value pointer spilled to the stack and filled back keeps its type.
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1
jeq %r0, 0, out
stxdw [%r10-16], %r0
mov %r0, 0
ldxdw %r1, [%r10-16]
ldxdw %r2, [%r1+0]
out:
mov %r0, 2
exit
