# A loop whose state never changes: the verifier sees the same state again at the loop head.
# type: socket_filter
mov %r0, 0
loop:
mov %r1, 0
ja loop
