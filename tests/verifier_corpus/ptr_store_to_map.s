# Storing a pointer into a map value leaks an address (allowed only when privileged).
# type: socket_filter
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r6, %r1
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1
jeq %r0, 0, out
stxdw [%r0+0], %r6
out:
mov %r0, 0
exit
