# data_end - data is forbidden arithmetic on pkt_end; (data + 14) - data is a scalar (allowed).
# type: xdp
ldxw %r2, [%r1+0]
mov %r4, %r2
add %r4, 14
sub %r4, %r2
mov %r0, 2
exit
