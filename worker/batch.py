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
from .helpers import LS_RUN
from .intrinsics import load_u8, load_u16, load_u32
from .memory import COL_RLEN, COL_WLEN, REGION_CTX, REGION_INPUT, REGION_SHIFT, REGION_STACK

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
def _init_skb(ctx, frame, length, kind):
    """__sk_buff as BPF_PROG_TEST_RUN builds it on the loopback device (checked against the
    host kernel): len (minus the Ethernet header for socket filters), pkt_type from the
    destination MAC, protocol as the frame carries it, ifindex 1; everything else zero.
    ``frame`` is the host address of the frame's bytes."""
    mo.mem_zero(np.uint64(ctx.ctypes.data), ctx.shape[0])
    skb_len = length - ETH_HLEN if kind == KIND_SOCKET else length
    _put32(ctx, 0, skb_len)
    multicast = (load_u8(frame) & U1) != U0
    zero = (load_u32(frame) | load_u16(frame + np.uint64(4))) == U0
    pkt_type = PACKET_MULTICAST if multicast else (PACKET_HOST if zero else PACKET_OTHERHOST)
    _put32(ctx, 4, pkt_type)
    _put32(ctx, 16, np.int64(load_u16(frame + np.uint64(12))))  # network order, as stored
    _put32(ctx, 40, LOOPBACK_IFINDEX)


@njit(cache=True)
def _put32(buf, off, v):
    for b in range(4):
        buf[off + b] = np.uint8((v >> (8 * b)) & 0xFF)


@njit(cache=True)
def headroom_of(kind):
    if kind == KIND_XDP:
        return np.int64(256)
    if kind == KIND_SKB or kind == KIND_SOCKET:
        return np.int64(64)
    return np.int64(0)


@njit(cache=True)
def begin_event(e, kind, head, blob_h, offsets, regions, regs, stack, stack_size, inbuf, pktbuf, ctxbuf,
                ctx_size, pkt, logstate):
    """Present event ``e`` to the program: registers, a zeroed outermost stack frame, and the
    input bytes (raw) or the packet and its context (XDP, tc, socket filter)."""
    start = offsets[e]
    length = offsets[e + 1] - start
    src = blob_h + np.uint64(start)
    mo.mem_zero(np.uint64(stack.ctypes.data) + np.uint64(stack.shape[0] - stack_size), stack_size)
    for i in range(regs.shape[0]):
        regs[i] = U0
    regs[10] = (np.uint64(REGION_STACK) << SH) | np.uint64(stack.shape[0])
    logstate[LS_RUN] = e
    if kind == KIND_RAW:
        mo.mem_copy(np.uint64(inbuf.ctypes.data), src, length)
        regions[REGION_INPUT, COL_RLEN] = np.uint64(length)
        regions[REGION_INPUT, COL_WLEN] = np.uint64(length)
        regs[1] = np.uint64(REGION_INPUT) << SH
        regs[2] = np.uint64(length)
        return
    pkt_h = np.uint64(pktbuf.ctypes.data)
    if pkt[PKT_HEAD_DIRTY] != 0:  # a previous run moved data into the headroom: the kernel's is zero
        mo.mem_zero(pkt_h, head)
        pkt[PKT_HEAD_DIRTY] = 0
    mo.mem_copy(pkt_h + np.uint64(head), src, length)
    pkt[PKT_META] = head
    pkt[PKT_DATA] = head
    pkt[PKT_END] = head + length
    pkt[PKT_CAP] = pktbuf.shape[0]
    pkt[PKT_L3] = 0
    pkt[PKT_REDIRECT_KIND] = 0
    pkt[PKT_REDIRECT_TARGET] = 0
    pkt[PKT_REDIRECT_FLAGS] = 0
    if kind == KIND_XDP:
        mo.mem_zero(np.uint64(ctxbuf.ctypes.data), ctx_size)
        _put32(ctxbuf, 12, LOOPBACK_IFINDEX)  # ingress_ifindex; rx_queue_index 0
    else:
        _init_skb(ctxbuf, src, length, kind)
        if kind == KIND_SOCKET:  # the Ethernet header is consumed before the program runs
            pkt[PKT_DATA] = head + ETH_HLEN
            pkt[PKT_META] = head + ETH_HLEN
            pkt[PKT_L3] = ETH_HLEN
    regs[1] = np.uint64(REGION_CTX) << SH


@njit(cache=True)
def end_event(e, kind, head, blob_h, offsets, inbuf, pktbuf, ctxbuf, pkt, used, out_meta, out_data, out_ctx):
    """Keep what the program changed of event ``e`` (its input or packet, redirects, context);
    returns the new fill of ``out_data``."""
    start = offsets[e]
    length = offsets[e + 1] - start
    src = blob_h + np.uint64(start)
    out_h = np.uint64(out_data.ctypes.data)
    if kind == KIND_RAW:
        in_h = np.uint64(inbuf.ctypes.data)
        if mo.mem_equal(in_h, src, length):  # raw programs may write their input; usually not
            out_meta[e, OM_DATA_OFF] = -1
        else:
            mo.mem_copy(out_h + np.uint64(used), in_h, length)
            out_meta[e, OM_DATA_OFF] = used
            out_meta[e, OM_DATA_LEN] = length
            used += length
        return used
    pkt_h = np.uint64(pktbuf.ctypes.data)
    lo = pkt[PKT_META] if kind == KIND_XDP else pkt[PKT_DATA] - pkt[PKT_L3]
    hi = pkt[PKT_END]
    out_len = hi - lo
    l3 = pkt[PKT_L3]
    changed = lo != head or out_len != length or not mo.mem_equal(
        pkt_h + np.uint64(head + l3), src + np.uint64(l3), length - l3)
    if changed:
        mo.mem_copy(out_h + np.uint64(used), pkt_h + np.uint64(lo), out_len)
        if kind == KIND_SOCKET:  # the consumed header comes back as it went in
            mo.mem_copy(out_h + np.uint64(used), src, ETH_HLEN)
        out_meta[e, OM_DATA_OFF] = used
        out_meta[e, OM_DATA_LEN] = out_len
        used += out_len
    else:
        out_meta[e, OM_DATA_OFF] = -1
    out_meta[e, OM_REDIRECT_KIND] = pkt[PKT_REDIRECT_KIND]
    out_meta[e, OM_REDIRECT_TARGET] = pkt[PKT_REDIRECT_TARGET]
    out_meta[e, OM_REDIRECT_FLAGS] = pkt[PKT_REDIRECT_FLAGS]
    for b in range(out_ctx.shape[1]):
        out_ctx[e, b] = ctxbuf[b]
    return used
