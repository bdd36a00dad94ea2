# An array lookup with a constant key out of range (16 of 16 entries) may return NULL: unchecked deref.
# type: xdp
# map: counters array key=4 value=8 entries=16
stw [%r10-4], 16
mov %r2, %r10
add %r2, -4
lddw %r1, map:counters
call 1                  # bpf_map_lookup_elem
ldxdw %r1, [%r0+0]
mov %r0, 2
exit
