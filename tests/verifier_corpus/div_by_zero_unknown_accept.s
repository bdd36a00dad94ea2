# Division by an unknown value that may be zero.
# type: socket_filter
ldxw %r2, [%r1+0]       # len
mov %r0, 1000
div %r0, %r2
sdiv %r0, %r2
smod %r0, %r2
exit
