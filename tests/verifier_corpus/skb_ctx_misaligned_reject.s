# A 4-byte read straddling two __sk_buff fields (offset 2).
# type: sched_cls
ldxw %r0, [%r1+2]
mov %r0, 0
exit
