# Adding a constant to a stack pointer, then using it.
# type: socket_filter
mov %r2, %r10
add %r2, -16
stdw [%r2+8], 1
ldxdw %r0, [%r2+8]
exit
