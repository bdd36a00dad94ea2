# A cgroup_skb ingress program returning 0 or 1 (r0 & 1).
# type: cgroup_skb
# attach: cgroup_inet_ingress
ldxw %r0, [%r1+0]       # len
and %r0, 1
exit
