# Caller 512 bytes + callee 16 bytes: the combined stack exceeds 512.
# type: socket_filter
stdw [%r10-512], 0
call local sub
mov %r0, 0
exit
sub:
stdw [%r10-16], 0
mov %r0, 0
exit
