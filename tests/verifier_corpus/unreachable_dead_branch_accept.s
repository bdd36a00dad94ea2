# Both arms of a branch are reachable in the control-flow graph (even if one is never taken).
# type: socket_filter
mov %r0, 0
jeq %r0, 0, out
mov %r0, 1
out:
exit
