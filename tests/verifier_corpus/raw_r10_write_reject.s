# raw program type: the frame pointer is read-only.
# type: raw
mov %r10, %r1
mov %r0, 0
exit
