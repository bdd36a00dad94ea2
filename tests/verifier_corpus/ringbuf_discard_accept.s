# Reserve then discard on one path, submit on the other.
# type: xdp
# map: events ringbuf key=0 value=0 entries=4096
ldxw %r6, [%r1+12]
lddw %r1, map:events
mov %r2, 8
mov %r3, 0
call 131
jeq %r0, 0, out
mov %r1, %r0
mov %r2, 0
jeq %r6, 1, discard
call 132                # bpf_ringbuf_submit
ja out
discard:
call 133                # bpf_ringbuf_discard
out:
mov %r0, 2
exit
