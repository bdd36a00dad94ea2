# raw program type: a stack write below the 512-byte stack.
# type: raw
stdw [%r10-520], 0
mov %r0, 0
exit
