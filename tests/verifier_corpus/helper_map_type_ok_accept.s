# bpf_map_update_elem on an array map with a key and value of the map's sizes.
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 1
stdw [%r10-16], 42
mov %r2, %r10
add %r2, -4
mov %r3, %r10
add %r3, -16
mov %r4, 0
lddw %r1, map:vals
call 2                  # bpf_map_update_elem
mov %r0, 2
exit
