# bpf_tail_call needs a program array, not an array map.
# type: xdp
# map: vals array key=4 value=4 entries=4
lddw %r2, map:vals
mov %r3, 1
call 12
mov %r0, 2
exit
