# A reserved record never submitted nor discarded: the reference leaks at exit.
# type: xdp
# map: events ringbuf key=0 value=0 entries=4096
lddw %r1, map:events
mov %r2, 16
mov %r3, 0
call 131
jeq %r0, 0, out
stdw [%r0+0], 1
out:
mov %r0, 2
exit
