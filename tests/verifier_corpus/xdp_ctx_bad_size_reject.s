# xdp_md->data is a u32: an 8-byte read is refused.
# type: xdp
ldxdw %r0, [%r1+0]
mov %r0, 2
exit
