# r10 points one past the top of the stack: [r10+0] is outside.
# type: socket_filter
stdw [%r10+0], 0
mov %r0, 0
exit
