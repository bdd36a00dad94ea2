# raw program type: a loop whose state never changes.
# type: raw
mov %r0, 0
loop:
mov %r3, 0
ja loop
