# A scalar where the key pointer belongs.
# type: xdp
# map: flows hash key=8 value=8 entries=16
mov %r2, 0
lddw %r1, map:flows
call 1
mov %r0, 2
exit
