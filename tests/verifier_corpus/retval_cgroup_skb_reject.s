# A cgroup_skb ingress program must return 0 or 1; it returns 2.
# type: cgroup_skb
# attach: cgroup_inet_ingress
mov %r0, 2
exit
