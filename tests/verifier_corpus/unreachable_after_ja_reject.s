# An instruction jumped over by an unconditional jump and targeted by nothing.
# type: socket_filter
mov %r0, 0
ja out
mov %r0, 1
out:
exit
