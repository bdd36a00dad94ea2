# bpf_tail_call's first argument must be the context.
# type: xdp
# map: jumps prog_array key=4 value=4 entries=4
mov %r1, %r10
add %r1, -8
lddw %r2, map:jumps
mov %r3, 1
call 12
mov %r0, 2
exit
