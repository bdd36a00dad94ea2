# The same call with 1 <= len <= 16, the size of the stack buffer.
# type: sched_cls
ldxw %r4, [%r1+0]       # len: any u32
jgt %r4, 16, out
jeq %r4, 0, out
mov %r2, 0
mov %r3, %r10
add %r3, -16
call 26                 # bpf_skb_load_bytes(skb, off, to, len)
out:
mov %r0, 0
exit
