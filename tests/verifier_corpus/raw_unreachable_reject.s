# raw program type: instructions after the only exit are unreachable.
# type: raw
mov %r0, 0
exit
mov %r0, 1
exit
