# Caller-saved registers r1-r5 are uninitialised after a helper call.
# type: socket_filter
call 7                  # bpf_get_prandom_u32
mov %r0, %r1
exit
