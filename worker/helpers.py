"""Helper functions (``call N``), by their Linux helper ids and with the kernel's semantics.

``call_helper`` is the one hook the interpreter calls; every helper is a case in it, so the
whole engine stays one compiled unit with no indirect calls. Helpers read r1-r5, write r0 and
return a status: ``HELPER_OK`` to continue, or a fault code that ends the run. Helpers that move
control (``bpf_tail_call``, ``bpf_loop``) live in the interpreter itself.

Every pointer a program passes is checked against the region table before it is touched, like
every load and store of the interpreter. The environment a helper sees:

- ``core``: per-core state (``CORE_*``): core id, clock, random state, pid/tgid;
- ``maps``: one descriptor row per map (``mapops.D_*``);
- ``pkt``: the packet state of the run (``contexts.PKT_*``);
- ``log``/``logidx``/``logstate``: where trace lines and output records of the batch go.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpfmc.ebpf import maps as mt

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from . import mapops as mo
from .contexts import (
    KIND_XDP,
    PKT_CAP,
    PKT_DATA,
    PKT_END,
    PKT_HEAD_DIRTY,
    PKT_KIND,
    PKT_META,
    PKT_REDIRECT_FLAGS,
    PKT_REDIRECT_KIND,
    PKT_REDIRECT_TARGET,
)
from .intrinsics import load_u8, load_u16, load_u32, load_u64, store_u8, store_u16, store_u32, store_u64
from .memory import COL_BASE, COL_RLEN, COL_WLEN, FIRST_DYNAMIC_REGION, REGION_PACKET, REGION_SHIFT, host_address

# Linux helper ids (include/uapi/linux/bpf.h, __BPF_FUNC_MAPPER order).
HELPER_NAMES = {
    1: "bpf_map_lookup_elem", 2: "bpf_map_update_elem", 3: "bpf_map_delete_elem", 4: "bpf_probe_read",
    5: "bpf_ktime_get_ns", 6: "bpf_trace_printk", 7: "bpf_get_prandom_u32", 8: "bpf_get_smp_processor_id",
    9: "bpf_skb_store_bytes", 10: "bpf_l3_csum_replace", 11: "bpf_l4_csum_replace", 12: "bpf_tail_call",
    14: "bpf_get_current_pid_tgid", 15: "bpf_get_current_uid_gid", 16: "bpf_get_current_comm",
    23: "bpf_redirect", 25: "bpf_perf_event_output", 26: "bpf_skb_load_bytes", 28: "bpf_csum_diff",
    34: "bpf_get_hash_recalc", 39: "bpf_skb_pull_data", 42: "bpf_get_numa_node_id", 44: "bpf_xdp_adjust_head",
    51: "bpf_redirect_map", 54: "bpf_xdp_adjust_meta", 65: "bpf_xdp_adjust_tail", 87: "bpf_map_push_elem",
    88: "bpf_map_pop_elem", 89: "bpf_map_peek_elem", 112: "bpf_probe_read_user", 113: "bpf_probe_read_kernel",
    118: "bpf_jiffies64", 125: "bpf_ktime_get_boot_ns", 130: "bpf_ringbuf_output", 131: "bpf_ringbuf_reserve",
    132: "bpf_ringbuf_submit", 133: "bpf_ringbuf_discard", 134: "bpf_ringbuf_query", 160: "bpf_ktime_get_coarse_ns",
    181: "bpf_loop", 195: "bpf_map_lookup_percpu_elem",
}
SUPPORTED_HELPERS = frozenset(HELPER_NAMES)
BPF_FUNC_tail_call = 12
BPF_FUNC_loop = 181

# Layout of the per-core state array (uint64).
CORE_ID = 0
CORE_CLOCK_HZ = 1
CORE_TIME_BASE_NS = 2  # virtual time at the start of the current run
CORE_PRNG = 3  # xorshift64* state, never 0
CORE_PID_TGID = 4
CORE_UID_GID = 5
CORE_NMAPS = 6
CORE_CYCLES = 7  # cycles this core ran in earlier runs: its virtual clock
# Counters of what the core ran, for statistics (a pool worker reads them before and after a
# batch: one engine call runs all its cores, so nothing per core is timed or counted in Python).
CORE_EVENTS = 8
CORE_INSNS = 9
CORE_FAULTS = 10
CORE_STATE_SIZE = 11

# Helper statuses (anything else is a fault that ends the run).
HELPER_OK = 0
HELPER_UNKNOWN = 1
HELPER_BAD_POINTER = 2  # a pointer argument outside readable/writable memory
HELPER_BAD_MAP = 3  # r1 is not a map of this program

# Log record kinds and the log's bookkeeping words.
LOG_TRACE = 1  # bpf_trace_printk: fmt bytes, then three u64 arguments
LOG_RECORD = 2  # perf_event_output / ringbuf record: the bytes
LS_ENTRIES = 0
LS_BYTES = 1
LS_RUN = 2
LS_LOST = 3
LOGSTATE_SIZE = 4
# logidx columns
LI_RUN, LI_KIND, LI_OFFSET, LI_LENGTH, LI_MAP = 0, 1, 2, 3, 4
LOGIDX_COLS = 5

EFAULT = 14
BPF_F_MARK_MANGLED_0 = 1 << 5
COMM = b"bpfmc"  # what bpf_get_current_comm reports: the emulated task is ours
M32 = np.uint64(0xFFFFFFFF)
U0 = np.uint64(0)
SH = np.uint64(REGION_SHIFT)
XDP_REDIRECT = 4
TC_ACT_REDIRECT = 7
BPF_RB_AVAIL_DATA, BPF_RB_RING_SIZE, BPF_RB_CONS_POS, BPF_RB_PROD_POS = 0, 1, 2, 3


def new_core_table(core_ids, clock_hz: int, seed: int, nmaps: int = 0) -> np.ndarray:
    """The state of the emulated cores an engine hosts, one row per core (``CORE_*`` columns),
    in the order of ``core_ids``; rows are what the interpreter switches between."""
    table = np.zeros((len(core_ids), CORE_STATE_SIZE), np.uint64)
    for row, c in enumerate(core_ids):
        new_core_state(c, clock_hz, seed, nmaps, out=table[row])
    return table


def new_core_state(core_id: int, clock_hz: int, seed: int, nmaps: int = 0, out: np.ndarray | None = None
                   ) -> np.ndarray:
    core = np.zeros(CORE_STATE_SIZE, np.uint64) if out is None else out
    core[CORE_ID] = core_id
    core[CORE_CLOCK_HZ] = clock_hz
    # Distinct, reproducible streams per core from one seed (splitmix64 of seed and core id).
    core[CORE_PRNG] = _splitmix64((seed * 0x9E3779B97F4A7C15 + core_id + 1) & 0xFFFFFFFFFFFFFFFF) or 1
    core[CORE_PID_TGID] = (1000 << 32) | (1000 + core_id)  # tgid 1000, one thread per core
    core[CORE_UID_GID] = 0
    core[CORE_NMAPS] = nmaps
    return core


def _splitmix64(x: int) -> int:
    m = 0xFFFFFFFFFFFFFFFF
    x = (x + 0x9E3779B97F4A7C15) & m
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & m
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & m
    return x ^ (x >> 31)


def map_handle_region(index: int) -> int:
    """Region id standing for map ``index`` itself (what ``lddw rX, map`` loads; unbacked)."""
    return FIRST_DYNAMIC_REGION + 2 * index


def map_value_region(index: int) -> int:
    """Region id of map ``index``'s value area."""
    return FIRST_DYNAMIC_REGION + 2 * index + 1


# -- checked access to program memory ----------------------------------------------------------

@njit(cache=True)
def _map_index(core, handle):
    rid = np.int64(handle >> SH)
    i = (rid - FIRST_DYNAMIC_REGION) // 2
    if rid < FIRST_DYNAMIC_REGION or (rid - FIRST_DYNAMIC_REGION) % 2 != 0 or (handle & M32) != U0:
        return np.int64(-1)
    if i >= np.int64(core[CORE_NMAPS]):
        return np.int64(-1)
    return i


@njit(cache=True)
def _tmp(scratch):
    """Scratch memory for map operations (LPM key normalisation): past the helper temporaries."""
    return np.uint64(scratch.ctypes.data) + np.uint64(64)


@njit(cache=True)
def _value_pointer(desc, host):
    return (np.uint64(desc[mo.D_VALUE_REGION]) << SH) | (host - np.uint64(desc[mo.D_VALUES]))


# -- time and randomness -----------------------------------------------------------------------

@njit(cache=True)
def virtual_time_ns(core, cycles):
    """The core's clock: every cycle it has run, earlier runs and this one so far, at the
    model's clock rate (split in seconds and the rest so 64 bits do not overflow)."""
    total = core[CORE_CYCLES] + np.uint64(cycles)
    hz = core[CORE_CLOCK_HZ]
    return (core[CORE_TIME_BASE_NS] + (total // hz) * np.uint64(1_000_000_000)
            + (total % hz) * np.uint64(1_000_000_000) // hz)


@njit(cache=True)
def prandom_u32(core):
    x = core[CORE_PRNG]
    x ^= x >> np.uint64(12)
    x ^= x << np.uint64(25)
    x ^= x >> np.uint64(27)
    core[CORE_PRNG] = x
    return (x * np.uint64(0x2545F4914F6CDD1D)) >> np.uint64(32)


# -- the log: trace lines and records ----------------------------------------------------------

@njit(cache=True)
def log_append(log, logidx, logstate, kind, src, n, extra, map_index):
    """Append ``n`` bytes from host ``src`` (+ ``extra`` u64 words from ``extra``) as one entry.
    A full log drops the entry and counts it, as a full perf buffer does."""
    e = logstate[LS_ENTRIES]
    used = logstate[LS_BYTES]
    total = n + 8 * extra.shape[0]
    if e >= logidx.shape[0] or used + total > log.shape[0]:
        logstate[LS_LOST] += 1
        return False
    base = np.uint64(log.ctypes.data) + np.uint64(used)
    mo.mem_copy(base, src, n)
    for i in range(extra.shape[0]):
        v = extra[i]
        for b in range(8):
            log[used + n + 8 * i + b] = np.uint8((v >> np.uint64(8 * b)) & np.uint64(0xFF))
    logidx[e, LI_RUN] = logstate[LS_RUN]
    logidx[e, LI_KIND] = kind
    logidx[e, LI_OFFSET] = used
    logidx[e, LI_LENGTH] = total
    logidx[e, LI_MAP] = map_index
    logstate[LS_ENTRIES] = e + 1
    logstate[LS_BYTES] = used + total
    return True


@njit(cache=True)
def _ring_produced(desc, core, n):
    """Bytes this run put in a ring buffer (8-byte header + data rounded up to 8 per record);
    adds a record of ``n`` bytes unless ``n`` < 0. Records are consumed after every run, so
    the count restarts with each run. A run is named by its core and that core's count of
    events before it: the event's index in its batch repeats from batch to batch (every
    single-event call is event 0), which kept the count growing across calls."""
    hdr = np.uint64(desc[mo.D_HEADER])
    run = (np.uint64(core[CORE_ID]) << np.uint64(40)) | (np.uint64(core[CORE_EVENTS]) + np.uint64(1))
    if load_u64(hdr + np.uint64(mo.H_HAND)) != run:
        store_u64(hdr + np.uint64(mo.H_HAND), run)
        store_u64(hdr + np.uint64(mo.H_BUMP), U0)
    total = load_u64(hdr + np.uint64(mo.H_BUMP))
    if n >= 0:
        total += np.uint64(8 + (n + 7) // 8 * 8)
        store_u64(hdr + np.uint64(mo.H_BUMP), total)
    return total


@njit(cache=True)
def _digits(v, base):
    n = 1
    while v >= np.uint64(base):
        v //= np.uint64(base)
        n += 1
    return n


@njit(cache=True)
def trace_length(fmt, n, args):
    """Length of the line bpf_trace_printk writes (its return value), computed like the
    kernel's vsnprintf for the conversions it allows: %d %i %u %x %X %p %c %% with flags,
    width and the h/l/ll/z modifiers; %s counts as empty here (its text is not copied)."""
    out = 0
    i = 0
    used = 0
    while i < n:
        ch = load_u8(fmt + np.uint64(i))
        if ch == U0:
            break
        if ch != np.uint64(37):  # '%'
            out += 1
            i += 1
            continue
        i += 1
        width = 0
        while i < n:
            c = load_u8(fmt + np.uint64(i))
            if c == np.uint64(45) or c == np.uint64(43) or c == np.uint64(32) or c == np.uint64(35) or (
                    c == np.uint64(48) and width == 0):
                i += 1
            elif np.uint64(48) <= c <= np.uint64(57):
                width = width * 10 + np.int64(c - np.uint64(48))
                i += 1
            else:
                break
        longs = 0
        while i < n:
            c = load_u8(fmt + np.uint64(i))
            if c == np.uint64(108) or c == np.uint64(122):  # l, z
                longs += 1
                i += 1
            elif c == np.uint64(104):  # h
                i += 1
            else:
                break
        if i >= n:
            break
        conv = load_u8(fmt + np.uint64(i))
        i += 1
        if conv == np.uint64(37):
            out += 1
            continue
        v = args[used] if used < 3 else U0
        used += 1
        if longs == 0 and conv != np.uint64(112):
            v &= M32
        if conv == np.uint64(100) or conv == np.uint64(105):  # d, i: signed
            neg = (v >> np.uint64(63 if longs else 31)) & np.uint64(1)
            if neg != U0:
                v = (U0 - v) if longs else ((np.uint64(1) << np.uint64(32)) - v) & M32
            k = _digits(v, 10) + np.int64(neg)
        elif conv == np.uint64(117):
            k = _digits(v, 10)
        elif conv == np.uint64(120) or conv == np.uint64(88):
            k = _digits(v, 16)
        elif conv == np.uint64(112):  # %p prints 0x + hex
            k = _digits(v, 16) + 2
        elif conv == np.uint64(99):
            k = 1
        else:
            k = 0
        out += max(k, width)
    return out


# -- packets -----------------------------------------------------------------------------------

@njit(cache=True)
def _pkt_host(regions, pkt, offset, length):
    """Host address of ``length`` bytes at ``offset`` from the packet's data, or 0."""
    if offset < 0 or length < 0 or pkt[PKT_DATA] + offset + length > pkt[PKT_END]:
        return U0
    return regions[REGION_PACKET, COL_BASE] + np.uint64(pkt[PKT_DATA] + offset)


@njit(cache=True)
def csum_add(a, b):
    """32-bit ones'-complement addition (the kernel's csum_add): end-around carry."""
    s = (a & M32) + (b & M32)
    return (s & M32) + (s >> np.uint64(32))


@njit(cache=True)
def csum_fold(c):
    """Fold a 32-bit partial checksum to 16 bits and complement it (the kernel's csum_fold)."""
    s = (c & np.uint64(0xFFFF)) + ((c & M32) >> np.uint64(16))
    s = (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))
    return (~s) & np.uint64(0xFFFF)


@njit(cache=True)
def _csum16_add(a, b):
    s = (a & np.uint64(0xFFFF)) + (b & np.uint64(0xFFFF))
    return (s & np.uint64(0xFFFF)) + (s >> np.uint64(16))


@njit(cache=True)
def _csum_replace(regions, pkt, offset, old, new, size, l4, flags):
    """bpf_l3/l4_csum_replace: incremental update (RFC 1624) of the 16-bit checksum at
    ``offset``, with the kernel's exact arithmetic. Checksums are byte-order neutral, so the
    field, ``old`` and ``new`` are all taken as raw memory values, as the kernel takes them."""
    h = _pkt_host(regions, pkt, offset, 2)
    if h == U0:
        return np.int64(-EFAULT)
    field = load_u16(h)
    if l4 and (flags & np.uint64(BPF_F_MARK_MANGLED_0)) != U0 and field == U0:
        return np.int64(0)  # a UDP datagram without a checksum keeps none
    unfolded_not = (~field) & M32  # ~csum_unfold(*sum): the complement of the zero-extended field
    if size == 0:  # `new` is a difference from bpf_csum_diff
        result = csum_fold(csum_add(new, unfolded_not))
    elif size == 2 and not l4:  # csum_replace2: 16-bit arithmetic
        t = _csum16_add((~field) & np.uint64(0xFFFF), (~old) & np.uint64(0xFFFF))
        result = (~_csum16_add(t, new & np.uint64(0xFFFF))) & np.uint64(0xFFFF)
    elif size == 2 or size == 4:  # csum_replace4 (l4 size 2 widens the values, as the kernel does)
        if size == 2:
            old = old & np.uint64(0xFFFF)
            new = new & np.uint64(0xFFFF)
        result = csum_fold(csum_add(csum_add(unfolded_not, (~old) & M32), new & M32))
    else:
        return np.int64(-22)
    if l4 and (flags & np.uint64(BPF_F_MARK_MANGLED_0)) != U0 and result == U0:
        result = np.uint64(0xFFFF)
    store_u16(h, result)
    return np.int64(0)


@njit(cache=True)
def _adjust(regions, pkt, which, delta, minimum_len):
    """Move the packet's start (PKT_DATA), end (PKT_END) or metadata start (PKT_META)."""
    if delta < 0 and which != PKT_END:
        pkt[PKT_HEAD_DIRTY] = 1  # the headroom is in use: zero it again before the next event
    data, end, meta, cap = pkt[PKT_DATA], pkt[PKT_END], pkt[PKT_META], pkt[PKT_CAP]
    if which == PKT_DATA:
        nd = data + delta
        # Metadata must stay in front of the data; the kernel refuses to eat into it.
        if nd < 0 or nd > end - minimum_len or (meta < data and nd < meta + (data - meta)):
            return np.int64(-22)
        if meta == data:
            pkt[PKT_META] = nd
        else:
            pkt[PKT_META] = meta + delta
        pkt[PKT_DATA] = nd
    elif which == PKT_END:
        ne = end + delta
        if ne < data + minimum_len or ne > cap:
            return np.int64(-22)
        pkt[PKT_END] = ne
        if delta > 0:  # the kernel hands out grown tail room zeroed
            mo.mem_zero(regions[REGION_PACKET, COL_BASE] + np.uint64(end), delta)
    else:
        nm = meta + delta
        if nm > data or nm < 0 or data - nm > 32 or (data - nm) % 4 != 0:
            return np.int64(-13) if nm > data else np.int64(-22)
        pkt[PKT_META] = nm
    return np.int64(0)


# -- the dispatcher ----------------------------------------------------------------------------

@njit(cache=True)
def call_helper(hid, regs, core, cycles, regions, maps, pkt, log, logidx, logstate, scratch):
    """Run helper ``hid``. ``scratch`` is a small uint64 array for temporaries."""
    r1, r2, r3, r4, r5 = regs[1], regs[2], regs[3], regs[4], regs[5]
    cpu = np.int64(core[CORE_ID])
    owner = cpu + 1
    if hid == 1 or hid == 2 or hid == 3 or hid == 195 or hid == 87 or hid == 88 or hid == 89:
        mi = _map_index(core, r1)
        if mi < 0:
            return HELPER_BAD_MAP
        desc = maps[mi]
        if hid == 87:  # map_push_elem(map, value, flags)
            v = host_address(regions, r2, desc[mo.D_VALUE_SIZE], COL_RLEN)
            if v == U0:
                return HELPER_BAD_POINTER
            regs[0] = np.uint64(mo.queue_push(desc, v, np.int64(r3), owner))
            return HELPER_OK
        if hid == 88 or hid == 89:  # map_pop_elem / map_peek_elem(map, value)
            v = host_address(regions, r2, desc[mo.D_VALUE_SIZE], COL_WLEN)
            if v == U0:
                return HELPER_BAD_POINTER
            regs[0] = np.uint64(mo.queue_take(desc, v, hid == 88, owner))
            return HELPER_OK
        k = host_address(regions, r2, desc[mo.D_KEY_SIZE], COL_RLEN)
        if k == U0:
            return HELPER_BAD_POINTER
        if hid == 1 or hid == 195:  # lookup (percpu variant: r3 = cpu)
            c = cpu
            if hid == 195:
                c = np.int64(r3)
                if not mo.is_percpu(desc) or c >= desc[mo.D_NCPU]:
                    regs[0] = U0
                    return HELPER_OK
            slot = mo.map_lookup(desc, k, c, _tmp(scratch))
            regs[0] = U0 if slot < 0 else _value_pointer(desc, mo.value_addr(desc, slot, c))
        elif hid == 2:
            v = host_address(regions, r3, desc[mo.D_VALUE_SIZE], COL_RLEN)
            if v == U0:
                return HELPER_BAD_POINTER
            regs[0] = np.uint64(mo.map_update(desc, k, v, np.int64(r4), cpu, False, owner, _tmp(scratch)))
        else:
            regs[0] = np.uint64(mo.map_delete(desc, k, owner, _tmp(scratch)))
        return HELPER_OK
    if hid == 5 or hid == 125 or hid == 160:  # ktime_get_ns / boot_ns / coarse_ns
        regs[0] = virtual_time_ns(core, cycles)
    elif hid == 118:  # jiffies64, at HZ=1000 on the virtual clock
        regs[0] = virtual_time_ns(core, cycles) // np.uint64(1_000_000)
    elif hid == 7:
        regs[0] = prandom_u32(core)
    elif hid == 8:
        regs[0] = core[CORE_ID]
    elif hid == 42:  # numa node
        regs[0] = U0
    elif hid == 14:
        regs[0] = core[CORE_PID_TGID]
    elif hid == 15:
        regs[0] = core[CORE_UID_GID]
    elif hid == 16:  # get_current_comm(buf, size)
        n = np.int64(r2)
        dst = host_address(regions, r1, n, COL_WLEN)
        if dst == U0 or n <= 0:
            return HELPER_BAD_POINTER
        name = (np.uint64(ord("b")), np.uint64(ord("p")), np.uint64(ord("f")), np.uint64(ord("m")),
                np.uint64(ord("c")))
        for i in range(n):
            store_u8(dst + np.uint64(i), name[i] if i < 5 and i < n - 1 else U0)
        regs[0] = U0
    elif hid == 4 or hid == 112 or hid == 113:  # probe_read*(dst, size, src): the event's memory
        n = np.int64(r2)
        dst = host_address(regions, r1, n, COL_WLEN)
        if dst == U0:
            return HELPER_BAD_POINTER
        src = host_address(regions, r3, n, COL_RLEN)
        if src == U0:
            mo.mem_zero(dst, n)  # the kernel zeroes the destination on a faulting read
            # A kernel read of a user-range address (our region 0: NULL and small integers) is
            # -ERANGE, as copy_from_kernel_nofault says; anything else -EFAULT.
            regs[0] = np.uint64(-34) if hid == 113 and (r3 >> SH) == U0 else np.uint64(-EFAULT)
        else:
            mo.mem_copy(dst, src, n)
            regs[0] = U0
    elif hid == 6:  # trace_printk(fmt, fmt_size, a1, a2, a3): formatted later, in Python
        n = np.int64(r2)
        fmt = host_address(regions, r1, n, COL_RLEN)
        if fmt == U0:
            return HELPER_BAD_POINTER
        scratch[0], scratch[1], scratch[2] = r3, r4, r5
        log_append(log, logidx, logstate, LOG_TRACE, fmt, n, scratch[:3], -1)
        regs[0] = np.uint64(trace_length(fmt, n, scratch))
    elif hid == 25 or hid == 130:  # perf_event_output(ctx, map, flags, data, n) / ringbuf_output(map, data, n, flags)
        handle = r2 if hid == 25 else r1
        data = r4 if hid == 25 else r2
        n = np.int64(r5 if hid == 25 else r3)
        mi = _map_index(core, handle)
        if mi < 0:
            return HELPER_BAD_MAP
        src = host_address(regions, data, n, COL_RLEN)
        if src == U0:
            return HELPER_BAD_POINTER
        ok = log_append(log, logidx, logstate, LOG_RECORD, src, n, scratch[:0], mi)
        if hid == 130:
            _ring_produced(maps[mi], core, n)
        regs[0] = U0 if ok else np.uint64(-28)
    elif hid == 131:  # ringbuf_reserve(map, size, flags): a slot of the ring, consumed at submit
        mi = _map_index(core, r1)
        if mi < 0:
            return HELPER_BAD_MAP
        desc = maps[mi]
        n = np.int64(r2)
        size = desc[mo.D_MAX_ENTRIES]
        hdr = np.uint64(desc[mo.D_HEADER])
        # The ring is drained at every submit/discard, so reservations are taken from the start
        # of the data area, one after another while several are outstanding.
        pos = np.int64(load_u64(hdr + np.uint64(mo.H_TAIL)))
        need = (n + 8 + 7) // 8 * 8
        if r3 != U0 or n <= 0 or pos + need > size:
            regs[0] = U0
        else:
            store_u64(hdr + np.uint64(mo.H_TAIL), np.uint64(pos + need))
            store_u64(hdr + np.uint64(mo.H_HEAD), load_u64(hdr + np.uint64(mo.H_HEAD)) + np.uint64(1))
            store_u32(np.uint64(desc[mo.D_VALUES] + pos), np.uint64(n))
            regs[0] = (np.uint64(desc[mo.D_VALUE_REGION]) << SH) | np.uint64(pos + 8)
    elif hid == 132 or hid == 133:  # ringbuf_submit / discard(data, flags)
        rid = np.int64(r1 >> SH)
        mi = (rid - FIRST_DYNAMIC_REGION - 1) // 2
        if rid < FIRST_DYNAMIC_REGION + 1 or (rid - FIRST_DYNAMIC_REGION - 1) % 2 != 0 or mi >= np.int64(
                core[CORE_NMAPS]):
            return HELPER_BAD_POINTER
        desc = maps[mi]
        off = np.int64(r1 & M32)
        if desc[mo.D_TYPE] != mt.BPF_MAP_TYPE_RINGBUF or off < 8 or off > desc[mo.D_MAX_ENTRIES]:
            return HELPER_BAD_POINTER
        rec = np.uint64(desc[mo.D_VALUES] + off)
        n = np.int64(load_u32(rec - np.uint64(8)))
        if hid == 132:
            log_append(log, logidx, logstate, LOG_RECORD, rec, n, scratch[:0], mi)
        _ring_produced(desc, core, n)  # discarded records take ring space until consumed too
        hdr = np.uint64(desc[mo.D_HEADER])
        left = load_u64(hdr + np.uint64(mo.H_HEAD)) - np.uint64(1)
        store_u64(hdr + np.uint64(mo.H_HEAD), left)
        if left == U0:
            store_u64(hdr + np.uint64(mo.H_TAIL), U0)
        regs[0] = U0
    elif hid == 134:  # ringbuf_query(map, flags)
        mi = _map_index(core, r1)
        if mi < 0:
            return HELPER_BAD_MAP
        desc = maps[mi]
        if r2 == np.uint64(BPF_RB_RING_SIZE):
            regs[0] = np.uint64(desc[mo.D_MAX_ENTRIES])
        elif r2 == np.uint64(BPF_RB_AVAIL_DATA) or r2 == np.uint64(BPF_RB_PROD_POS):
            regs[0] = _ring_produced(desc, core, -1)
        else:
            regs[0] = U0
    elif hid == 26 or hid == 9:  # skb_load_bytes(skb, off, to, len) / skb_store_bytes(skb, off, from, len, flags)
        n = np.int64(r4)
        other = host_address(regions, r3, n, COL_WLEN if hid == 26 else COL_RLEN)
        p = _pkt_host(regions, pkt, np.int64(r2), n)
        if other == U0:
            return HELPER_BAD_POINTER
        if p == U0 or n <= 0:
            if hid == 26:
                mo.mem_zero(other, n)
            regs[0] = np.uint64(-14)
        elif hid == 26:
            mo.mem_copy(other, p, n)
            regs[0] = U0
        else:
            mo.mem_copy(p, other, n)
            regs[0] = U0
    elif hid == 10:  # l3_csum_replace(skb, offset, from, to, size)
        regs[0] = np.uint64(_csum_replace(regions, pkt, np.int64(r2), r3, r4, np.int64(r5 & np.uint64(0xF)), False,
                                          r5))
    elif hid == 11:  # l4_csum_replace(skb, offset, from, to, flags): size in the low bits of flags
        regs[0] = np.uint64(_csum_replace(regions, pkt, np.int64(r2), r3, r4, np.int64(r5 & np.uint64(0xF)), True,
                                          r5))
    elif hid == 28:  # csum_diff(from, from_size, to, to_size, seed): a 32-bit partial sum
        fs, ts = np.int64(r2), np.int64(r4)
        if fs % 4 != 0 or ts % 4 != 0 or fs > 512 or ts > 512:
            regs[0] = np.uint64(-22)
            return HELPER_OK
        acc = r5 & M32
        if fs > 0:
            f = host_address(regions, r1, fs, COL_RLEN)
            if f == U0:
                return HELPER_BAD_POINTER
            for i in range(0, fs, 4):
                acc = csum_add(acc, (~load_u32(f + np.uint64(i))) & M32)
        if ts > 0:
            t = host_address(regions, r3, ts, COL_RLEN)
            if t == U0:
                return HELPER_BAD_POINTER
            for i in range(0, ts, 4):
                acc = csum_add(acc, load_u32(t + np.uint64(i)))
        regs[0] = acc
    elif hid == 34:  # get_hash_recalc
        regs[0] = U0
    elif hid == 39:  # skb_pull_data: all our packet data is linear already
        regs[0] = U0
    elif hid == 44:  # xdp_adjust_head(ctx, delta): at least an Ethernet header must remain
        regs[0] = np.uint64(_adjust(regions, pkt, PKT_DATA, np.int64(np.int32(r2 & M32)), 14))
    elif hid == 65:  # xdp_adjust_tail(ctx, delta)
        regs[0] = np.uint64(_adjust(regions, pkt, PKT_END, np.int64(np.int32(r2 & M32)), 14))
    elif hid == 54:  # xdp_adjust_meta(ctx, delta)
        regs[0] = np.uint64(_adjust(regions, pkt, PKT_META, np.int64(np.int32(r2 & M32)), 0))
    elif hid == 23:  # redirect(ifindex, flags)
        pkt[PKT_REDIRECT_KIND] = 1
        pkt[PKT_REDIRECT_TARGET] = np.int64(r1 & M32)
        pkt[PKT_REDIRECT_FLAGS] = np.int64(r2)
        regs[0] = np.uint64(XDP_REDIRECT if pkt[PKT_KIND] == KIND_XDP else TC_ACT_REDIRECT)
    elif hid == 51:  # redirect_map(map, key, flags): the action on a miss is in flags' low bits
        mi = _map_index(core, r1)
        if mi < 0:
            return HELPER_BAD_MAP
        desc = maps[mi]
        key = np.int64(r2 & M32)
        if key < desc[mo.D_MAX_ENTRIES] and mo.load_u32(np.uint64(desc[mo.D_VALUES] + key * desc[mo.D_STRIDE])) != U0:
            pkt[PKT_REDIRECT_KIND] = 2
            pkt[PKT_REDIRECT_TARGET] = (mi << 32) | key
            pkt[PKT_REDIRECT_FLAGS] = np.int64(r3)
            regs[0] = np.uint64(XDP_REDIRECT)
        else:
            regs[0] = r3 & np.uint64(0x3)
    else:
        return HELPER_UNKNOWN
    return HELPER_OK

