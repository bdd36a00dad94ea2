# raw program type: a counted loop of 100 iterations.
# type: raw
mov %r0, 0
mov %r3, 0
loop:
add %r0, %r3
add %r3, 1
jlt %r3, 100, loop
exit
