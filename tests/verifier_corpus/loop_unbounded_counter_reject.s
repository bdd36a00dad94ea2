# A loop that runs until a value read from the context reaches zero, counting down by 0.
# type: socket_filter
ldxw %r1, [%r1+0]
mov %r0, 0
loop:
jeq %r1, 0, done
add %r0, 1
ja loop
done:
exit
