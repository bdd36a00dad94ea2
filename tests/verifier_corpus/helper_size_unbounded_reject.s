# bpf_skb_load_bytes with a length the verifier cannot bound.
# type: sched_cls
ldxw %r4, [%r1+0]       # len: any u32
mov %r2, 0
mov %r3, %r10
add %r3, -16
call 26                 # bpf_skb_load_bytes(skb, off, to, len)
mov %r0, 0
exit
