# bpf_skb_store_bytes cannot be called from a socket filter.
# type: socket_filter
mov %r2, 0
stdw [%r10-8], 0
mov %r3, %r10
add %r3, -8
mov %r4, 8
mov %r5, 0
call 9                  # bpf_skb_store_bytes
mov %r0, 0
exit
