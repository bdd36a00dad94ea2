# A bpf-to-bpf call: the callee has its own frame and returns in r0.
# type: socket_filter
mov %r1, 20
call local add_one
exit
add_one:
stdw [%r10-8], 1
ldxdw %r0, [%r10-8]
add %r0, %r1
exit
