# XDP: the read is on the arm where data + 14 > data_end.
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jle %r4, %r3, out
ldxb %r0, [%r2+0]
out:
mov %r0, 2
exit
