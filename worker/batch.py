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
    PKT_B_CTX,
    PKT_B_CTX_SIZE,
    PKT_B_EVENT_WRITES,
    PKT_B_FRAME0,
    PKT_B_HEAD,
    PKT_B_IN,
    PKT_B_KIND,
    PKT_B_META,
    PKT_B_META_STRIDE,
    PKT_B_OUT,
    PKT_B_PKT,
    PKT_B_PKT_CAP,
    PKT_B_STACK_ZERO,
    PKT_CAP,
    PKT_DATA,
    PKT_END,
    PKT_HEAD_DIRTY,
    PKT_L3,
    PKT_META,
    PKT_REDIRECT_FLAGS,
    PKT_REDIRECT_KIND,
    PKT_REDIRECT_TARGET,
    XDP_SIZE,
)
from .intrinsics import copy_bytes, fill_zero, load_u8, load_u16, load_u32, load_u64, never_inline, store_u32, store_u64
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
    fill_zero(ctx_h, ctx_size)
    skb_len = length - ETH_HLEN if kind == KIND_SOCKET else length
    store_u32(ctx_h, np.uint64(skb_len))
    multicast = (load_u8(frame) & U1) != U0
    zero = (load_u32(frame) | load_u16(frame + np.uint64(4))) == U0
    pkt_type = PACKET_MULTICAST if multicast else (PACKET_HOST if zero else PACKET_OTHERHOST)
    store_u32(ctx_h + np.uint64(4), np.uint64(pkt_type))
    store_u32(ctx_h + np.uint64(16), load_u16(frame + np.uint64(12)))  # network order, as stored
    store_u32(ctx_h + np.uint64(40), np.uint64(LOOPBACK_IFINDEX))


# Event-sized copies and fills in 32-byte pieces of constant size, which LLVM emits as inline
# vector moves; a variable-size memcpy/memset is a libc call that cost more than the bytes.
@njit(cache=True, inline="always")
def _copy(dst, src, n):
    i = np.int64(0)
    while i + 32 <= n:
        copy_bytes(dst + np.uint64(i), src + np.uint64(i), np.int64(32))
        i += 32
    if i < n:
        copy_bytes(dst + np.uint64(i), src + np.uint64(i), n - i)


@njit(cache=True, inline="always")
def _zero(dst, n):
    i = np.int64(0)
    while i + 32 <= n:
        fill_zero(dst + np.uint64(i), np.int64(32))
        i += 32
    if i < n:
        fill_zero(dst + np.uint64(i), n - i)


@njit(cache=True)
def headroom_of(kind):
    if kind == KIND_XDP:
        return np.int64(256)
    if kind == KIND_SKB or kind == KIND_SOCKET:
        return np.int64(64)
    return np.int64(0)


# The two functions below take the packet state's host address (``st``) and the event; the
# batch's constants are in the state (PKT_B_*), written once by the caller. Numba passes each
# array as seven scalars, and a call per event with a dozen arguments cost more than a short
# program.

@njit(cache=True, inline="always")
def _get(st, slot):
    return np.int64(load_u64(st + np.uint64(8 * slot)))


@njit(cache=True, inline="always")
def _addr(st, slot):
    return load_u64(st + np.uint64(8 * slot))


@njit(cache=True, inline="always")
def _set(st, slot, value):
    store_u64(st + np.uint64(8 * slot), value)


@njit(cache=True)
def begin_event(st, src, length):
    """Present an event (``length`` bytes at host address ``src``) to the program: the
    outermost stack frame zeroed (PKT_B_STACK_ZERO bytes: 0 for code that never uses the
    stack), and the input bytes (raw) or the packet and its context (XDP, tc, socket filter).
    Registers are the caller's business."""
    never_inline()
    kind = _get(st, PKT_B_KIND)
    _zero(_addr(st, PKT_B_FRAME0), _get(st, PKT_B_STACK_ZERO))
    if kind == KIND_RAW:
        _copy(_addr(st, PKT_B_IN), src, length)
        return
    head = _get(st, PKT_B_HEAD)
    pkt_h = _addr(st, PKT_B_PKT)
    ctx_h = _addr(st, PKT_B_CTX)
    if _get(st, PKT_HEAD_DIRTY) != 0:  # a previous run moved data into the headroom: the kernel's is zero
        fill_zero(pkt_h, head)
        _set(st, PKT_HEAD_DIRTY, 0)
    _copy(pkt_h + np.uint64(head), src, length)
    _set(st, PKT_META, head)
    _set(st, PKT_DATA, head)
    _set(st, PKT_END, head + length)
    _set(st, PKT_CAP, _get(st, PKT_B_PKT_CAP))
    _set(st, PKT_L3, 0)
    _set(st, PKT_REDIRECT_KIND, 0)
    _set(st, PKT_REDIRECT_TARGET, 0)
    _set(st, PKT_REDIRECT_FLAGS, 0)
    if kind == KIND_XDP:
        fill_zero(ctx_h, XDP_SIZE)  # a constant size: inline stores, no call
        store_u32(ctx_h + np.uint64(12), np.uint64(LOOPBACK_IFINDEX))  # ingress_ifindex; rx queue 0
    else:
        _init_skb(ctx_h, _get(st, PKT_B_CTX_SIZE), src, length, kind)
        if kind == KIND_SOCKET:  # the Ethernet header is consumed before the program runs
            _set(st, PKT_DATA, head + ETH_HLEN)
            _set(st, PKT_META, head + ETH_HLEN)
            _set(st, PKT_L3, ETH_HLEN)


@njit(cache=True)
def end_event(st, src, length, used, e):
    """Keep what the program changed of event ``e`` (its input or packet) and write its
    ``out_meta`` row: where the changed bytes start in the output arena (or -1) and how many,
    and the redirect. Returns the new fill of the arena. When decode found nothing in the
    program that could change the event's bytes (PKT_B_EVENT_WRITES = 0) there is nothing to
    compare.

    One scalar back, not a tuple: the caller read a returned tuple with one 16-byte load of the
    two 8-byte stores just made, which cannot be store-forwarded and stalled every event."""
    never_inline()
    kind = _get(st, PKT_B_KIND)
    may_change = _get(st, PKT_B_EVENT_WRITES) != 0
    out_h = _addr(st, PKT_B_OUT)
    data_off = np.int64(-1)
    data_len = np.int64(0)
    redirect_kind = redirect_target = redirect_flags = np.int64(0)
    if kind == KIND_RAW:
        in_h = _addr(st, PKT_B_IN)
        if may_change and not mo.mem_equal(in_h, src, length):  # raw programs may write their input; usually not
            copy_bytes(out_h + np.uint64(used), in_h, length)
            data_off, data_len = used, length
    else:
        head = _get(st, PKT_B_HEAD)
        pkt_h = _addr(st, PKT_B_PKT)
        l3 = _get(st, PKT_L3)
        lo = _get(st, PKT_META) if kind == KIND_XDP else _get(st, PKT_DATA) - l3
        out_len = _get(st, PKT_END) - lo
        if may_change and not (lo == head and out_len == length
                               and mo.mem_equal(pkt_h + np.uint64(head + l3), src + np.uint64(l3), length - l3)):
            copy_bytes(out_h + np.uint64(used), pkt_h + np.uint64(lo), out_len)
            if kind == KIND_SOCKET:  # the consumed header comes back as it went in
                copy_bytes(out_h + np.uint64(used), src, ETH_HLEN)
            data_off, data_len = used, out_len
        redirect_kind = _get(st, PKT_REDIRECT_KIND)
        redirect_target = _get(st, PKT_REDIRECT_TARGET)
        redirect_flags = _get(st, PKT_REDIRECT_FLAGS)
    # Every column of the row is written: the engine does not zero the result columns first.
    meta_h = _addr(st, PKT_B_META) + np.uint64(e * _get(st, PKT_B_META_STRIDE))
    store_u64(meta_h + np.uint64(8 * OM_REDIRECT_KIND), redirect_kind)
    store_u64(meta_h + np.uint64(8 * OM_REDIRECT_TARGET), redirect_target)
    store_u64(meta_h + np.uint64(8 * OM_REDIRECT_FLAGS), redirect_flags)
    store_u64(meta_h + np.uint64(8 * OM_DATA_OFF), data_off)
    store_u64(meta_h + np.uint64(8 * OM_DATA_LEN), data_len)
    return used + data_len
