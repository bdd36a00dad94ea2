# exit with r0 never written.
# type: socket_filter
mov %r1, 0
exit
