# tc: __sk_buff->data read with no data_end check.
# type: sched_cls
ldxw %r2, [%r1+76]      # data
ldxb %r0, [%r2+0]
mov %r0, 0
exit
