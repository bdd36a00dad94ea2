# Division and modulo by a register that is zero are legal (the result is defined).
# type: socket_filter
mov %r0, 10
mov %r1, 0
div %r0, %r1
mod %r0, %r1
div32 %r0, %r1
exit
