# bpf_xdp_adjust_head is an XDP helper: a tc program may not call it.
# type: sched_cls
mov %r2, 4
call 44                 # bpf_xdp_adjust_head
mov %r0, 0
exit
