# XDP: reading data_meta without comparing it with data.
# type: xdp
ldxw %r2, [%r1+8]       # data_meta
ldxw %r0, [%r2+0]
mov %r0, 2
exit
