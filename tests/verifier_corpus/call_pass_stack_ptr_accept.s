# A pointer into the caller's stack passed to the callee, which writes through it.
# type: socket_filter
mov %r1, %r10
add %r1, -8
call local sub
ldxdw %r0, [%r10-8]
exit
sub:
stdw [%r1+0], 3
mov %r0, 0
exit
