# A 16-bit ones'-complement checksum (the Internet checksum) over the input bytes.
# Run it:  bpfctl exec examples/checksum.s --data 450000730000400040110000c0a80001c0a800c7
# (an IPv4 header with its checksum field zeroed; r1 = the input, r2 = its length; prints 0xb861)
    mov %r0, 0          # running sum
    mov %r3, 0          # offset
    jgt %r2, 512, fold  # bounded, so the verifier sees the loop end: up to 512 bytes (longer: 0xffff)
loop:
    mov %r4, %r3
    add %r4, 1
    jge %r4, %r2, tail  # fewer than two bytes left
    mov %r5, %r1
    add %r5, %r3
    ldxh %r6, [%r5]
    be16 %r6            # network byte order
    add %r0, %r6
    add %r3, 2
    ja loop
tail:
    jge %r3, %r2, fold
    mov %r5, %r1
    add %r5, %r3
    ldxb %r6, [%r5]
    lsh %r6, 8
    add %r0, %r6
fold:
    mov %r4, %r0
    rsh %r4, 16
    and %r0, 0xffff
    add %r0, %r4
    mov %r4, %r0
    rsh %r4, 16
    add %r0, %r4
    xor %r0, 0xffff
    and %r0, 0xffff
    exit
