# XDP: the same check written data_end >= data + 14 (data_end on the left).
# type: xdp
ldxw %r2, [%r1+0]       # data
ldxw %r3, [%r1+4]       # data_end
mov %r4, %r2
add %r4, 14
jge %r3, %r4, ok
mov %r0, 1
exit
ok:
ldxh %r0, [%r2+12]
mov %r0, 2
exit
