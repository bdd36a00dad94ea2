# raw program type: multiplying the stack pointer.
# type: raw
mov %r3, %r10
mul %r3, 2
mov %r0, 0
exit
