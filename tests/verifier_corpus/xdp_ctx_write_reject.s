# xdp_md fields are read-only.
# type: xdp
stw [%r1+12], 0         # ingress_ifindex
mov %r0, 2
exit
