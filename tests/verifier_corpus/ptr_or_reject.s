# Bitwise operations on a pointer are prohibited.
# type: socket_filter
mov %r2, %r10
or %r2, 1
mov %r0, 0
exit
