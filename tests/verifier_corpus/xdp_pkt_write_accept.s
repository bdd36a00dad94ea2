# XDP: packets are writable after the check.
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r4, %r2
add %r4, 6
jgt %r4, %r3, out
stb [%r2+0], 0xff
out:
mov %r0, 2
exit
