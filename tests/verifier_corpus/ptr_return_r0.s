# Returning a pointer in r0 leaks an address (allowed only when privileged).
# type: socket_filter
mov %r0, %r1
exit
