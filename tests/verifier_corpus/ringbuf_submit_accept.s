# Reserve a ring buffer record, fill it, submit it.
# type: xdp
# map: events ringbuf key=0 value=0 entries=4096
lddw %r1, map:events
mov %r2, 16
mov %r3, 0
call 131                # bpf_ringbuf_reserve
jeq %r0, 0, out
stdw [%r0+0], 1
stdw [%r0+8], 2
mov %r1, %r0
mov %r2, 0
call 132                # bpf_ringbuf_submit
out:
mov %r0, 2
exit
