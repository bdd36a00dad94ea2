# raw program type: division by the length, which may be zero.
# type: raw
mov %r0, 100
div %r0, %r2
mod %r0, %r2
exit
