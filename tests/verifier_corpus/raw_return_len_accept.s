# raw program type: return the length argument r2 (r1 = memory, r2 = its length).
# type: raw
mov %r0, %r2
exit
