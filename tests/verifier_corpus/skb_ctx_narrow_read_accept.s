# Narrow (1- and 2-byte) reads of __sk_buff fields are allowed.
# type: sched_cls
ldxb %r2, [%r1+0]       # len, low byte
ldxh %r3, [%r1+16]      # protocol
mov %r0, 0
exit
