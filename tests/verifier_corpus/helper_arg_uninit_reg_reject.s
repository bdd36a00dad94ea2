# bpf_map_lookup_elem called with r2 (the key pointer) never set.
# type: xdp
# map: flows hash key=8 value=8 entries=16
lddw %r1, map:flows
call 1
mov %r0, 2
exit
