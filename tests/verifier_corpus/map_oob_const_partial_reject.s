# Constant offset whose last byte is past the value.
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1                  # bpf_map_lookup_elem
jeq %r0, 0, out
ldxw %r1, [%r0+6]
out:
mov %r0, 2
exit
