"""Events in and out: present each event to the program as its type expects, and keep what
the program changed. ``interp.run_events`` calls these around every run, in compiled code:
copying the event into the input or packet buffer, building the context, and afterwards saving
the packet if the program changed it, redirects and the context. Python sees only the columns
at the end of the batch.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from . import mapops as mo
from .contexts import (
    ETH_HLEN,
    KIND_RAW,
    KIND_SKB,
    KIND_SOCKET,
    KIND_XDP,
    LOOPBACK_IFINDEX,
    PACKET_HOST,
    PACKET_MULTICAST,
    PACKET_OTHERHOST,
    PKT_CAP,
    PKT_DATA,
    PKT_END,
    PKT_HEAD_DIRTY,
    PKT_L3,
    PKT_META,
    PKT_REDIRECT_FLAGS,
    PKT_REDIRECT_KIND,
    PKT_REDIRECT_TARGET,
)
from .intrinsics import load_u8, load_u16, load_u32, store_u32
from .memory import REGION_SHIFT

U0 = np.uint64(0)
U1 = np.uint64(1)
SH = np.uint64(REGION_SHIFT)

# out_meta columns per run
OM_DATA_OFF = 0  # where the packet as left by the program starts in out_data (-1: unchanged)
OM_DATA_LEN = 1
OM_REDIRECT_KIND = 2
OM_REDIRECT_TARGET = 3
OM_REDIRECT_FLAGS = 4
OM_COLS = 5


@njit(cache=True)
def _init_skb(ctx_h, ctx_size, frame, length, kind):
    """__sk_buff as BPF_PROG_TEST_RUN builds it on the loopback device (checked against the
    host kernel): len (minus the Ethernet header for socket filters), pkt_type from the
    destination MAC, protocol as the frame carries it, ifindex 1; everything else zero.
    ``ctx_h`` and ``frame`` are host addresses."""
    mo.mem_zero(ctx_h, ctx_size)
    skb_len = length - ETH_HLEN if kind == KIND_SOCKET else length
    store_u32(ctx_h, np.uint64(skb_len))
    multicast = (load_u8(frame) & U1) != U0
    zero = (load_u32(frame) | load_u16(frame + np.uint64(4))) == U0
    pkt_type = PACKET_MULTICAST if multicast else (PACKET_HOST if zero else PACKET_OTHERHOST)
    store_u32(ctx_h + np.uint64(4), np.uint64(pkt_type))
    store_u32(ctx_h + np.uint64(16), load_u16(frame + np.uint64(12)))  # network order, as stored
    store_u32(ctx_h + np.uint64(40), np.uint64(LOOPBACK_IFINDEX))


@njit(cache=True)
def headroom_of(kind):
    if kind == KIND_XDP:
        return np.int64(256)
    if kind == KIND_SKB or kind == KIND_SOCKET:
        return np.int64(64)
    return np.int64(0)


# The two functions below take host addresses and scalars, not arrays: Numba passes each array
# as seven scalars, and a call per event with a dozen arrays cost more than a short program.

@njit(cache=True)
def begin_event(kind, head, src, length, frame0_h, stack_zero, in_h, pkt_h, pkt_cap, ctx_h, ctx_size, pkt):
    """Present an event (``length`` bytes at host address ``src``) to the program: the
    outermost stack frame zeroed (``stack_zero`` bytes: 0 for code that never uses the stack),
    and the input bytes (raw) or the packet and its context (XDP, tc, socket filter).
    Registers are the caller's business."""
    mo.mem_zero(frame0_h, stack_zero)
    if kind == KIND_RAW:
        mo.mem_copy(in_h, src, length)
        return
    if pkt[PKT_HEAD_DIRTY] != 0:  # a previous run moved data into the headroom: the kernel's is zero
        mo.mem_zero(pkt_h, head)
        pkt[PKT_HEAD_DIRTY] = 0
    mo.mem_copy(pkt_h + np.uint64(head), src, length)
    pkt[PKT_META] = head
    pkt[PKT_DATA] = head
    pkt[PKT_END] = head + length
    pkt[PKT_CAP] = pkt_cap
    pkt[PKT_L3] = 0
    pkt[PKT_REDIRECT_KIND] = 0
    pkt[PKT_REDIRECT_TARGET] = 0
    pkt[PKT_REDIRECT_FLAGS] = 0
    if kind == KIND_XDP:
        mo.mem_zero(ctx_h, ctx_size)
        store_u32(ctx_h + np.uint64(12), np.uint64(LOOPBACK_IFINDEX))  # ingress_ifindex; rx queue 0
    else:
        _init_skb(ctx_h, ctx_size, src, length, kind)
        if kind == KIND_SOCKET:  # the Ethernet header is consumed before the program runs
            pkt[PKT_DATA] = head + ETH_HLEN
            pkt[PKT_META] = head + ETH_HLEN
            pkt[PKT_L3] = ETH_HLEN


@njit(cache=True)
def end_event(kind, head, src, length, in_h, pkt_h, out_h, used, pkt):
    """Keep what the program changed of the event (its input or packet). Returns (new fill
    of the output arena, where the changed bytes start or -1, how many)."""
    if kind == KIND_RAW:
        if mo.mem_equal(in_h, src, length):  # raw programs may write their input; usually not
            return used, np.int64(-1), np.int64(0)
        mo.mem_copy(out_h + np.uint64(used), in_h, length)
        return used + length, used, length
    lo = pkt[PKT_META] if kind == KIND_XDP else pkt[PKT_DATA] - pkt[PKT_L3]
    out_len = pkt[PKT_END] - lo
    l3 = pkt[PKT_L3]
    if lo == head and out_len == length and mo.mem_equal(pkt_h + np.uint64(head + l3), src + np.uint64(l3),
                                                         length - l3):
        return used, np.int64(-1), np.int64(0)
    mo.mem_copy(out_h + np.uint64(used), pkt_h + np.uint64(lo), out_len)
    if kind == KIND_SOCKET:  # the consumed header comes back as it went in
        mo.mem_copy(out_h + np.uint64(used), src, ETH_HLEN)
    return used + out_len, used, out_len
