# Division by the immediate 0 is refused when the program is loaded.
# type: socket_filter
mov %r0, 10
div %r0, 0
exit
