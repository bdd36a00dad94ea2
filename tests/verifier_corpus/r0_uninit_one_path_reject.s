# r0 written on one path only: the other reaches exit with r0 uninitialised.
# type: xdp
ldxw %r2, [%r1+12]      # ingress_ifindex
jeq %r2, 1, skip
mov %r0, 2
skip:
exit
