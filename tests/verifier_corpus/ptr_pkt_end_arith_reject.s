# Arithmetic on data_end (pkt_end) is prohibited.
# type: xdp
ldxw %r3, [%r1+4]       # data_end
add %r3, -1
mov %r0, 2
exit
