# A socket filter may write __sk_buff->cb[].
# type: socket_filter
stw [%r1+48], 7         # cb[0]
stw [%r1+64], 8         # cb[4]
mov %r0, 0
exit
