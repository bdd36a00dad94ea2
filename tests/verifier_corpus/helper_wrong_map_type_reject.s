# bpf_ringbuf_reserve wants a ring buffer map; an array map is refused.
# type: xdp
# map: vals array key=4 value=8 entries=4
lddw %r1, map:vals
mov %r2, 8
mov %r3, 0
call 131                # bpf_ringbuf_reserve
jeq %r0, 0, out
mov %r1, %r0
mov %r2, 0
call 132                # bpf_ringbuf_submit
out:
mov %r0, 2
exit
