# XDP: 14 bytes checked, a 2-byte read at offset 13 runs one byte past them.
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 14
jgt %r4, %r3, drop
ldxh %r0, [%r2+13]
mov %r0, 2
exit
drop:
mov %r0, 1
exit
