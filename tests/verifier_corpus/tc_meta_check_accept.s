# tc: data_meta + 4 <= data, then read the metadata.
# type: sched_cls
ldxw %r2, [%r1+140]     # data_meta
ldxw %r3, [%r1+76]      # data
mov %r4, %r2
add %r4, 4
jgt %r4, %r3, out
ldxw %r0, [%r2+0]
out:
mov %r0, 0
exit
