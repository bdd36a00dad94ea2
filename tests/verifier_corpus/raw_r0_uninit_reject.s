# raw program type: exit with r0 never written (same rule as r0_uninit_exit_reject.s).
# type: raw
mov %r3, 0
exit
