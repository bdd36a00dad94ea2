# Privileged: even a 4-byte store of a pointer into a map value is accepted (the map holds a scalar).
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r6, %r1
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1
jeq %r0, 0, out
stxw [%r0+0], %r6
out:
mov %r0, 2
exit
