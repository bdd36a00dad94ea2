# Caller 256 bytes of stack + callee 256 bytes = 512: at the limit.
# type: socket_filter
stdw [%r10-256], 0
call local sub
mov %r0, 0
exit
sub:
stdw [%r10-256], 0
mov %r0, 0
exit
