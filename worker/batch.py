"""The batch loop: present each event to the program as its type expects, run it, collect.

Everything per event happens here, in compiled code: copying the event into the input or packet
buffer, building the context, running ``interp.execute``, and saving r0, counts, the packet if
the program changed it, and the context. Python sees only the columns at the end.
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
    PKT_L3,
    PKT_META,
    PKT_REDIRECT_FLAGS,
    PKT_REDIRECT_KIND,
    PKT_REDIRECT_TARGET,
)
from .helpers import CORE_CYCLES, LS_RUN
from .interp import execute
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
def run_batch(columns, taken_extra, entry_pc, kind, regions, maps, regs, frames, core, stack, inbuf, pktbuf,
              ctxbuf, ctx_ptr, ctx_wmask, ctx_size, pkt, log, logidx, logstate, scratch, entries, budget,
              stack_size, max_depth, blob, offsets, first_run, used, out_r0, out_insns, out_cycles, out_status,
              out_pc, out_aux, out_meta, out_data, out_ctx):
    """Run events ``first_run ..`` of the batch, writing changed packets into ``out_data`` from
    byte ``used`` on; returns (runs done, bytes of ``out_data`` used). It stops early only when
    ``out_data`` may have no room for the next packet; the caller continues with a bigger one."""
    cword, cop, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc = columns
    # Host addresses, so the per-event copies below are word loops without array views
    # (each view would cost reference-count updates).
    blob_h = np.uint64(blob.ctypes.data)
    in_h = np.uint64(inbuf.ctypes.data)
    pkt_h = np.uint64(pktbuf.ctypes.data)
    ctx_h = np.uint64(ctxbuf.ctypes.data)
    out_h = np.uint64(out_data.ctypes.data)
    frame0_h = np.uint64(stack.ctypes.data) + np.uint64(stack.shape[0] - stack_size)
    stack_top = np.uint64(stack.shape[0])
    n_events = offsets.shape[0] - 1
    head = np.int64(0)
    if kind == KIND_XDP:
        head = np.int64(256)
    elif kind == KIND_SKB or kind == KIND_SOCKET:
        head = np.int64(64)
    for e in range(first_run, n_events):
        start = offsets[e]
        length = offsets[e + 1] - start
        src = blob_h + np.uint64(start)
        # Room for this run's packet however the program resizes it (head and tail room).
        if used + length + 1024 > out_data.shape[0] and e > first_run:
            return e - first_run, used
        mo.mem_zero(frame0_h, stack_size)
        for i in range(regs.shape[0]):
            regs[i] = U0
        regs[10] = (np.uint64(REGION_STACK) << SH) | stack_top
        logstate[LS_RUN] = e
        if kind == KIND_RAW:
            mo.mem_copy(in_h, src, length)
            regions[REGION_INPUT, COL_RLEN] = np.uint64(length)
            regions[REGION_INPUT, COL_WLEN] = np.uint64(length)
            regs[1] = np.uint64(REGION_INPUT) << SH
            regs[2] = np.uint64(length)
        else:
            mo.mem_zero(pkt_h, head)
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
                mo.mem_zero(ctx_h, ctx_size)
                _put32(ctxbuf, 12, LOOPBACK_IFINDEX)  # ingress_ifindex; rx_queue_index 0
            else:
                _init_skb(ctxbuf, src, length, kind)
                if kind == KIND_SOCKET:  # the Ethernet header is consumed before the program runs
                    pkt[PKT_DATA] = head + ETH_HLEN
                    pkt[PKT_META] = head + ETH_HLEN
                    pkt[PKT_L3] = ETH_HLEN
            regs[1] = np.uint64(REGION_CTX) << SH
        status, pc, aux, ni, nc = execute(cword, cop, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc, taken_extra,
                                          entry_pc, regions, maps, regs, frames, core, budget, stack_size,
                                          max_depth, pkt, ctx_ptr, ctx_wmask, log, logidx, logstate, scratch,
                                          entries)
        core[CORE_CYCLES] += np.uint64(nc)  # the core's virtual clock runs on
        out_r0[e] = regs[0]
        out_insns[e] = ni
        out_cycles[e] = nc
        out_status[e] = status
        out_pc[e] = pc
        out_aux[e] = aux
        if kind == KIND_RAW:
            # Raw programs may write their input; keep it only when they did.
            if not mo.mem_equal(in_h, src, length):
                mo.mem_copy(out_h + np.uint64(used), in_h, length)
                out_meta[e, OM_DATA_OFF] = used
                out_meta[e, OM_DATA_LEN] = length
                used += length
            else:
                out_meta[e, OM_DATA_OFF] = -1
        else:
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
            if out_ctx.shape[1] > 0:
                for b in range(out_ctx.shape[1]):
                    out_ctx[e, b] = ctxbuf[b]
    regions[REGION_INPUT, COL_RLEN] = U0
    regions[REGION_INPUT, COL_WLEN] = U0
    return n_events - first_run, used
