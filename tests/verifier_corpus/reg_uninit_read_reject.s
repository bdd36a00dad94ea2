# Reading a register that was never written: r5 holds nothing at entry.
# type: socket_filter
mov %r0, %r5
exit
