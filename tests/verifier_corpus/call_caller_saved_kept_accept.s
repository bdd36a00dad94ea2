# r6-r9 of the caller survive a bpf-to-bpf call.
# type: socket_filter
mov %r6, 5
call local sub
add %r0, %r6
exit
sub:
mov %r6, 9
mov %r0, %r6
exit
