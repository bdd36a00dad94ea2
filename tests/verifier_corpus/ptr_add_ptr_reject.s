# pointer += pointer is prohibited.
# type: socket_filter
mov %r2, %r10
add %r2, %r1
mov %r0, 0
exit
