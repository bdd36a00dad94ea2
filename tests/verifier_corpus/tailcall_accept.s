# bpf_tail_call(ctx, prog_array, index); falls through when the slot is empty.
# type: xdp
# map: jumps prog_array key=4 value=4 entries=4
lddw %r2, map:jumps
mov %r3, 1
call 12                 # bpf_tail_call
mov %r0, 2
exit
