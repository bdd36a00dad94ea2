# The key's stack bytes were never written (readable by helpers only when privileged).
# type: socket_filter
# map: flows hash key=8 value=8 entries=16
mov %r2, %r10
add %r2, -8
lddw %r1, map:flows
call 1
mov %r0, 0
exit
