# The loop condition is always true (r0 stays 0): an infinite loop.
# type: socket_filter
mov %r0, 0
loop:
jne %r0, 1, loop
exit
