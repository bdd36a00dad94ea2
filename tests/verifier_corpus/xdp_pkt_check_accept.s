# XDP: data + 14 > data_end ? drop : read bytes 0..13 (pointer on the left).
# type: xdp
ldxw %r2, [%r1+0]       # data
ldxw %r3, [%r1+4]       # data_end
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, drop
ldxh %r0, [%r2+12]      # EtherType
mov %r0, 2
exit
drop:
mov %r0, 1
exit
