# Comparing two unrelated pointers (context and stack): allowed only when privileged.
# type: socket_filter
mov %r2, %r10
mov %r0, 0
jgt %r1, %r2, out
mov %r0, 1
out:
exit
