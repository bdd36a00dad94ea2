# raw program type: r3 is not an argument (r1, r2 are) and was never written.
# type: raw
mov %r0, %r3
exit
