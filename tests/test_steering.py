"""Event steering (worker/steering.py): the Toeplitz hash against Microsoft's published RSS
verification vectors, the compiled flow-tuple extraction against a pure-Python parser written
here independently, and the round-robin / explicit modes with their input checks."""

from __future__ import annotations

import ipaddress
import random
import struct

import numpy as np
import pytest

from bpfmc.worker.steering import (
    MICROSOFT_RSS_KEY,
    Steering,
    flow_tuple,
    toeplitz_hash,
    toeplitz_hash_nb,
    toeplitz_lut,
)

# "Verifying the RSS Hash Calculation" (Microsoft, NDIS docs), also reproduced in the Intel
# 82599 datasheet 7.1.2.8.3 and DPDK's app/test/test_thash.c; values cross-checked between them.
# (source, destination, source port, destination port, hash without ports, hash with ports)
IPV4_VECTORS = [
    ("66.9.149.187", "161.142.100.80", 2794, 1766, 0x323E8FC2, 0x51CCC178),
    ("199.92.111.2", "65.69.140.83", 14230, 4739, 0xD718262A, 0xC626B0EA),
    ("24.19.198.95", "12.22.207.184", 12898, 38024, 0xD2D0A5DE, 0x5C2B394A),
    ("38.27.205.30", "209.142.163.6", 48228, 2217, 0x82989176, 0xAFC7327F),
    ("153.39.163.191", "202.188.127.2", 44251, 1303, 0x5D1809C5, 0x10E828A2),
]
IPV6_VECTORS = [
    ("3ffe:2501:200:1fff::7", "3ffe:2501:200:3::1", 2794, 1766, 0x2CC18CD5, 0x40207D3D),
    ("3ffe:501:8::260:97ff:fe40:efab", "ff02::1", 14230, 4739, 0x0F0C461C, 0xDDE51BBF),
    ("3ffe:1900:4545:3:200:f8ff:fe21:67cf", "fe80::200:f8ff:fe21:67cf", 44251, 38024, 0x4B61E985, 0x02D1FEEF),
]

MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")


# --- frame builders and an independent reference parser ------------------------------------------

def eth(etype: int, payload: bytes, tags: tuple[int, ...] = ()) -> bytes:
    """Ethernet frame; ``tags`` are TPIDs of VLAN tags to put in front of ``etype``."""
    hdr = MAC_B + MAC_A
    for tpid in tags:
        hdr += struct.pack("!HH", tpid, 100)
    return hdr + struct.pack("!H", etype) + payload


def ipv4(src: bytes, dst: bytes, proto: int, payload: bytes, *, frag: int = 0x4000, options: bytes = b"") -> bytes:
    ihl = 5 + len(options) // 4
    return struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, 4 * ihl + len(payload), 1, frag, 64, proto, 0,
                       src, dst) + options + payload


def ipv6(src: bytes, dst: bytes, nh: int, payload: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, src, dst) + payload


def ports(sport: int, dport: int, rest: bytes = b"\0" * 16) -> bytes:
    return struct.pack("!HH", sport, dport) + rest


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def ref_tuple(frame: bytes, l4: bool = True) -> bytes:
    """What NICs hash for ``frame``, parsed the slow obvious way (see the module docstring of
    worker/steering.py for the rules)."""
    if len(frame) < 14:
        return b""
    (etype,) = struct.unpack_from("!H", frame, 12)
    l3 = frame[14:]
    if etype in (0x8100, 0x88A8):
        if len(frame) < 18:
            return b""
        (etype,) = struct.unpack_from("!H", frame, 16)
        l3 = frame[18:]
    if etype == 0x0800:
        if len(l3) < 20 or l3[0] >> 4 != 4 or l3[0] & 15 < 5:
            return b""
        ihl = (l3[0] & 15) * 4
        (frag,) = struct.unpack_from("!H", l3, 6)
        fragment = (frag & 0x2000) or (frag & 0x1FFF)
        if l4 and not fragment and l3[9] in (6, 17) and len(l3) >= ihl + 4:
            return l3[12:20] + l3[ihl:ihl + 4]
        return l3[12:20]
    if etype == 0x86DD:
        if len(l3) < 40 or l3[0] >> 4 != 6:
            return b""
        if l4 and l3[6] in (6, 17) and len(l3) >= 44:
            return l3[8:40] + l3[40:44]
        return l3[8:40]
    return b""


def pack(frames: list[bytes], lead: bytes = b"") -> tuple[np.ndarray, np.ndarray]:
    """The pool's batch layout; ``lead`` puts bytes before the first event."""
    lengths = [len(f) for f in frames]
    offsets = np.zeros(len(frames) + 1, np.int64)
    offsets[0] = len(lead)
    np.cumsum(lengths, out=offsets[1:])
    offsets[1:] += len(lead)
    blob = np.frombuffer(lead + b"".join(frames), np.uint8).copy()
    return blob, offsets


def random_frame(rng: random.Random) -> bytes:
    """A frame from every corner the parser has: IPv4/IPv6 with TCP, UDP or other protocols,
    IP options, fragments, extension headers, VLAN/QinQ tags, ARP, bad versions, runts."""
    kind = rng.choice(["v4", "v4", "v6", "v6", "arp", "other", "bad"])
    sport, dport = rng.randrange(65536), rng.randrange(65536)
    l4 = ports(sport, dport, rng.randbytes(rng.choice([0, 4, 16])))
    if kind == "v4":
        frag = rng.choice([0x4000, 0x4000, 0, 0x2000, 0x0001, 0x20B9, 0x8000])
        opts = rng.randbytes(4 * rng.choice([0, 0, 1, 10]))
        etype, payload = 0x0800, ipv4(rng.randbytes(4), rng.randbytes(4), rng.choice([6, 17, 1, 47, 132]), l4,
                                      frag=frag, options=opts)
    elif kind == "v6":
        etype, payload = 0x86DD, ipv6(rng.randbytes(16), rng.randbytes(16), rng.choice([6, 17, 0, 44, 58, 43]), l4)
    elif kind == "arp":
        etype, payload = 0x0806, rng.randbytes(28)
    elif kind == "other":
        etype, payload = rng.choice([0x88CC, 0x88B5, 0x0000, 0xFFFF]), rng.randbytes(rng.randrange(60))
    else:  # IP ethertype, wrong contents: version mismatch or IHL < 5
        v4 = rng.random() < 0.5
        payload = bytearray(ipv4(rng.randbytes(4), rng.randbytes(4), 6, l4) if v4
                            else ipv6(rng.randbytes(16), rng.randbytes(16), 6, l4))
        payload[0] = rng.choice([0x44, 0x41, 0x65, 0x46]) if v4 else rng.choice([0x40, 0x45, 0x70])
        etype, payload = (0x0800 if v4 else 0x86DD), bytes(payload)
    tags = rng.choice([(), (), (0x8100,), (0x88A8,), (0x88A8, 0x8100)])
    frame = eth(etype, payload, tags)
    if rng.random() < 0.2:  # runt or truncated header
        frame = frame[:rng.randrange(len(frame) + 1)]
    return frame


# --- the hash -------------------------------------------------------------------------------------

def test_microsoft_key() -> None:
    assert len(MICROSOFT_RSS_KEY) == 40
    assert MICROSOFT_RSS_KEY.hex().startswith("6d5a56da255b0ec2")


@pytest.mark.parametrize("src,dst,sport,dport,h2,h4", IPV4_VECTORS + IPV6_VECTORS)
def test_verification_vectors(src: str, dst: str, sport: int, dport: int, h2: int, h4: int) -> None:
    addrs = ip(src) + ip(dst)
    with_ports = addrs + struct.pack("!HH", sport, dport)
    assert toeplitz_hash(MICROSOFT_RSS_KEY, addrs) == h2
    assert toeplitz_hash(MICROSOFT_RSS_KEY, with_ports) == h4
    key = np.frombuffer(MICROSOFT_RSS_KEY, np.uint8)
    assert toeplitz_hash_nb(key, np.frombuffer(addrs, np.uint8), 0, len(addrs)) == h2
    assert toeplitz_hash_nb(key, np.frombuffer(with_ports, np.uint8), 0, len(with_ports)) == h4


@pytest.mark.parametrize("src,dst,sport,dport,h2,h4", IPV4_VECTORS + IPV6_VECTORS)
def test_verification_vectors_from_frames(src: str, dst: str, sport: int, dport: int, h2: int, h4: int) -> None:
    """End to end: the vectors' flows as TCP and UDP frames, plain and VLAN-tagged."""
    v6 = ":" in src
    frames = []
    for proto in (6, 17):
        for tags in ((), (0x8100,), (0x88A8,)):
            l3 = (ipv6(ip(src), ip(dst), proto, ports(sport, dport)) if v6
                  else ipv4(ip(src), ip(dst), proto, ports(sport, dport)))
            frames.append(eth(0x86DD if v6 else 0x0800, l3, tags))
    blob, offsets = pack(frames)
    assert list(Steering(4, "rss").hashes(blob, offsets)) == [h4] * len(frames)
    assert list(Steering(4, "rss", l4=False).hashes(blob, offsets)) == [h2] * len(frames)


def test_compiled_hash_matches_reference_on_random_inputs() -> None:
    rng = random.Random(7)
    for _ in range(200):
        data = rng.randbytes(rng.randrange(0, 40))
        key = rng.randbytes(len(data) + 4 + rng.randrange(0, 20))
        start = rng.randrange(0, 5)
        buf = np.frombuffer(rng.randbytes(start) + data, np.uint8)
        expect = toeplitz_hash(key, data)
        assert toeplitz_hash_nb(np.frombuffer(key, np.uint8), buf, start, len(data)) == expect
        lut = toeplitz_lut(np.frombuffer(key, np.uint8), len(data))
        h = 0
        for j, b in enumerate(data):
            h ^= int(lut[j, b])
        assert h == expect


def test_reference_rejects_short_key() -> None:
    with pytest.raises(ValueError, match="too short"):
        toeplitz_hash(bytes(15), bytes(12))
    assert toeplitz_hash(bytes(16), bytes(12)) == 0


def test_not_symmetric() -> None:
    """The Microsoft key does not map A->B and B->A together; nothing here pretends it does."""
    src, dst, sport, dport, _, h4 = IPV4_VECTORS[0]
    fwd = eth(0x0800, ipv4(ip(src), ip(dst), 6, ports(sport, dport)))
    rev = eth(0x0800, ipv4(ip(dst), ip(src), 6, ports(dport, sport)))
    hashes = Steering(2, "rss").hashes(*pack([fwd, rev]))
    assert hashes[0] == h4
    assert hashes[1] == toeplitz_hash(MICROSOFT_RSS_KEY, ip(dst) + ip(src) + struct.pack("!HH", dport, sport))
    assert hashes[1] != hashes[0]


# --- flow tuples ---------------------------------------------------------------------------------

A4, B4 = ip("10.0.0.1"), ip("10.0.0.2")
A6, B6 = ip("2001:db8::1"), ip("2001:db8::2")
TCP_AB = ports(40000, 80)


@pytest.mark.parametrize("frame,expect", [
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB)), A4 + B4 + TCP_AB[:4]),
    (eth(0x0800, ipv4(A4, B4, 17, TCP_AB)), A4 + B4 + TCP_AB[:4]),
    (eth(0x0800, ipv4(A4, B4, 1, TCP_AB)), A4 + B4),  # ICMP: addresses only
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB, options=bytes(8))), A4 + B4 + TCP_AB[:4]),  # ports after options
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB, frag=0x2000)), A4 + B4),  # first fragment (MF)
    (eth(0x0800, ipv4(A4, B4, 17, TCP_AB, frag=0x00B9)), A4 + B4),  # last fragment (offset)
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB, frag=0x8000)), A4 + B4 + TCP_AB[:4]),  # reserved bit only
    (eth(0x0800, ipv4(A4, B4, 6, b"\x9c")), A4 + B4),  # ports truncated
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB), (0x8100,)), A4 + B4 + TCP_AB[:4]),
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB), (0x88A8,)), A4 + B4 + TCP_AB[:4]),
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB), (0x88A8, 0x8100)), b""),  # QinQ: not looked through
    (eth(0x86DD, ipv6(A6, B6, 6, TCP_AB)), A6 + B6 + TCP_AB[:4]),
    (eth(0x86DD, ipv6(A6, B6, 17, TCP_AB), (0x8100,)), A6 + B6 + TCP_AB[:4]),
    (eth(0x86DD, ipv6(A6, B6, 44, TCP_AB)), A6 + B6),  # fragment header: not walked
    (eth(0x86DD, ipv6(A6, B6, 58, TCP_AB)), A6 + B6),  # ICMPv6
    (eth(0x86DD, ipv6(A6, B6, 6, b"")), A6 + B6),  # ports missing
    (eth(0x86DD, ipv6(A6, B6, 6, TCP_AB))[:14 + 39], b""),  # IPv6 header cut short
    (eth(0x0806, bytes(28)), b""),  # ARP
    (eth(0x0800, ipv4(A4, B4, 6, TCP_AB))[:33], b""),  # IPv4 header cut short
    (eth(0x86DD, ipv4(A4, B4, 6, TCP_AB)), b""),  # IPv4 packet under the IPv6 ethertype
    (bytes(13), b""),  # runt
    (b"", b""),
])
def test_flow_tuple(frame: bytes, expect: bytes) -> None:
    assert ref_tuple(frame) == expect  # the test's own parser agrees with the case table
    assert flow_tuple(frame) == expect


def test_flow_tuple_without_ports() -> None:
    frame = eth(0x0800, ipv4(A4, B4, 6, TCP_AB))
    assert flow_tuple(frame, l4=False) == A4 + B4


@pytest.mark.parametrize("l4", [True, False])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rss_batch_matches_reference(seed: int, l4: bool) -> None:
    rng = random.Random(seed)
    frames = [random_frame(rng) for _ in range(400)]
    for key in (MICROSOFT_RSS_KEY, rng.randbytes(52)):
        table = [rng.randrange(5) for _ in range(64)]
        st = Steering(5, "rss", key=key, table=table, l4=l4)
        blob, offsets = pack(frames, lead=rng.randbytes(rng.randrange(10)))
        expect = [toeplitz_hash(key, ref_tuple(f, l4)) for f in frames]
        assert st.hashes(blob, offsets).tolist() == expect
        got = st.steer(blob, offsets)
        assert got.dtype == np.int32
        assert got.tolist() == [table[h % 64] for h in expect]


def test_rss_same_flow_same_core_and_non_ip_to_entry_zero() -> None:
    table = [2, 0, 1, 3] * 32
    st = Steering(4, "rss", table=table)
    flow = [eth(0x0800, ipv4(A4, B4, 6, ports(40000, 80, bytes(n)))) for n in (0, 20, 1400)]
    non_ip = [eth(0x0806, bytes(28)), bytes(10), eth(0x88CC, bytes(40))]
    cores = st.steer(*pack(flow + non_ip)).tolist()
    assert len(set(cores[:3])) == 1
    assert cores[3:] == [2, 2, 2]  # hash 0 -> table[0]


def test_default_table_is_round_robin() -> None:
    st = Steering(3, "rss")
    assert st.table.tolist() == [i % 3 for i in range(128)]
    assert Steering(3, "rss", table_size=8).table.tolist() == [0, 1, 2, 0, 1, 2, 0, 1]


# --- round-robin and explicit cores --------------------------------------------------------------

def test_round_robin_persists_across_calls() -> None:
    st = Steering(3, "rr")
    frames = [eth(0x0806, bytes(28))] * 4
    assert st.steer(*pack(frames)).tolist() == [0, 1, 2, 0]
    assert st.next_core == 1
    assert st.steer(*pack(frames[:0])).tolist() == []  # an empty batch does not move it
    assert st.steer(*pack(frames * 2)).tolist() == [1, 2, 0, 1, 2, 0, 1, 2]
    assert st.steer(*pack(frames[:1])).tolist() == [0]
    st.reset()
    assert st.steer(*pack(frames[:2])).tolist() == [0, 1]
    assert Steering(1, "rr").steer(*pack(frames)).tolist() == [0, 0, 0, 0]


def test_round_robin_advance_matches_steer() -> None:
    st, ref = Steering(3, "rr"), Steering(3, "rr")
    frames = [eth(0x0806, bytes(28))] * 4
    for n in (4, 0, 2, 1):
        first = st.advance(n)
        assert ref.steer(*pack(frames[:n])).tolist() == [(first + i) % 3 for i in range(n)]
        assert st.next_core == ref.next_core
    with pytest.raises(ValueError, match="advance"):
        Steering(3, "rss").advance(1)


def test_explicit_cores() -> None:
    st = Steering(4, "core")
    blob, offsets = pack([eth(0x0806, bytes(28))] * 5)
    got = st.steer(blob, offsets, np.array([3, 0, 0, 2, 1], np.uint8))
    assert got.dtype == np.int32 and got.tolist() == [3, 0, 0, 2, 1]
    assert st.steer(blob, offsets, [1, 1, 1, 1, 1]).tolist() == [1] * 5
    assert st.steer(*pack([]), cores=np.zeros(0)).tolist() == []


# --- input checks --------------------------------------------------------------------------------

@pytest.mark.parametrize("args,kwargs,match", [
    ((0,), {}, "n_cores"),
    ((-1,), {}, "n_cores"),
    ((2.0,), {}, "n_cores"),
    ((True,), {}, "n_cores"),
    ((2, "hash"), {}, "unknown steering mode"),
    ((2, "rss"), {"key": MICROSOFT_RSS_KEY[:39]}, "at least 40"),
    ((2, "rss"), {"key": bytes(35), "l4": False}, "at least 36"),
    ((2, "rss"), {"key": "6d5a56da"}, "must be bytes"),
    ((2, "rss"), {"table": [0, 1, 2]}, "entry 2 is 2"),
    ((2, "rss"), {"table": [0, -1]}, "entry 1 is -1"),
    ((2, "rss"), {"table": []}, "non-empty"),
    ((2, "rss"), {"table": [[0, 1]]}, "1-D"),
    ((2, "rss"), {"table": [0.0, 1.0]}, "integers"),
    ((2, "rss"), {"table_size": 0}, "table_size"),
    ((2, "rr"), {"table": [5]}, "not a core id"),  # checked in every mode
])
def test_construction_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Steering(*args, **kwargs)


def test_short_key_is_fine_without_ports() -> None:
    frame = eth(0x86DD, ipv6(A6, B6, 6, TCP_AB))
    st = Steering(2, "rss", key=MICROSOFT_RSS_KEY[:36], l4=False)
    assert st.hashes(*pack([frame])).tolist() == [toeplitz_hash(MICROSOFT_RSS_KEY[:36], A6 + B6)]


def test_batch_errors() -> None:
    st = Steering(2, "rr")
    blob, offsets = pack([bytes(20), bytes(20)])
    with pytest.raises(ValueError, match="uint8"):
        st.steer(blob.astype(np.int8), offsets)
    with pytest.raises(ValueError, match="uint8"):
        st.steer(bytes(blob), offsets)
    with pytest.raises(ValueError, match="integer"):
        st.steer(blob, offsets.astype(np.float64))
    with pytest.raises(ValueError, match="at least one"):
        st.steer(blob, np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="outside the blob"):
        st.steer(blob, np.array([0, 20, 41]))
    with pytest.raises(ValueError, match="outside the blob"):
        st.steer(blob, np.array([-1, 20, 40]))
    with pytest.raises(ValueError, match="non-decreasing"):
        st.steer(blob, np.array([0, 30, 20, 40]))
    with pytest.raises(ValueError, match='only accepted in mode "core"'):
        st.steer(blob, offsets, np.array([0, 1]))
    assert st.next_core == 0  # a refused batch leaves round-robin where it was


def test_explicit_core_errors() -> None:
    st = Steering(3, "core")
    blob, offsets = pack([bytes(20), bytes(20)])
    with pytest.raises(ValueError, match="needs the core id"):
        st.steer(blob, offsets)
    with pytest.raises(ValueError, match="one entry per event"):
        st.steer(blob, offsets, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="event 1 names core 3"):
        st.steer(blob, offsets, np.array([0, 3]))
    with pytest.raises(ValueError, match="event 0 names core -1"):
        st.steer(blob, offsets, np.array([-1, 0]))
    with pytest.raises(ValueError, match="integers"):
        st.steer(blob, offsets, np.array([0.0, 1.0]))
