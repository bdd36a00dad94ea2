"""How each program type sees an event: its context structure and its packet.

An event is a whole Ethernet frame (or, for ``raw`` programs, any bytes). Each type presents it
as the kernel's BPF_PROG_TEST_RUN presents the same frame, so results compare byte for byte:

- ``xdp``: ``struct xdp_md``; the frame starts 256 bytes into the packet buffer (XDP headroom);
  ``data``/``data_end``/``data_meta`` are 32-bit fields that load as packet pointers.
- ``sched_cls``: ``struct __sk_buff`` with direct packet access from the Ethernet header.
- ``socket_filter``: the same structure without direct packet access; the Ethernet header is
  consumed, so the packet (and ``ld_abs``) starts at L3 and ``len`` is the frame length - 14.
- ``raw``: r1 points at the bytes, r2 holds their length (no context structure).

The tables here drive the interpreter: per context byte, whether a 4-byte load there yields a
packet pointer (and which), and whether the program may write it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

XDP_HEADROOM = 256
SKB_HEADROOM = 64  # room for bpf_skb_adjust_room / change_head style growth
TAILROOM = 512  # room for bpf_xdp_adjust_tail growth
CTX_MAX = 256

# Packet state words (int64 array shared by the interpreter and helpers): offsets inside the
# packet region, plus per-run facts the helpers need.
PKT_DATA = 0
PKT_END = 1
PKT_META = 2
PKT_CAP = 3  # bytes of the packet buffer
PKT_L3 = 4  # bytes the kernel consumed before the program's view (socket filters: 14)
PKT_KIND = 5  # KIND_* of the program type
PKT_REDIRECT_KIND = 6  # 0 none, 1 ifindex (bpf_redirect), 2 map entry (bpf_redirect_map)
PKT_REDIRECT_TARGET = 7  # ifindex, or map index << 32 | key
PKT_REDIRECT_FLAGS = 8
PKT_HEAD_DIRTY = 9  # a run moved data into the headroom: zero it before the next
# Constants of a batch for batch.begin_event/end_event, written by interp.run_events before the
# first event: those calls then take the state's host address and the event, a few scalars,
# instead of a dozen arguments each.
PKT_B_KIND = 16
PKT_B_HEAD = 17  # headroom before the packet
PKT_B_FRAME0 = 18  # host address of the outermost stack frame
PKT_B_STACK_ZERO = 19  # bytes of it to clear before each run
PKT_B_IN = 20  # host address of the raw input buffer
PKT_B_PKT = 21  # host address of the packet buffer
PKT_B_PKT_CAP = 22
PKT_B_CTX = 23  # host address of the context buffer
PKT_B_CTX_SIZE = 24
PKT_B_OUT = 25  # host address of the output arena (changed packets)
PKT_B_META = 26  # host address of out_meta
PKT_B_META_STRIDE = 27  # bytes per out_meta row
PKT_B_EVENT_WRITES = 28  # 0: decode found nothing that could change the event's bytes
PKT_STATE_SIZE = 32

KIND_RAW = 0
KIND_XDP = 1
KIND_SKB = 2  # sched_cls
KIND_SOCKET = 3  # socket_filter: skb without direct packet access

# Pointer slots a context load can produce.
PTR_DATA, PTR_END, PTR_META = 0, 1, 2

ETH_HLEN = 14
# BPF_PROG_TEST_RUN runs packets on the loopback device: ifindex 1, receive queue 0, and
# (lo's address and broadcast address being all zeros) pkt_type HOST for a zero destination
# MAC, MULTICAST for any group address, OTHERHOST otherwise -- checked against the host kernel.
LOOPBACK_IFINDEX = 1
PACKET_HOST, PACKET_BROADCAST, PACKET_MULTICAST, PACKET_OTHERHOST = 0, 1, 2, 3


@dataclass(frozen=True)
class Field:
    name: str
    offset: int
    size: int = 4


XDP_FIELDS = [Field("data", 0), Field("data_end", 4), Field("data_meta", 8), Field("ingress_ifindex", 12),
              Field("rx_queue_index", 16), Field("egress_ifindex", 20)]
XDP_SIZE = 24

SKB_FIELDS = [
    Field("len", 0), Field("pkt_type", 4), Field("mark", 8), Field("queue_mapping", 12), Field("protocol", 16),
    Field("vlan_present", 20), Field("vlan_tci", 24), Field("vlan_proto", 28), Field("priority", 32),
    Field("ingress_ifindex", 36), Field("ifindex", 40), Field("tc_index", 44),
    *[Field(f"cb[{i}]", 48 + 4 * i) for i in range(5)],
    Field("hash", 68), Field("tc_classid", 72), Field("data", 76), Field("data_end", 80), Field("napi_id", 84),
    Field("family", 88), Field("remote_ip4", 92), Field("local_ip4", 96),
    *[Field(f"remote_ip6[{i}]", 100 + 4 * i) for i in range(4)],
    *[Field(f"local_ip6[{i}]", 116 + 4 * i) for i in range(4)],
    Field("remote_port", 132), Field("local_port", 136), Field("data_meta", 140), Field("flow_keys", 144, 8),
    Field("tstamp", 152, 8), Field("wire_len", 160), Field("gso_segs", 164), Field("sk", 168, 8),
    Field("gso_size", 176), Field("tstamp_type", 180, 1), Field("hwtstamp", 184, 8),
]
SKB_SIZE = 192

# Fields a program may write (the kernel's *_is_valid_access for each type).
SKB_WRITABLE_TC = ("mark", "priority", "tc_index", "cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]", "tc_classid",
                   "queue_mapping", "tstamp")
SKB_WRITABLE_SOCKET = ("cb[0]", "cb[1]", "cb[2]", "cb[3]", "cb[4]")


@dataclass(frozen=True)
class ContextSpec:
    kind: int
    size: int
    fields: tuple[Field, ...]
    writable: tuple[str, ...]
    pointer_fields: dict[str, int]

    def tables(self) -> tuple[np.ndarray, np.ndarray]:
        """(pointer slot per byte offset or -1, writable flag per byte)."""
        ptr = np.full(CTX_MAX, -1, np.int8)
        wmask = np.zeros(CTX_MAX, np.uint8)
        for f in self.fields:
            if f.name in self.pointer_fields:
                ptr[f.offset] = self.pointer_fields[f.name]
            if f.name in self.writable:
                wmask[f.offset:f.offset + f.size] = 1
        return ptr, wmask

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def decode(self, ctx: bytes) -> dict[str, int]:
        return {f.name: int.from_bytes(ctx[f.offset:f.offset + f.size], "little") for f in self.fields
                if f.name not in self.pointer_fields}


_POINTERS = {"data": PTR_DATA, "data_end": PTR_END, "data_meta": PTR_META}

CONTEXTS = {
    "raw": ContextSpec(KIND_RAW, 0, (), (), {}),
    "xdp": ContextSpec(KIND_XDP, XDP_SIZE, tuple(XDP_FIELDS), (), _POINTERS),
    "sched_cls": ContextSpec(KIND_SKB, SKB_SIZE, tuple(SKB_FIELDS), SKB_WRITABLE_TC, _POINTERS),
    "socket_filter": ContextSpec(KIND_SOCKET, SKB_SIZE, tuple(SKB_FIELDS), SKB_WRITABLE_SOCKET, _POINTERS),
}


def context_for(prog_type: str) -> ContextSpec:
    try:
        return CONTEXTS[prog_type]
    except KeyError:
        raise ValueError(f"program type {prog_type!r} has no context layout (known: {', '.join(CONTEXTS)})") from None


def headroom(kind: int) -> int:
    return XDP_HEADROOM if kind == KIND_XDP else (SKB_HEADROOM if kind in (KIND_SKB, KIND_SOCKET) else 0)
