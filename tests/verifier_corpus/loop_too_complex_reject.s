# A bounded loop of 10,000,000 iterations: the verifier gives up after 1,000,000 instructions.
# type: socket_filter
mov %r0, 0
mov %r1, 0
loop:
add %r1, 1
jlt %r1, 10000000, loop
exit
