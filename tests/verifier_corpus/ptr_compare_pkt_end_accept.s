# Comparing a packet pointer with data_end is the normal bounds check.
# type: xdp
ldxw %r2, [%r1+0]
ldxw %r3, [%r1+4]
mov %r0, 2
jge %r2, %r3, out
mov %r0, 1
out:
exit
