# Stack accesses must be aligned to their size: 8 bytes at r10-5.
# type: socket_filter
stdw [%r10-13], 0
mov %r0, 0
exit
