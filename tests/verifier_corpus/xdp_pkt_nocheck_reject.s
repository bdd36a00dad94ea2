# XDP: packet read with no comparison against data_end.
# type: xdp
ldxw %r2, [%r1+0]       # data
ldxb %r0, [%r2+0]
mov %r0, 2
exit
