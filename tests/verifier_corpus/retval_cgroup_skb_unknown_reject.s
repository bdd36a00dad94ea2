# A cgroup_skb ingress program returning an unbounded value.
# type: cgroup_skb
# attach: cgroup_inet_ingress
ldxw %r0, [%r1+0]       # len
exit
