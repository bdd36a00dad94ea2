"""Ethernet frames for the program corpus (tests/progs/), built by hand with correct checksums.

No scapy: the frames must be byte-for-byte reproducible and their construction readable next to
the C programs that parse them. Every builder returns ``bytes``; :data:`PACKETS` names the
frames the case tables use, so a table row says ``"udp4"`` rather than carrying hex.

Addresses are chosen for what the kernel does with them in ``BPF_PROG_TEST_RUN``: a tc or
socket-filter run hands the frame to ``eth_type_trans`` on the loopback device, whose MAC is
all zeroes, so ``pkt_type`` is HOST only for a destination of 00:00:00:00:00:00 and OTHERHOST
for every other unicast MAC. Loopback's broadcast address is all zeroes too, so ff:ff:ff:ff:ff:ff
is not "its" broadcast: such frames come out MULTICAST, like group addresses (seen on 6.18).
The frames cover each of those.
"""

from __future__ import annotations

import struct

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_IPV6 = 0x86DD
ETH_P_LOCAL_EXP = 0x88B5

IPPROTO_TCP = 6
IPPROTO_UDP = 17

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10

MAC_HOST = bytes(6)  # the loopback device's address: pkt_type HOST in a kernel test run
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
MAC_BCAST = b"\xff" * 6
MAC_V6_ALLNODES = bytes.fromhex("333300000001")

IP_A = bytes([10, 0, 0, 1])
IP_B = bytes([10, 0, 0, 2])
IP_C = bytes([192, 168, 1, 7])
IP_BLOCKED = bytes([198, 51, 100, 9])  # inside 198.51.100.0/24, the corpus's block list
IP_BCAST = b"\xff" * 4
IP6_A = bytes.fromhex("20010db8000000000000000000000001")
IP6_B = bytes.fromhex("20010db8000000000000000000000002")
IP6_ALLNODES = bytes.fromhex("ff020000000000000000000000000001")


def csum16(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``: one's-complement sum, complemented."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def eth(dst: bytes, src: bytes, ethertype: int, payload: bytes = b"") -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def vlan(dst: bytes, src: bytes, vid: int, ethertype: int, payload: bytes, pcp: int = 0) -> bytes:
    """An 802.1Q-tagged frame: the tag sits in the packet bytes (a test run does not offload it)."""
    return dst + src + struct.pack("!HHH", ETH_P_8021Q, (pcp << 13) | vid, ethertype) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, ttl: int = 64, ident: int = 0x1234,
         tos: int = 0, df: bool = True) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, tos, 20 + len(payload), ident, 0x4000 if df else 0, ttl, proto,
                      0, src, dst)
    return hdr[:10] + struct.pack("!H", csum16(hdr)) + hdr[12:] + payload


def _l4_csum(pseudo: bytes, segment: bytes, offset: int) -> bytes:
    c = csum16(pseudo + segment)
    # UDP sends a computed 0 as 0xffff (0 means "no checksum"); TCP never produces 0 from a
    # complement unless the sum is 0xffff, where both forms are valid -- keep UDP's rule for both.
    c = c or 0xFFFF
    return segment[:offset] + struct.pack("!H", c) + segment[offset + 2:]


def _pseudo4(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!BBH", 0, proto, length)


def _pseudo6(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    return src + dst + struct.pack("!I3xB", length, proto)


def tcp(src_ip: bytes, dst_ip: bytes, sport: int, dport: int, payload: bytes = b"", *, flags: int = TCP_ACK,
        seq: int = 1000, ack: int = 0, window: int = 65535) -> bytes:
    """A TCP segment (20-byte header) with its checksum over the IPv4 or IPv6 pseudo-header."""
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, window, 0, 0) + payload
    pseudo = (_pseudo4 if len(src_ip) == 4 else _pseudo6)(src_ip, dst_ip, IPPROTO_TCP, len(seg))
    return _l4_csum(pseudo, seg, 16)


def udp(src_ip: bytes, dst_ip: bytes, sport: int, dport: int, payload: bytes = b"") -> bytes:
    seg = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload
    pseudo = (_pseudo4 if len(src_ip) == 4 else _pseudo6)(src_ip, dst_ip, IPPROTO_UDP, len(seg))
    return _l4_csum(pseudo, seg, 6)


def ipv6(src: bytes, dst: bytes, next_header: int, payload: bytes, *, hop_limit: int = 64, flow: int = 0) -> bytes:
    return struct.pack("!IHBB16s16s", (6 << 28) | flow, len(payload), next_header, hop_limit, src, dst) + payload


def arp_request(src_mac: bytes, src_ip: bytes, target_ip: bytes) -> bytes:
    body = struct.pack("!HHBBH6s4s6s4s", 1, ETH_P_IP, 6, 4, 1, src_mac, src_ip, bytes(6), target_ip)
    return eth(MAC_BCAST, src_mac, ETH_P_ARP, body)


def tcp4_frame(src_ip: bytes = IP_A, dst_ip: bytes = IP_B, sport: int = 40000, dport: int = 80, payload: bytes = b"",
               *, dst_mac: bytes = MAC_B, src_mac: bytes = MAC_A, **kw) -> bytes:
    return eth(dst_mac, src_mac, ETH_P_IP, ipv4(src_ip, dst_ip, IPPROTO_TCP, tcp(src_ip, dst_ip, sport, dport,
                                                                                   payload, **kw)))


def udp4_frame(src_ip: bytes = IP_A, dst_ip: bytes = IP_B, sport: int = 5353, dport: int = 53, payload: bytes = b"",
               *, dst_mac: bytes = MAC_B, src_mac: bytes = MAC_A) -> bytes:
    return eth(dst_mac, src_mac, ETH_P_IP, ipv4(src_ip, dst_ip, IPPROTO_UDP, udp(src_ip, dst_ip, sport, dport,
                                                                                   payload)))


def udp6_frame(src_ip: bytes = IP6_A, dst_ip: bytes = IP6_B, sport: int = 5353, dport: int = 53,
               payload: bytes = b"", *, dst_mac: bytes = MAC_B, src_mac: bytes = MAC_A) -> bytes:
    return eth(dst_mac, src_mac, ETH_P_IPV6, ipv6(src_ip, dst_ip, IPPROTO_UDP, udp(src_ip, dst_ip, sport, dport,
                                                                                     payload)))


DNS_QUERY = bytes.fromhex("abcd01000001000000000000076578616d706c6503636f6d0000010001")  # example.com A

PACKETS: dict[str, bytes] = {
    # IPv4/TCP, unicast to another host's MAC (OTHERHOST in a test run), HTTP request bytes.
    "tcp4": tcp4_frame(payload=b"GET / HTTP/1.0\r\n\r\n", flags=TCP_PSH | TCP_ACK),
    # A TCP connection's life, for connection tracking: SYN, ACK, FIN, and a stray ACK after it.
    "tcp4_syn": tcp4_frame(sport=40001, flags=TCP_SYN, seq=7000),
    "tcp4_ack": tcp4_frame(sport=40001, flags=TCP_ACK, seq=7001, ack=1),
    "tcp4_fin": tcp4_frame(sport=40001, flags=TCP_FIN | TCP_ACK, seq=7001, ack=1),
    # To the loopback MAC (HOST) from another source, telnet: the firewall's blocked port.
    "tcp4_telnet": tcp4_frame(IP_C, IP_B, 51000, 23, dst_mac=MAC_HOST),
    # From inside the blocked prefix.
    "tcp4_blocked": tcp4_frame(IP_BLOCKED, IP_B, 443, 51515, b"x" * 10, flags=TCP_ACK),
    "udp4": udp4_frame(payload=DNS_QUERY),
    "udp4_host": udp4_frame(IP_C, IP_A, 6000, 9000, b"payload!", dst_mac=MAC_HOST),
    "udp6": udp6_frame(payload=DNS_QUERY),
    "udp6_mcast": udp6_frame(IP6_A, IP6_ALLNODES, 546, 547, b"dhcpv6", dst_mac=MAC_V6_ALLNODES),
    "arp": arp_request(MAC_A, IP_A, IP_B),
    "vlan_udp4": vlan(MAC_B, MAC_A, 100, ETH_P_IP, ipv4(IP_A, IP_B, IPPROTO_UDP, udp(IP_A, IP_B, 7000, 7001,
                                                                                        b"tagged")), pcp=5),
    # DHCP-discover-like: broadcast MAC and IP.
    "bcast_udp4": udp4_frame(bytes(4), IP_BCAST, 68, 67, bytes(32), dst_mac=MAC_BCAST),
    # Only an Ethernet header: every parser must stop at its first bounds check. The type says
    # IPv4, which XDP test runs accept; skb test runs (tc, socket filter) refuse with EINVAL a
    # frame whose type promises IPv4 or IPv6 without the whole L3 header (seen on 6.18), so
    # those use runt_l2, whose type is the IEEE local experimental one.
    "runt": eth(MAC_B, MAC_A, ETH_P_IP),
    "runt_l2": eth(MAC_B, MAC_A, ETH_P_LOCAL_EXP),
}


def frames(*names: str) -> list[bytes]:
    return [PACKETS[n] for n in names]


def checksum_problems(frame: bytes) -> list[str]:
    """What is wrong with the IPv4 header and TCP/UDP checksums of an Ethernet frame (one VLAN
    tag and IP-in-IP followed); [] when all are right or there is nothing to check. Used to
    check the corpus's rewritten packets, whichever engine produced them."""
    if len(frame) < 14:
        return []
    etype, off = struct.unpack_from("!H", frame, 12)[0], 14
    if etype == ETH_P_8021Q and len(frame) >= 18:
        etype, off = struct.unpack_from("!H", frame, 16)[0], 18
    if etype == ETH_P_IP:
        return _ipv4_problems(frame[off:])
    if etype == ETH_P_IPV6 and len(frame) >= off + 40:
        plen, nh = struct.unpack_from("!HB", frame, off + 4)
        return _l4_problems(frame[off + 8:off + 24], frame[off + 24:off + 40], nh, frame[off + 40:off + 40 + plen])
    return []


def _ipv4_problems(pkt: bytes) -> list[str]:
    if len(pkt) < 20:
        return []
    ihl = (pkt[0] & 0xF) * 4
    total = struct.unpack_from("!H", pkt, 2)[0]
    out = [] if csum16(pkt[:ihl]) == 0 else [f"IPv4 header checksum {pkt[10:12].hex()} is wrong"]
    proto, src, dst = pkt[9], pkt[12:16], pkt[16:20]
    if proto == 4:  # IP-in-IP
        return out + [f"inner: {p}" for p in _ipv4_problems(pkt[ihl:total])]
    return out + _l4_problems(src, dst, proto, pkt[ihl:total])


def _l4_problems(src: bytes, dst: bytes, proto: int, seg: bytes) -> list[str]:
    where = {IPPROTO_TCP: 16, IPPROTO_UDP: 6}.get(proto)
    if where is None or len(seg) < where + 2:
        return []
    if proto == IPPROTO_UDP and seg[6:8] == b"\0\0":
        return []  # UDP over IPv4 without a checksum
    pseudo = (_pseudo4 if len(src) == 4 else _pseudo6)(src, dst, proto, len(seg))
    if csum16(pseudo + seg) != 0:
        return [f"{'TCP' if proto == IPPROTO_TCP else 'UDP'} checksum {seg[where:where + 2].hex()} is wrong"]
    return []
