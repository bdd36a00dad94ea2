# bpf_xdp_adjust_head from an XDP program.
# type: xdp
mov %r2, 4
call 44                 # bpf_xdp_adjust_head
mov %r0, 2
exit
