# XDP's return value is not range-checked by the verifier (unknown actions are handled at run time).
# type: xdp
mov %r0, 1234
exit
