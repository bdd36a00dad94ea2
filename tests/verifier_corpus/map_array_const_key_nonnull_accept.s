# An array lookup with a constant in-range key cannot fail: the kernel types r0 map_value (no NULL check needed).
# type: xdp
# map: counters array key=4 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:counters
call 1                  # bpf_map_lookup_elem
ldxdw %r1, [%r0+0]
mov %r0, 2
exit
