# __sk_buff->len is a u32: an 8-byte read is refused.
# type: sched_cls
ldxdw %r0, [%r1+0]
mov %r0, 0
exit
