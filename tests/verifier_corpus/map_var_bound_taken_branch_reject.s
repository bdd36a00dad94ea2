# The access is on the branch where r1 > 7 (the wrong arm).
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1                  # bpf_map_lookup_elem
jeq %r0, 0, out
ldxdw %r1, [%r0+0]
jle %r1, 7, out
add %r0, %r1
ldxb %r2, [%r0+0]
out:
mov %r0, 2
exit
