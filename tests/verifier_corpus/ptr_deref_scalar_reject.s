# A scalar used as an address.
# type: socket_filter
mov %r2, 4096
ldxdw %r0, [%r2+0]
exit
