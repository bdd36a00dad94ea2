# A socket filter may not write __sk_buff->mark (tc may).
# type: socket_filter
stw [%r1+8], 42
mov %r0, 0
exit
