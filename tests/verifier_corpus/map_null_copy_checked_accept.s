# A copy of the result is checked; the check applies to the original too (same id).
# type: xdp
# map: counters hash key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:counters
call 1                  # bpf_map_lookup_elem
mov %r6, %r0
jeq %r6, 0, out
ldxdw %r1, [%r0+0]
out:
mov %r0, 2
exit
