# Narrow stack accesses aligned to their own size.
# type: socket_filter
stw [%r10-4], 1
sth [%r10-6], 2
stb [%r10-7], 3
ldxw %r0, [%r10-4]
ldxh %r1, [%r10-6]
ldxb %r2, [%r10-7]
exit
