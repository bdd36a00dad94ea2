# A bounded loop of 100,000 iterations: about 300,000 instructions processed, under the limit.
# type: socket_filter
mov %r0, 0
mov %r1, 0
loop:
add %r1, 1
jlt %r1, 100000, loop
exit
