# Only 4 of the 8 key bytes were written (readable by helpers only when privileged).
# type: socket_filter
# map: flows hash key=8 value=8 entries=16
stw [%r10-8], 0
mov %r2, %r10
add %r2, -8
lddw %r1, map:flows
call 1
mov %r0, 0
exit
