# Same shape as loop_infinite_cond_reject.s, but r0 changes and reaches the exit value.
# type: socket_filter
mov %r0, 0
loop:
add %r0, 1
jne %r0, 1, loop
exit
