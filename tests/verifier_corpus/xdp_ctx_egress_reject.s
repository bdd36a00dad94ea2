# xdp_md->egress_ifindex is readable only by devmap programs (expected attach type).
# type: xdp
ldxw %r4, [%r1+20]
mov %r0, 2
exit
