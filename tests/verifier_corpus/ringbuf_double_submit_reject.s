# Submitting the same record twice: the reference is gone after the first.
# type: xdp
# map: events ringbuf key=0 value=0 entries=4096
lddw %r1, map:events
mov %r2, 8
mov %r3, 0
call 131
jeq %r0, 0, out
mov %r6, %r0
mov %r1, %r6
mov %r2, 0
call 132
mov %r1, %r6
mov %r2, 0
call 132
out:
mov %r0, 2
exit
