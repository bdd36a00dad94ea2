# The hash map's key is 8 bytes; the key pointer r10-4 leaves only 4 bytes of stack.
# type: xdp
# map: flows hash key=8 value=8 entries=16
stw [%r10-4], 0
mov %r2, %r10
add %r2, -4
lddw %r1, map:flows
call 1
mov %r0, 2
exit
