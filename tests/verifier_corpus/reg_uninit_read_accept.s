# The same move after r5 is written.
# type: socket_filter
mov %r5, 7
mov %r0, %r5
exit
