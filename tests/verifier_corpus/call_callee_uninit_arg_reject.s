# The callee reads r2, which the caller never set.
# type: socket_filter
mov %r1, 1
call local sub
exit
sub:
mov %r0, %r2
exit
