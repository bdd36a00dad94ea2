# tc: data_end < data + 14 check (data_end on the left), then read.
# type: sched_cls
ldxw %r2, [%r1+76]
ldxw %r3, [%r1+80]
mov %r4, %r2
add %r4, 14
jlt %r3, %r4, out
ldxh %r0, [%r2+12]
out:
mov %r0, 0
exit
