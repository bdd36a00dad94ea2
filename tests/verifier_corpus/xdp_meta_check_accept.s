# XDP: data_meta + 4 <= data makes 4 metadata bytes readable.
# type: xdp
ldxw %r2, [%r1+8]       # data_meta
ldxw %r3, [%r1+0]       # data
mov %r4, %r2
add %r4, 4
jgt %r4, %r3, out
ldxw %r0, [%r2+0]
out:
mov %r0, 2
exit
