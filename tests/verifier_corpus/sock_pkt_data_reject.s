# socket filters have no direct packet access: __sk_buff->data is not readable.
# type: socket_filter
ldxw %r2, [%r1+76]
mov %r0, 0
exit
