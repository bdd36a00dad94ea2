# An 8-byte key fully written on the stack.
# type: xdp
# map: flows hash key=8 value=8 entries=16
stdw [%r10-8], 0
mov %r2, %r10
add %r2, -8
lddw %r1, map:flows
call 1
mov %r0, 2
exit
