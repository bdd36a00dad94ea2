# An array lookup with a key the verifier cannot bound may return NULL: unchecked deref.
# type: xdp
# map: counters array key=4 value=8 entries=16
ldxw %r3, [%r1+16]      # rx_queue_index
stxw [%r10-4], %r3
mov %r2, %r10
add %r2, -4
lddw %r1, map:counters
call 1                  # bpf_map_lookup_elem
ldxdw %r1, [%r0+0]
mov %r0, 2
exit
