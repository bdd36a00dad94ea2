# bpf_map_lookup_elem cannot look into a program array.
# type: xdp
# map: progs prog_array key=4 value=4 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:progs
call 1
mov %r0, 2
exit
