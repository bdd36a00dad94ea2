"""The interpreter: one compiled loop over a decoded program's columns.

``execute`` runs one program invocation; ``run_batch`` runs a whole batch of inputs without
returning to Python. Registers are ``uint64`` throughout (Numba promotes ``uint64 op int64`` to
float64, so immediates arrive already sign-extended into ``uint64``). Every load, store and
atomic goes through the region table and is bounds-checked; a failed check ends the run with a
fault code, the pc and the address, never touching memory outside the region.

Metering follows ``decode.py``: instructions and cycles are charged per straight-line run when
control arrives, and the budget is checked on backward jumps and calls, which every loop and
every recursion must pass through.

Speed (all worked out by ``decode.py`` once per program; measured on benchmark B1, see the
``perf-interp`` branch notes): dispatch is on dense internal opcodes with one ``o == I_*`` test
per handler, so LLVM emits jump tables; ``mov dst, src`` followed by an ALU64 operation on dst
runs as one superinstruction; register reads go through a static one-entry cache (``_rd``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from bpfmc.ebpf.opcodes import (
    BPF_ADD,
    BPF_AND,
    BPF_ARSH,
    BPF_JEQ,
    BPF_JGE,
    BPF_JGT,
    BPF_JLE,
    BPF_JLT,
    BPF_JNE,
    BPF_JSET,
    BPF_JSGE,
    BPF_JSGT,
    BPF_JSLE,
    BPF_JSLT,
    BPF_LSH,
    BPF_MUL,
    BPF_OR,
    BPF_RSH,
    BPF_SUB,
    BPF_XOR,
)

from . import jitcache  # noqa: F401  (sets the cache folder before anything is compiled)
from . import mapops as mo
from .batch import (
    begin_event,
    end_event,
    headroom_of,
)
from .contexts import (
    CTX_MAX,
    KIND_RAW,
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
    PKT_DATA,
    PKT_END,
)
from .decode import (  # internal opcodes
    CACHED,
    I_ADD64_K,
    I_ADD64_X,
    I_ALU32,
    I_AND64_K,
    I_AND64_X,
    I_ARSH64_K,
    I_ARSH64_X,
    I_ATOMIC,
    I_CALL,
    I_CALL_LOCAL,
    I_CALLX,
    I_DIVMOD64,
    I_ENDIAN,
    I_EXIT,
    I_JA,
    I_JEQ_K,
    I_JEQ_K_JA,
    I_JEQ_X,
    I_JGE_K,
    I_JGE_X,
    I_JGT_K,
    I_JGT_X,
    I_JLE_K,
    I_JLE_X,
    I_JLT_K,
    I_JLT_X,
    I_JMP32,
    I_JNE_K,
    I_JNE_K_JA,
    I_JNE_X,
    I_JSET_K,
    I_JSET_X,
    I_JSGE_K,
    I_JSGE_X,
    I_JSGT_K,
    I_JSGT_X,
    I_JSLE_K,
    I_JSLE_X,
    I_JSLT_K,
    I_JSLT_X,
    I_LDDW,
    I_LDPKT,
    I_LDXB,
    I_LDXDW,
    I_LDXH,
    I_LDXS,
    I_LDXW,
    I_LSH64_K,
    I_LSH64_X,
    I_MOV32_K,
    I_MOV32_X,
    I_MOV64_K,
    I_MOV64_X,
    I_MOVADD_K,
    I_MOVADD_X,
    I_MOVAND_K,
    I_MOVAND_X,
    I_MOVARSH_K,
    I_MOVARSH_X,
    I_MOVK_JEQ_K,
    I_MOVK_JGT_X,
    I_MOVK_JNE_K,
    I_MOVLSH_K,
    I_MOVLSH_X,
    I_MOVMUL_K,
    I_MOVMUL_X,
    I_MOVOR_K,
    I_MOVOR_X,
    I_MOVRSH_K,
    I_MOVRSH_X,
    I_MOVSUB_K,
    I_MOVSUB_X,
    I_MOVSX32,
    I_MOVSX64,
    I_MOVXOR_K,
    I_MOVXOR_X,
    I_MUL64_K,
    I_MUL64_X,
    I_NEG64,
    I_OR64_K,
    I_OR64_X,
    I_RSH64_K,
    I_RSH64_X,
    I_STB,
    I_STDW,
    I_STH,
    I_STW,
    I_STXB,
    I_STXDW,
    I_STXH,
    I_STXW,
    I_SUB64_K,
    I_SUB64_X,
    I_XOR64_K,
    I_XOR64_X,
    OP_FELL_OFF,
    REG_SLOTS,
)
from .helpers import (
    CORE_CYCLES,
    CORE_EVENTS,
    CORE_FAULTS,
    CORE_ID,
    CORE_INSNS,
    HELPER_OK,
    HELPER_UNKNOWN,
    LS_RUN,
    BPF_FUNC_loop,
    BPF_FUNC_tail_call,
    call_helper,
)
from .intrinsics import (
    atomic_add_u32,
    atomic_add_u64,
    atomic_and_u32,
    atomic_and_u64,
    atomic_or_u32,
    atomic_or_u64,
    atomic_xchg_u32,
    atomic_xchg_u64,
    atomic_xor_u32,
    atomic_xor_u64,
    cmpxchg_u32,
    cmpxchg_u64,
    load_u8,
    load_u16,
    load_u32,
    load_u64,
    store_u8,
    store_u16,
    store_u32,
    store_u64,
)
from .memory import (
    COL_BASE,
    COL_RLEN,
    COL_WLEN,
    FIRST_DYNAMIC_REGION,
    REGION_CODE,
    REGION_CTX,
    REGION_INPUT,
    REGION_PACKET,
    REGION_SHIFT,
    REGION_STACK,
    host_address,
)

# Run outcomes (``status``); everything but OK is a fault that ended the run.
OK = 0
FAULT_LOAD = 1  # load outside readable memory; aux = address
FAULT_STORE = 2  # store outside writable memory; aux = address
FAULT_BUDGET = 3  # instruction budget exhausted; aux = budget
FAULT_CALL_DEPTH = 4  # bpf-to-bpf call nesting too deep; aux = depth limit
FAULT_UNKNOWN_HELPER = 5  # aux = helper id
FAULT_MISALIGNED_ATOMIC = 6  # aux = address
FAULT_BAD_OPCODE = 7  # aux = opcode
FAULT_FELL_OFF = 8  # ran past the last instruction
FAULT_HELPER = 9  # a helper failed; aux = helper id



def _align_jump_targets() -> None:
    # Every handler is reached through the dispatch jump table, never by falling through.
    # Starting each at a 64-byte boundary makes the loop's speed independent of where LLVM
    # happens to place it: without this, edits outside the loop moved the dispatch block across
    # a cache-line boundary and B1 lost a quarter of its speed (the same machine code, 0x50
    # bytes further on). Set before anything is compiled; it applies to code compiled later.
    import llvmlite.binding as llvm

    llvm.set_option("bpfmc", "-align-all-nofallthru-blocks=6")


_align_jump_targets()

M32 = np.uint64(0xFFFFFFFF)
# Call frames: what a bpf-to-bpf call (or a bpf_loop callback) saves of its caller.
F_R6, F_R7, F_R8, F_R9, F_RET, F_R10 = 0, 1, 2, 3, 4, 5
F_LOOP, F_LOOP_I, F_LOOP_N, F_LOOP_CB, F_LOOP_CTX = 6, 7, 8, 9, 10  # bpf_loop state, F_LOOP = 1
FRAME_COLS = 11
MAX_TAIL_CALLS = 33  # the kernel's MAX_TAIL_CALL_CNT
BPF_MAX_LOOPS = 1 << 23
CTXR = np.uint64(REGION_CTX)
PKTR = np.uint64(REGION_PACKET)

U0 = np.uint64(0)
U1 = np.uint64(1)
U2 = np.uint64(2)
S32 = np.uint64(32)
SH = np.uint64(REGION_SHIFT)
M5 = np.uint64(31)
M6 = np.uint64(63)


@njit(cache=True, inline="always")
def _sx32(x):
    """Low 32 bits, sign-extended, as int64."""
    return np.int64(x << S32) >> np.int64(32)


_host = host_address  # the engine's one bounds check (memory.py)


@njit(cache=True)
def _sdiv(a, b):
    """Signed division truncating toward zero on int64 operands; INT_MIN / -1 wraps."""
    ua = np.uint64(a) if a >= 0 else U0 - np.uint64(a)
    ub = np.uint64(b) if b >= 0 else U0 - np.uint64(b)
    q = ua // ub
    return U0 - q if (a < 0) != (b < 0) else q


@njit(cache=True)
def _smod(a, b):
    """Signed remainder with the dividend's sign."""
    ua = np.uint64(a) if a >= 0 else U0 - np.uint64(a)
    ub = np.uint64(b) if b >= 0 else U0 - np.uint64(b)
    r = ua % ub
    return U0 - r if a < 0 else r


@njit(cache=True, inline="always")
def _bswap16(x):
    return ((x & np.uint64(0xFF)) << np.uint64(8)) | ((x >> np.uint64(8)) & np.uint64(0xFF))


@njit(cache=True, inline="always")
def _bswap32(x):
    return (
        ((x & np.uint64(0xFF)) << np.uint64(24))
        | ((x & np.uint64(0xFF00)) << np.uint64(8))
        | ((x >> np.uint64(8)) & np.uint64(0xFF00))
        | ((x >> np.uint64(24)) & np.uint64(0xFF))
    )


@njit(cache=True, inline="always")
def _bswap64(x):
    return (_bswap32(x & M32) << S32) | _bswap32(x >> S32)


@njit(cache=True, inline="always")
def _rd(regs, i, cv):
    """Read a register operand: ``i`` is a read index from the decoder, ``CACHED`` for the
    register written last (whose value is in ``cv``), else the register's number.

    Most eBPF code chains several operations on one register (``r5 <<= 13; r5 ^= r1``); the
    cache lets the next instruction take that value from a host register instead of waiting
    for the store just made to be forwarded back from memory. Writes still go to ``regs``
    (write-through), so the array is always current. Because the decoder, not a run-time
    compare against the last written index, decides a hit, a hit loads ``regs[CACHED]`` -- a
    slot nothing writes -- rather than the register just stored, so it never waits on that store.
    """
    # Branch-free on purpose: loading unconditionally lets LLVM emit a cmov instead of a branch.
    x = regs[i]
    m = U0 - np.uint64(i == CACHED)
    return (cv & m) | (x & ~m)


# Fields of the packed ``word`` column (see ``decode.DecodedProgram``): one load gives the
# opcode and all three register indices, which keeps three column pointers out of the hot loop's
# registers. uint32 throughout, so indexing needs no negative-index fixup.
W8 = np.uint32(0xFF)


@njit(cache=True, inline="always")
def _w_dst(w):
    return (w >> np.uint32(8)) & W8


@njit(cache=True, inline="always")
def _w_rd(w):
    return (w >> np.uint32(16)) & W8


@njit(cache=True, inline="always")
def _w_rs(w):
    return w >> np.uint32(24)


@njit(cache=True, inline="always")
def _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget):
    """Take or skip a conditional jump, charging the run that starts where control lands.
    The last value is True when a backward jump found the budget exhausted."""
    if c:
        t = ctgt[pc]
        ni += crun_len[t]
        return t, ni, nc + crun_cyc[t] + taken_extra, t <= pc and ni > budget
    p = pc + U1
    return p, ni + crun_len[p], nc + crun_cyc[p], False


@njit(cache=True, inline="always")
def _branch_over_ja(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget):
    """``if c goto pc+2`` at pc followed by ``ja`` at pc+1, in one step; charges and budget
    check as the two instructions would make them."""
    if c:
        p = pc + U2
        return p, ni + crun_len[p], nc + crun_cyc[p] + taken_extra, False
    j = pc + U1
    t = ctgt[j]
    ni += crun_len[j] + crun_len[t]
    return t, ni, nc + crun_cyc[j] + crun_cyc[t], t <= j and ni > budget


@njit(cache=True, inline="always")
def _alu64(k, a, b):
    """``a OP b`` for the ALU operation ``k`` (a ``BPF_*`` constant, so each use folds to one op)."""
    if k == BPF_ADD:
        return a + b
    if k == BPF_SUB:
        return a - b
    if k == BPF_MUL:
        return a * b
    if k == BPF_OR:
        return a | b
    if k == BPF_AND:
        return a & b
    if k == BPF_XOR:
        return a ^ b
    if k == BPF_LSH:
        return a << (b & M6)
    if k == BPF_RSH:
        return a >> (b & M6)
    return np.uint64(np.int64(a) >> np.int64(b & M6))  # BPF_ARSH


@njit(cache=True, inline="always")
def _cond(k, a, b):
    """The condition of 64-bit jump ``k`` (a ``BPF_J*`` constant)."""
    if k == BPF_JEQ:
        return a == b
    if k == BPF_JNE:
        return a != b
    if k == BPF_JGT:
        return a > b
    if k == BPF_JGE:
        return a >= b
    if k == BPF_JLT:
        return a < b
    if k == BPF_JLE:
        return a <= b
    if k == BPF_JSET:
        return (a & b) != U0
    if k == BPF_JSGT:
        return np.int64(a) > np.int64(b)
    if k == BPF_JSGE:
        return np.int64(a) >= np.int64(b)
    if k == BPF_JSLT:
        return np.int64(a) < np.int64(b)
    return np.int64(a) <= np.int64(b)  # BPF_JSLE


@njit(cache=True, inline="always")
def _load(regions, addr, size):
    """Bounds-checked load of ``size`` bytes (zero-extended): (value, ok)."""
    h = _host(regions, addr, size, COL_RLEN)
    if h == U0:
        return U0, False
    if size == 8:
        return load_u64(h), True
    if size == 4:
        return load_u32(h), True
    if size == 2:
        return load_u16(h), True
    return load_u8(h), True


@njit(cache=True, inline="always")
def _push_frame(frames, depth, regs, ret):
    frames[depth, F_R6] = regs[6]
    frames[depth, F_R7] = regs[7]
    frames[depth, F_R8] = regs[8]
    frames[depth, F_R9] = regs[9]
    frames[depth, F_RET] = ret
    frames[depth, F_R10] = regs[10]
    frames[depth, F_LOOP] = U0


@njit(cache=True, inline="always")
def _pop_frame(frames, depth, regs):
    regs[6] = frames[depth, F_R6]
    regs[7] = frames[depth, F_R7]
    regs[8] = frames[depth, F_R8]
    regs[9] = frames[depth, F_R9]
    regs[10] = frames[depth, F_R10]


@njit(cache=True)
def _ctx_store_host(regions, ctx_wmask, addr, size):
    """Stores to the context are checked here, off the fast path: the context region is
    read-only in the region table, and only the fields the program type may write (mask) pass."""
    if addr >> SH != CTXR:
        return U0
    off = np.int64(addr & M32)
    if off + size > np.int64(regions[REGION_CTX, COL_RLEN]):
        return U0
    for i in range(size):
        if ctx_wmask[off + i] == 0:
            return U0
    return regions[REGION_CTX, COL_BASE] + np.uint64(off)


@njit(cache=True, inline="always")
def _array_lookup(regs, maps, regions, core):
    """bpf_map_lookup_elem(map, key) for ARRAY and PERCPU_ARRAY maps without the helper call:
    the index, the bounds check and the value pointer are a few instructions. False when the
    map is of another type or an argument needs the helper's checks and errors."""
    handle = regs[1]
    rid = handle >> SH
    first = np.uint64(FIRST_DYNAMIC_REGION)
    if rid < first or (rid - first) & U1 != U0 or handle & M32 != U0:
        return False
    mi = np.int64((rid - first) >> U1)
    if mi >= maps.shape[0]:
        return False
    t = maps[mi, mo.D_TYPE]
    if t != mo.BPF_MAP_TYPE_ARRAY and t != mo.BPF_MAP_TYPE_PERCPU_ARRAY:
        return False
    k = _host(regions, regs[2], 4, COL_RLEN)
    if k == U0:
        return False
    idx = np.int64(load_u32(k))
    if idx >= maps[mi, mo.D_MAX_ENTRIES]:
        regs[0] = U0
        return True
    off = idx * maps[mi, mo.D_STRIDE]
    if t == mo.BPF_MAP_TYPE_PERCPU_ARRAY:
        off += np.int64(core[CORE_ID]) * maps[mi, mo.D_ROW]
    regs[0] = (np.uint64(maps[mi, mo.D_VALUE_REGION]) << SH) | np.uint64(off)
    return True


@njit(cache=True)
def _tail_call_target(regs, maps, core, entries, tail_calls):
    """Entry pc of the program bpf_tail_call(ctx, prog_array, index) jumps to, or -1 when the
    call falls through (no such slot, empty slot, or the chain limit reached)."""
    if tail_calls >= MAX_TAIL_CALLS:
        return np.int64(-1)
    handle = regs[2]
    rid = np.int64(handle >> SH)
    mi = (rid - FIRST_DYNAMIC_REGION) // 2
    if rid < FIRST_DYNAMIC_REGION or (rid - FIRST_DYNAMIC_REGION) % 2 != 0 or mi >= np.int64(maps.shape[0]):
        return np.int64(-1)
    desc = maps[mi]
    if desc[mo.D_TYPE] != mo.BPF_MAP_TYPE_PROG_ARRAY:
        return np.int64(-1)
    index = np.int64(regs[3] & M32)
    if index >= desc[mo.D_MAX_ENTRIES]:
        return np.int64(-1)
    prog = np.int64(load_u32(np.uint64(desc[mo.D_VALUES] + index * desc[mo.D_STRIDE])))
    if prog < 1 or prog > entries.shape[0]:
        return np.int64(-1)
    return np.int64(entries[prog - 1])


# `_nrt=False`: without it Numba increments and decrements the reference count of every array
# argument on each call -- some thirty atomic operations, about 250 ns, more than a short
# program takes to run. `execute` creates no arrays, so it needs no runtime; Numba refuses to
# compile it if that ever changes. (Inlining it into `run_batch` instead made compiling take
# minutes.)
@njit(cache=True, error_model="numpy", _nrt=False)
def run_events(cword, cop, csrc, coff, cimm, ctgt, crun_len, crun_cyc, ccyc, event_writes, taken_extra, entry_pc, kind,
               regions, maps, regs, frames, cores, stack, inbuf, pktbuf, ctxbuf, ctx_ptr, ctx_wmask, ctx_size,
               pkt, log, logidx, logstate, scratch, entries, budget, stack_size, stack_zero, max_depth,
               blob, starts, ends, seg_row, seg_first, seg_end, done, used, out_r0, out_insns, out_cycles, out_status,
               out_pc, out_aux, out_meta, out_data, out_ctx):
    """Run the events of a batch's segments: segment ``s`` is events ``seg_first[s]`` to
    ``seg_end[s]`` (excluded), run on the emulated core whose state is row ``seg_row[s]`` of
    ``cores`` (one row per core the engine hosts: ``helpers.new_core_table``). The first
    ``done`` events of the segments, in segment order, ran in an earlier call and are skipped.
    Event ``e`` is ``blob[starts[e]:ends[e]]``, presented as the program type expects
    (``batch.begin_event``), run from ``entry_pc`` until the outermost exit or a fault, and
    collected (``batch.end_event``) into row ``e`` of the outputs; the core's counters
    (``CORE_CYCLES``, ``CORE_EVENTS``, ``CORE_INSNS``, ``CORE_FAULTS``) run on. Returns
    (events run, bytes of ``out_data`` used); it stops early only when ``out_data`` might not
    hold the next packet, and the caller continues with a bigger one.

    Everything but the core's row (registers, stack, buffers, regions) is scratch of one
    event, so the cores of one engine share it: switching cores is switching rows, at each
    segment's start, and a segment may be a single event.

    The event loop lives here, around the interpreter loop, because a call per event into a
    function with this many arguments cost more than a short program takes to run. Events are
    given by their start and end rather than by one offsets array, so that a pool worker can run
    one core's events where they lie in the shared batch, among other cores' events.

    Dispatch is on the internal opcode (``decode.I_*``) in ``cword``; handlers read operands
    through its read indices (see ``_rd``) and write its dst. ``frames[d]`` saves r6-r9, the
    return pc and r10 of the caller at depth d.
    """
    blob_h = np.uint64(blob.ctypes.data)
    head = headroom_of(kind)
    st = np.uint64(pkt.ctypes.data)
    pkt[PKT_B_KIND] = kind
    pkt[PKT_B_HEAD] = head
    pkt[PKT_B_FRAME0] = np.int64(stack.ctypes.data) + stack.shape[0] - stack_size
    pkt[PKT_B_STACK_ZERO] = stack_zero
    pkt[PKT_B_IN] = np.int64(inbuf.ctypes.data)
    pkt[PKT_B_PKT] = np.int64(pktbuf.ctypes.data)
    pkt[PKT_B_PKT_CAP] = pktbuf.shape[0]
    pkt[PKT_B_CTX] = np.int64(ctxbuf.ctypes.data)
    pkt[PKT_B_CTX_SIZE] = ctx_size
    pkt[PKT_B_OUT] = np.int64(out_data.ctypes.data)
    pkt[PKT_B_META] = np.int64(out_meta.ctypes.data)
    pkt[PKT_B_META_STRIDE] = out_meta.strides[0]  # rows are contiguous: the engine allocates them
    pkt[PKT_B_EVENT_WRITES] = event_writes
    # `segment`, not `s`: the handlers below have locals of their own (one is `s`), and a
    # Numba function has one scope.
    nseg = seg_row.shape[0]
    segment = 0
    while segment < nseg and seg_end[segment] - seg_first[segment] <= done:  # what an earlier call ran
        done -= seg_end[segment] - seg_first[segment]
        segment += 1
    core = cores[seg_row[segment] if segment < nseg else 0]
    e = seg_first[segment] + done if segment < nseg else 0
    stop = seg_end[segment] if segment < nseg else 0
    ran = 0
    while True:
        if e >= stop:  # the next segment, and its core
            segment += 1
            if segment >= nseg:
                break
            core = cores[seg_row[segment]]
            e = seg_first[segment]
            stop = seg_end[segment]
            continue
        length = ends[e] - starts[e]
        if used + length + 1024 > out_data.shape[0] and ran > 0:
            return ran, used
        src = blob_h + np.uint64(starts[e])
        begin_event(st, src, length)
        for i in range(REG_SLOTS):  # a constant count: a few vector stores instead of a memset call
            regs[i] = U0
        regs[10] = (np.uint64(REGION_STACK) << SH) | np.uint64(stack.shape[0])
        logstate[LS_RUN] = e
        if kind == KIND_RAW:
            regions[REGION_INPUT, COL_RLEN] = np.uint64(length)
            regions[REGION_INPUT, COL_WLEN] = np.uint64(length)
            regs[1] = np.uint64(REGION_INPUT) << SH
            regs[2] = np.uint64(length)
        else:
            regs[1] = CTXR << SH
        pc = entry_pc  # unsigned, so Numba indexes the columns without a negative-index fixup
        ni = crun_len[pc]
        nc = crun_cyc[pc]
        depth = 0
        tail_calls = 0
        status = OK
        aux = U0
        cv = U0  # value of the register the decoder's cache analysis says was written last
        over = False
        early = False  # ld_abs out of range: the program ends with r0 = 0
        while True:
            w = cword[pc]
            o = w & W8
            # Every test below is `o == I_*` on a dense range: LLVM turns the chain into jump tables,
            # one for the first 42 tests and one behind it (decode.py numbers the hot ones first).
            # ---- ALU64 -----------------------------------------------------------------------
            if o == I_ADD64_K:
                cv = _alu64(BPF_ADD, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_ADD64_X:
                cv = _alu64(BPF_ADD, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_SUB64_K:
                cv = _alu64(BPF_SUB, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_SUB64_X:
                cv = _alu64(BPF_SUB, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MUL64_K:
                cv = _alu64(BPF_MUL, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MUL64_X:
                cv = _alu64(BPF_MUL, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_OR64_K:
                cv = _alu64(BPF_OR, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_OR64_X:
                cv = _alu64(BPF_OR, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_AND64_K:
                cv = _alu64(BPF_AND, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_AND64_X:
                cv = _alu64(BPF_AND, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_XOR64_K:
                cv = _alu64(BPF_XOR, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_XOR64_X:
                cv = _alu64(BPF_XOR, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LSH64_K:
                cv = _alu64(BPF_LSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LSH64_X:
                cv = _alu64(BPF_LSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_RSH64_K:
                cv = _alu64(BPF_RSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_RSH64_X:
                cv = _alu64(BPF_RSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_ARSH64_K:
                cv = _alu64(BPF_ARSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_ARSH64_X:
                cv = _alu64(BPF_ARSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MOV64_K:
                cv = cimm[pc]
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MOV64_X:
                cv = _rd(regs, _w_rs(w), cv)
                regs[_w_dst(w)] = cv
                pc += U1
            # ---- loads ---------------------------------------------------------------------
            elif o == I_LDXB:
                addr = _rd(regs, _w_rs(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 1, COL_RLEN)
                if h == U0:
                    status = FAULT_LOAD
                    aux = addr
                    break
                cv = load_u8(h)
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LDXH:
                addr = _rd(regs, _w_rs(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 2, COL_RLEN)
                if h == U0:
                    status = FAULT_LOAD
                    aux = addr
                    break
                cv = load_u16(h)
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LDXW:
                addr = _rd(regs, _w_rs(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 4, COL_RLEN)
                if h == U0:
                    status = FAULT_LOAD
                    aux = addr
                    break
                cv = load_u32(h)
                if addr >> SH == CTXR:
                    # data/data_end/data_meta are 32-bit fields in the program's view of the
                    # context but packet pointers in the kernel's: the load yields the pointer.
                    off = addr & M32
                    if off < np.uint64(CTX_MAX) and ctx_ptr[off] >= 0:
                        cv = (PKTR << SH) | np.uint64(pkt[ctx_ptr[off]])
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LDXDW:
                addr = _rd(regs, _w_rs(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 8, COL_RLEN)
                if h == U0:
                    status = FAULT_LOAD
                    aux = addr
                    break
                cv = load_u64(h)
                regs[_w_dst(w)] = cv
                pc += U1
            # ---- the common conditional jumps, and superinstructions ending in one ------------
            elif o == I_JEQ_K_JA:
                c = _rd(regs, _w_rd(w), cv) == cimm[pc]
                pc, ni, nc, over = _branch_over_ja(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JNE_K_JA:
                c = _rd(regs, _w_rd(w), cv) != cimm[pc]
                pc, ni, nc, over = _branch_over_ja(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JEQ_K:
                c = _cond(BPF_JEQ, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JNE_K:
                c = _cond(BPF_JNE, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JGT_X:
                c = _cond(BPF_JGT, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_MOVK_JEQ_K:
                cv = cimm[pc]
                regs[_w_dst(w)] = cv
                pc += U1  # the jump, with its own operands (it reads the cache state after the mov)
                j = cword[pc]
                c = _cond(BPF_JEQ, _rd(regs, _w_rd(j), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_MOVK_JNE_K:
                cv = cimm[pc]
                regs[_w_dst(w)] = cv
                pc += U1  # the jump, with its own operands (it reads the cache state after the mov)
                j = cword[pc]
                c = _cond(BPF_JNE, _rd(regs, _w_rd(j), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_MOVK_JGT_X:
                cv = cimm[pc]
                regs[_w_dst(w)] = cv
                pc += U1  # the jump, with its own operands (it reads the cache state after the mov)
                j = cword[pc]
                c = _cond(BPF_JGT, _rd(regs, _w_rd(j), cv), _rd(regs, _w_rs(j), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            # ---- fused mov + ALU64: rd names the mov's source; the pair takes two slots ----------
            elif o == I_MOVADD_K:
                cv = _alu64(BPF_ADD, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVADD_X:
                cv = _alu64(BPF_ADD, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVSUB_X:
                cv = _alu64(BPF_SUB, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVMUL_X:
                cv = _alu64(BPF_MUL, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVAND_K:
                cv = _alu64(BPF_AND, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVOR_X:
                cv = _alu64(BPF_OR, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVXOR_X:
                cv = _alu64(BPF_XOR, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVLSH_K:
                cv = _alu64(BPF_LSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVRSH_K:
                cv = _alu64(BPF_RSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVARSH_K:
                cv = _alu64(BPF_ARSH, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVSUB_K:
                cv = _alu64(BPF_SUB, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVMUL_K:
                cv = _alu64(BPF_MUL, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVOR_K:
                cv = _alu64(BPF_OR, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVAND_X:
                cv = _alu64(BPF_AND, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVXOR_K:
                cv = _alu64(BPF_XOR, _rd(regs, _w_rd(w), cv), cimm[pc])
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVLSH_X:
                cv = _alu64(BPF_LSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVRSH_X:
                cv = _alu64(BPF_RSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_MOVARSH_X:
                cv = _alu64(BPF_ARSH, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                regs[_w_dst(w)] = cv
                pc += U2
            # ---- the second switch: ALU32, rarer operations, stores, other jumps, calls ---------
            elif o == I_MOV32_K:
                cv = cimm[pc] & M32
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MOV32_X:
                cv = _rd(regs, _w_rs(w), cv) & M32
                regs[_w_dst(w)] = cv
                pc += U1
            # ---- rarer instructions: generic handlers that look at the raw opcode again -------
            elif o == I_ALU32:
                r = cop[pc]
                d = _w_dst(w)
                a = _rd(regs, _w_rd(w), cv) & M32
                b = (cimm[pc] if r & 0x08 == 0 else _rd(regs, _w_rs(w), cv)) & M32
                aop = r & 0xF0
                if aop == 0x00:
                    a = (a + b) & M32
                elif aop == 0x10:
                    a = (a - b) & M32
                elif aop == 0x20:
                    a = (a * b) & M32
                elif aop == 0x40:
                    a = a | b
                elif aop == 0x50:
                    a = a & b
                elif aop == 0xA0:
                    a = a ^ b
                elif aop == 0x60:
                    a = (a << (b & M5)) & M32
                elif aop == 0x70:
                    a = a >> (b & M5)
                elif aop == 0xC0:
                    a = np.uint64(_sx32(a) >> np.int64(b & M5)) & M32
                elif aop == 0x80:
                    a = (U0 - a) & M32
                elif aop == 0x30:
                    if b == U0:
                        a = U0
                    elif coff[pc] == 0:
                        a = a // b
                    else:
                        a = _sdiv(_sx32(a), _sx32(b)) & M32
                elif aop == 0x90:
                    if b != U0:
                        if coff[pc] == 0:
                            a = a % b
                        else:
                            a = _smod(_sx32(a), _sx32(b)) & M32
                else:
                    status = FAULT_BAD_OPCODE
                    aux = np.uint64(r)
                    break
                cv = a
                regs[d] = cv
                pc += U1
            elif o == I_NEG64:
                cv = U0 - _rd(regs, _w_rd(w), cv)
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_DIVMOD64:  # div / mod, sdiv / smod (off = 1)
                r = cop[pc]
                b = cimm[pc] if r & 0x08 == 0 else _rd(regs, _w_rs(w), cv)
                a = _rd(regs, _w_rd(w), cv)
                if r & 0xF0 == 0x30:
                    if b == U0:
                        a = U0
                    elif coff[pc] == 0:
                        a = a // b
                    else:
                        a = _sdiv(np.int64(a), np.int64(b))
                elif b != U0:  # modulo by zero leaves dst unchanged
                    if coff[pc] == 0:
                        a = a % b
                    else:
                        a = _smod(np.int64(a), np.int64(b))
                cv = a
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MOVSX64:  # movsx 8/16/32 -> 64 (0xbf with off = width)
                sh = np.uint64(64) - np.uint64(coff[pc])
                cv = np.uint64(np.int64(_rd(regs, _w_rs(w), cv) << sh) >> np.int64(sh))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_MOVSX32:  # movsx 8/16 -> 32 (0xbc with off = width)
                sh = np.uint64(64) - np.uint64(coff[pc])
                cv = np.uint64(np.int64(_rd(regs, _w_rs(w), cv) << sh) >> np.int64(sh)) & M32
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_ENDIAN:  # le, be, bswap
                r = cop[pc]
                width = cimm[pc]
                x = _rd(regs, _w_rd(w), cv)
                if r == 0xD4:  # to little-endian: the host order, so only truncate
                    if width == 16:
                        x = x & np.uint64(0xFFFF)
                    elif width == 32:
                        x = x & M32
                elif width == 16:
                    x = _bswap16(x & np.uint64(0xFFFF))
                elif width == 32:
                    x = _bswap32(x & M32)
                else:
                    x = _bswap64(x)
                cv = x
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_LDXS:  # ldxs w/h/b: sign-extending loads
                r = cop[pc]
                addr = _rd(regs, _w_rs(w), cv) + np.uint64(coff[pc])
                sz = 4 if r == 0x81 else (2 if r == 0x89 else 1)
                v, ok = _load(regions, addr, sz)
                if not ok:
                    status = FAULT_LOAD
                    aux = addr
                    break
                sh = np.uint64(64 - 8 * sz)
                cv = np.uint64(np.int64(v << sh) >> np.int64(sh))
                regs[_w_dst(w)] = cv
                pc += U1
            elif o == I_STB:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 1, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 1)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u8(h, cimm[pc])
                pc += U1
            elif o == I_STH:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 2, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 2)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u16(h, cimm[pc])
                pc += U1
            elif o == I_STW:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 4, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 4)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u32(h, cimm[pc])
                pc += U1
            elif o == I_STDW:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 8, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 8)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u64(h, cimm[pc])
                pc += U1
            elif o == I_STXB:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 1, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 1)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u8(h, _rd(regs, _w_rs(w), cv))
                pc += U1
            elif o == I_STXH:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 2, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 2)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u16(h, _rd(regs, _w_rs(w), cv))
                pc += U1
            elif o == I_STXW:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 4, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 4)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u32(h, _rd(regs, _w_rs(w), cv))
                pc += U1
            elif o == I_STXDW:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                h = _host(regions, addr, 8, COL_WLEN)
                if h == U0:
                    h = _ctx_store_host(regions, ctx_wmask, addr, 8)
                    if h == U0:
                        status = FAULT_STORE
                        aux = addr
                        break
                store_u64(h, _rd(regs, _w_rs(w), cv))
                pc += U1
            elif o == I_LDDW:
                cv = cimm[pc]
                regs[_w_dst(w)] = cv
                pc += U2
            elif o == I_ATOMIC:
                addr = _rd(regs, _w_rd(w), cv) + np.uint64(coff[pc])
                wide = cop[pc] == 0xDB
                n = 8 if wide else 4
                h = _host(regions, addr, n, COL_WLEN)
                if h == U0:
                    status = FAULT_STORE
                    aux = addr
                    break
                if addr & np.uint64(n - 1) != U0:
                    status = FAULT_MISALIGNED_ATOMIC
                    aux = addr
                    break
                s = csrc[pc]
                v = regs[s]
                aop = cimm[pc]
                if aop == 0xF1:  # cmpxchg: r0 holds the expected value and receives the old one
                    if wide:
                        regs[0] = cmpxchg_u64(h, regs[0], v)
                    else:
                        regs[0] = cmpxchg_u32(h, regs[0] & M32, v & M32)
                else:
                    base = aop & np.uint64(0xF0)
                    if base == 0x00:
                        old = atomic_add_u64(h, v) if wide else atomic_add_u32(h, v)
                    elif base == 0x40:
                        old = atomic_or_u64(h, v) if wide else atomic_or_u32(h, v)
                    elif base == 0x50:
                        old = atomic_and_u64(h, v) if wide else atomic_and_u32(h, v)
                    elif base == 0xA0:
                        old = atomic_xor_u64(h, v) if wide else atomic_xor_u32(h, v)
                    else:  # 0xE0: xchg
                        old = atomic_xchg_u64(h, v) if wide else atomic_xchg_u32(h, v)
                    if aop & U1 != U0:  # fetch: src receives the old value
                        regs[s] = old
                pc += U1
            elif o == I_JA:
                pc, ni, nc, over = _branch(True, pc, ctgt, crun_len, crun_cyc, 0, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JMP32:  # 32-bit conditional jumps (and invalid jump opcodes)
                r = cop[pc]
                cls = r & 0x07
                a = _rd(regs, _w_rd(w), cv)
                b = cimm[pc] if r & 0x08 == 0 else _rd(regs, _w_rs(w), cv)
                if cls == 0x06:
                    a &= M32
                    b &= M32
                jop = r & 0xF0
                if jop == 0x10:
                    c = a == b
                elif jop == 0x50:
                    c = a != b
                elif jop == 0x20:
                    c = a > b
                elif jop == 0x30:
                    c = a >= b
                elif jop == 0xA0:
                    c = a < b
                elif jop == 0xB0:
                    c = a <= b
                elif jop == 0x40:
                    c = (a & b) != U0
                else:
                    sa = _sx32(a) if cls == 0x06 else np.int64(a)
                    sb = _sx32(b) if cls == 0x06 else np.int64(b)
                    if jop == 0x60:
                        c = sa > sb
                    elif jop == 0x70:
                        c = sa >= sb
                    elif jop == 0xC0:
                        c = sa < sb
                    elif jop == 0xD0:
                        c = sa <= sb
                    else:
                        status = FAULT_BAD_OPCODE
                        aux = np.uint64(r)
                        break
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JEQ_X:
                c = _cond(BPF_JEQ, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JNE_X:
                c = _cond(BPF_JNE, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JGT_K:
                c = _cond(BPF_JGT, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JGE_K:
                c = _cond(BPF_JGE, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JGE_X:
                c = _cond(BPF_JGE, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JLT_K:
                c = _cond(BPF_JLT, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JLT_X:
                c = _cond(BPF_JLT, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JLE_K:
                c = _cond(BPF_JLE, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JLE_X:
                c = _cond(BPF_JLE, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSET_K:
                c = _cond(BPF_JSET, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSET_X:
                c = _cond(BPF_JSET, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSGT_K:
                c = _cond(BPF_JSGT, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSGT_X:
                c = _cond(BPF_JSGT, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSGE_K:
                c = _cond(BPF_JSGE, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSGE_X:
                c = _cond(BPF_JSGE, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSLT_K:
                c = _cond(BPF_JSLT, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSLT_X:
                c = _cond(BPF_JSLT, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSLE_K:
                c = _cond(BPF_JSLE, _rd(regs, _w_rd(w), cv), cimm[pc])
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_JSLE_X:
                c = _cond(BPF_JSLE, _rd(regs, _w_rd(w), cv), _rd(regs, _w_rs(w), cv))
                pc, ni, nc, over = _branch(c, pc, ctgt, crun_len, crun_cyc, taken_extra, ni, nc, budget)
                if over:
                    status = FAULT_BUDGET
                    break
            elif o == I_CALL:  # helper: its cost is part of the run already
                hid = cimm[pc]
                if hid == BPF_FUNC_tail_call:
                    t = _tail_call_target(regs, maps, core, entries, tail_calls)
                    if t >= 0:  # the new program replaces this one; r1 (the context) stays
                        tail_calls += 1
                        pc = np.uint64(t)
                        ni += crun_len[pc]
                        nc += crun_cyc[pc]
                        if ni > budget:
                            status = FAULT_BUDGET
                            break
                        continue
                    regs[0] = np.uint64(-2)  # -ENOENT; the program goes on after the call
                    pc += U1
                    continue
                if hid == BPF_FUNC_loop:
                    nr, cb, flags = regs[1], regs[2], regs[4]
                    if flags != U0 or nr > np.uint64(BPF_MAX_LOOPS) or nr == U0:
                        regs[0] = U0 if nr == U0 and flags == U0 else np.uint64(-22 if flags != U0 else -7)
                        pc += U1
                        continue
                    if cb >> SH != np.uint64(REGION_CODE) or (cb & M32) >= np.uint64(cword.shape[0] - 1):
                        status = FAULT_HELPER
                        aux = hid | (np.uint64(2) << S32)
                        break
                    if depth + 1 >= max_depth:
                        status = FAULT_CALL_DEPTH
                        aux = np.uint64(max_depth)
                        break
                    _push_frame(frames, depth, regs, pc + U1)
                    frames[depth, F_LOOP] = U1
                    frames[depth, F_LOOP_I] = U0
                    frames[depth, F_LOOP_N] = nr
                    frames[depth, F_LOOP_CB] = cb & M32
                    frames[depth, F_LOOP_CTX] = regs[3]
                    depth += 1
                    regs[10] -= np.uint64(stack_size)
                    regs[1] = U0
                    regs[2] = frames[depth - 1, F_LOOP_CTX]
                    pc = cb & M32
                    ni += crun_len[pc]
                    nc += crun_cyc[pc]
                    continue
                if hid == U1 and _array_lookup(regs, maps, regions, core):
                    pc += U1  # bpf_map_lookup_elem on an array, done in place (the common case)
                    continue
                hs = call_helper(hid, regs, core, nc, regions, maps, pkt, log, logidx, logstate, scratch)
                if hs != HELPER_OK:
                    status = FAULT_UNKNOWN_HELPER if hs == HELPER_UNKNOWN else FAULT_HELPER
                    aux = hid if hs == HELPER_UNKNOWN else hid | (np.uint64(hs) << S32)
                    break
                pc += U1
            elif o == I_CALL_LOCAL:  # bpf-to-bpf call: a new frame with its own stack
                if depth + 1 >= max_depth:
                    status = FAULT_CALL_DEPTH
                    aux = np.uint64(max_depth)
                    break
                if ni > budget:
                    status = FAULT_BUDGET
                    break
                _push_frame(frames, depth, regs, pc + U1)
                depth += 1
                regs[10] -= np.uint64(stack_size)
                t = ctgt[pc]
                ni += crun_len[t]
                nc += crun_cyc[t]
                pc = t
            elif o == I_CALLX:  # helper id in dst (the conformance suite's convention)
                hid = regs[_w_dst(w)]
                hs = call_helper(hid, regs, core, nc, regions, maps, pkt, log, logidx, logstate, scratch)
                if hs != HELPER_OK:
                    status = FAULT_UNKNOWN_HELPER if hs == HELPER_UNKNOWN else FAULT_HELPER
                    aux = hid if hs == HELPER_UNKNOWN else hid | (np.uint64(hs) << S32)
                    break
                pc += U1
                ni += crun_len[pc]
                nc += crun_cyc[pc]
            elif o == I_EXIT:
                if depth == 0:
                    break
                d = depth - 1
                if frames[d, F_LOOP] != U0:  # a bpf_loop callback returned: next round, or done
                    i = frames[d, F_LOOP_I] + U1
                    if regs[0] == U0 and i < frames[d, F_LOOP_N]:
                        frames[d, F_LOOP_I] = i
                        regs[1] = i
                        regs[2] = frames[d, F_LOOP_CTX]
                        regs[10] = frames[d, F_R10] - np.uint64(stack_size)
                        pc = frames[d, F_LOOP_CB]
                        ni += crun_len[pc]
                        nc += crun_cyc[pc]
                        if ni > budget:  # every round passes here, as every loop passes a back jump
                            status = FAULT_BUDGET
                            break
                        continue
                    regs[0] = i  # the number of rounds run
                depth = d
                _pop_frame(frames, depth, regs)
                pc = frames[depth, F_RET]
                ni += crun_len[pc]
                nc += crun_cyc[pc]
            elif o == I_LDPKT:  # ld_abs / ld_ind: r0 = ntoh(packet[imm (+ src)]); out of range ends with 0
                raw = cop[pc]
                off = np.int64(np.int32(cimm[pc] & M32))
                if raw & 0xE0 == 0x40:
                    off += np.int64(np.int32(regs[csrc[pc]] & M32))
                n = 4 if raw & 0x18 == 0x00 else (2 if raw & 0x18 == 0x08 else 1)
                start = pkt[PKT_DATA] + off
                if off < 0 or start + n > pkt[PKT_END]:
                    regs[0] = U0
                    early = True
                    break
                h = regions[REGION_PACKET, COL_BASE] + np.uint64(start)
                if n == 4:
                    cv = _bswap32(load_u32(h))
                elif n == 2:
                    cv = _bswap16(load_u16(h))
                else:
                    cv = load_u8(h)
                regs[0] = cv
                pc += U1
            else:  # I_BAD: not an instruction, or the sentinel past the end
                # Decided on the raw opcode, not `o`: a case that only sets constants and breaks
                # would have LLVM set those constants in the dispatch block, on every instruction.
                r = cop[pc]
                if r == OP_FELL_OFF:
                    status = FAULT_FELL_OFF
                else:
                    status = FAULT_BAD_OPCODE
                    aux = np.uint64(r)
                break
        if status == FAULT_BUDGET:
            aux = np.uint64(budget)
        elif status != OK or early:
            # Give back the part of the run after the faulting (or finishing) instruction.
            ni -= crun_len[pc] - 1
            nc -= crun_cyc[pc] - ccyc[pc]
        core[CORE_CYCLES] += np.uint64(nc)  # the core's virtual clock runs on
        core[CORE_INSNS] += np.uint64(ni)
        core[CORE_EVENTS] += U1
        core[CORE_FAULTS] += np.uint64(status != OK)
        out_r0[e] = regs[0]
        out_insns[e] = ni
        out_cycles[e] = nc
        out_status[e] = status
        out_pc[e] = pc
        out_aux[e] = aux
        used = end_event(st, src, length, used, e)
        for b in range(out_ctx.shape[1]):
            out_ctx[e, b] = ctxbuf[b]
        ran += 1
        e += 1
    regions[REGION_INPUT, COL_RLEN] = U0
    regions[REGION_INPUT, COL_WLEN] = U0
    return ran, used
