# jmp32 bound on a zero-extended 32-bit load bounds the whole register.
# type: xdp
# map: vals array key=4 value=8 entries=4
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:vals
call 1                  # bpf_map_lookup_elem
jeq %r0, 0, out
ldxw %r1, [%r0+0]      # upper 32 bits known zero
jgt32 %r1, 7, out
add %r0, %r1
ldxb %r2, [%r0+0]
out:
mov %r0, 2
exit
