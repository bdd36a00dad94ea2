# xdp_md is 24 bytes: offset 24 is past its end.
# type: xdp
ldxw %r0, [%r1+24]
mov %r0, 2
exit
