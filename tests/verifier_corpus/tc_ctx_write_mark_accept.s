# tc may write __sk_buff->mark, priority, tc_index and cb[].
# type: sched_cls
stw [%r1+8], 42         # mark
stw [%r1+32], 1         # priority
stw [%r1+48], 7         # cb[0]
mov %r0, 0
exit
