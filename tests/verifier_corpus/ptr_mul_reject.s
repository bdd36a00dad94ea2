# Multiplying a pointer is prohibited.
# type: socket_filter
mov %r2, %r10
mul %r2, %r2
mov %r0, 0
exit
