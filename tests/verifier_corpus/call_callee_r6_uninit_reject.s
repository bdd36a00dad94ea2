# Callee-saved registers are not passed to a callee: r6 is uninitialised inside it.
# type: socket_filter
mov %r6, 1
call local sub
exit
sub:
mov %r0, %r6
exit
