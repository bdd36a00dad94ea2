# The instructions after the first exit can never run.
# type: socket_filter
mov %r0, 0
exit
mov %r0, 1
exit
