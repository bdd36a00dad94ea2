# len bounded by 32, but the buffer on the stack is 16 bytes.
# type: sched_cls
ldxw %r4, [%r1+0]
jgt %r4, 32, out
jeq %r4, 0, out
mov %r2, 0
mov %r3, %r10
add %r3, -16
call 26                 # bpf_skb_load_bytes(skb, off, to, len)
out:
mov %r0, 0
exit
