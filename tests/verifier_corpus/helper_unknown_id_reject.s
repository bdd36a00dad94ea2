# A helper id no kernel defines.
# type: socket_filter
call 100000
mov %r0, 0
exit
