# Reading a stack slot that was never written (allowed for a privileged load only).
# type: socket_filter
ldxdw %r0, [%r10-8]
mov %r0, 0
exit
