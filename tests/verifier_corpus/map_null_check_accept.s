# The lookup result checked against 0 before use.
# type: xdp
# map: counters array key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:counters
call 1                  # bpf_map_lookup_elem
jeq %r0, 0, out
ldxdw %r1, [%r0+0]
add %r1, 1
stxdw [%r0+0], %r1
out:
mov %r0, 2
exit
