# A 16-byte record written at offset 16.
# type: xdp
# map: events ringbuf key=0 value=0 entries=4096
lddw %r1, map:events
mov %r2, 16
mov %r3, 0
call 131
jeq %r0, 0, out
stdw [%r0+16], 1
mov %r1, %r0
mov %r2, 0
call 132
out:
mov %r0, 2
exit
