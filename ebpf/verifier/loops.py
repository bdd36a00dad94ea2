"""Loop summaries: skipping iterations of a counting loop instead of walking each one.

The walker explores a loop by walking every iteration, as the kernel does, at ~10 µs an
instruction: a loop that the kernel rejects after a million processed instructions would
take seconds. This module proves, from one walked iteration, that the next ones repeat it.

The argument. Take two successive visits of a loop head on one path, with states S and S'
and the instructions walked between them (the *trace*). Suppose S' equals S except for
registers holding constants, each changed by a fixed amount ``d`` (the *affine* registers).
Replay the trace symbolically: every value is either *fixed* (the same abstract value in
every iteration, because nothing affine flows into it) or *affine* (``c + j·d`` in iteration
``j``, with ``c`` the constant the walk recorded). Only additions, subtractions,
multiplications by a constant, shifts left by a constant, negations and moves may touch an
affine value, and each result must stay within its width over the iterations considered,
so the arithmetic is exact and wraps nowhere. A conditional jump on an affine value against a
constant is decided the same way until a computable iteration (the comparison is monotone in
``j`` once wrapping is excluded). Anything else an affine value reaches -- memory addresses,
stored values, helper calls, comparisons of two affine values -- ends the attempt, and the
walker just goes on walking.

If the symbolic replay ends with the same deltas it began with, iterations ``1 .. N-1``
repeat iteration 0 instruction for instruction, where ``N`` is the first iteration in which a
comparison could turn or a value could wrap. The walker then adds ``(N-1)·k`` processed
instructions (``k`` = trace length) -- the count it would have reached by walking -- and moves
the affine registers to their values at iteration ``N``. When that count passes the limit the
program is rejected exactly where the walk would have stopped.

Iterations that forked (queued another branch) are skipped only when the limit is passed in
them: every queued state would otherwise have to be made. States kept at the loop's prune
points by finished paths could end a later iteration early, so a trace that meets one is
not summarised.
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import opcodes as op
from ..insn import Insn
from . import state as st
from .state import Reg

U64 = (1 << 64) - 1
U32 = (1 << 32) - 1
MAX_TRACE = 4096  # longer iterations are walked: the replay would cost what it saves

_ORDERED = {op.BPF_JGT: ("gt", False), op.BPF_JGE: ("ge", False), op.BPF_JLT: ("lt", False),
            op.BPF_JLE: ("le", False), op.BPF_JSGT: ("gt", True), op.BPF_JSGE: ("ge", True),
            op.BPF_JSLT: ("lt", True), op.BPF_JSLE: ("le", True)}


class Watch:
    """One path's record of the iteration in progress, from the loop head it started at."""

    __slots__ = ("head", "regs", "frames", "refs", "forks", "jmps", "pcs", "trace", "snapshots")

    def __init__(self, head: int, frames: list, refs: dict, forks: int, jmps: int):
        self.head = head
        self.regs = list(frames[-1].regs)
        self.frames = [(f.callsite, tuple(f.regs), dict(f.stack)) for f in frames]
        self.refs = dict(refs)
        self.forks = forks
        self.jmps = jmps
        self.pcs: list[int] = []
        self.trace: list[list[Reg]] = []  # registers before each traced instruction
        self.snapshots: dict[int, object] = {}  # position -> whole state, at prune points

    def record(self, pc: int, state, prune_point: bool) -> bool:
        """Note one instruction; False when the iteration is too long to be worth summarising."""
        if prune_point:
            self.snapshots[len(self.pcs)] = state.copy()
        self.pcs.append(pc)
        self.trace.append(state.regs[:])
        return len(self.pcs) <= MAX_TRACE


@dataclass
class Summary:
    """Iterations ``1 .. iterations-1`` repeat iteration 0; affine registers move by ``deltas``."""

    iterations: int  # N: the first iteration that may differ (or the cap)
    deltas: dict[int, int]  # register -> change per iteration, at the loop head
    start: list[Reg]  # head registers of iteration 0
    trace: list[list[Reg]]
    position_deltas: list[dict[int, int]]  # affine registers before each traced instruction

    def head_regs(self, j: int, current: list[Reg]) -> list[Reg]:
        """The head registers at the start of iteration ``j``."""
        regs = list(current)
        for n, d in self.deltas.items():
            regs[n] = st.const(self.start[n].var.value + j * d)
        return regs

    def regs_at(self, j: int, position: int) -> list[Reg]:
        """The registers before the ``position``-th traced instruction of iteration ``j``."""
        regs = list(self.trace[position])
        for n, d in self.position_deltas[position].items():
            regs[n] = st.const(regs[n].var.value + j * d)
        return regs


class _Bounds:
    """The iterations over which every affine value keeps its exact, unwrapped meaning."""

    def __init__(self, cap: int):
        self.limit = cap  # iterations 0 .. limit-1 are known to repeat iteration 0

    def keep(self, c: int, d: int, lo: int, hi: int, last: int = 0) -> None:
        """``c + j·d`` stays in ``[lo, hi]`` for every iteration before the limit (``+last``)."""
        if not lo <= c <= hi:
            self.limit = 0
            return
        if d > 0:
            first_out = (hi - c) // d + 1
        elif d < 0:
            first_out = (c - lo) // -d + 1
        else:
            return
        self.limit = min(self.limit, first_out - last)

    def turn(self, j: int) -> None:
        self.limit = min(self.limit, j)


def _same(a: Reg, b: Reg, ids: st._IdMap) -> bool:
    return (a.type == b.type and a.off == b.off and a.var == b.var and a.aux == b.aux
            and ids.same(a.id, b.id) and ids.same(a.ref, b.ref))


def _const(r: Reg) -> int | None:
    return r.var.value if r.type == st.SCALAR and r.var.is_const else None


def _holds(rel: str, a: int, b: int) -> bool:
    return {"gt": a > b, "ge": a >= b, "lt": a < b, "le": a <= b}[rel]


def summarise(code: dict[int, Insn], watch: Watch, frames: list, refs: dict, live: frozenset[int],
              cap: int) -> Summary | None:
    """Whether iterations after the one ``watch`` recorded repeat it, and for how many (≤ ``cap``)."""
    if len(frames) != len(watch.frames) or refs != watch.refs or not watch.pcs:
        return None
    ids = st._IdMap()
    for (callsite, regs, stack), f in zip(watch.frames[:-1], frames[:-1], strict=True):
        if callsite != f.callsite or list(regs) != f.regs or stack != f.stack:
            return None
    callsite, _, stack = watch.frames[-1]
    if callsite != frames[-1].callsite or stack != frames[-1].stack:
        return None
    start, now = watch.regs, frames[-1].regs
    deltas: dict[int, int] = {}
    for n in range(11):
        a, b = start[n], now[n]
        if n not in live or _same(a, b, ids):
            continue
        ca, cb = _const(a), _const(b)
        if ca is None or cb is None or a.id or b.id:
            return None
        deltas[n] = cb - ca  # exact: both are unsigned 64-bit values, and must stay so
    if not deltas:
        return None  # nothing changes: the walker's own check calls this an infinite loop
    bounds = _Bounds(cap)
    for n, d in deltas.items():
        bounds.keep(start[n].var.value, d, 0, U64, last=1)  # head values up to iteration N
    dl = dict(deltas)
    position_deltas = []
    pcs, trace = watch.pcs, watch.trace
    for i, pc in enumerate(pcs):
        position_deltas.append(dict(dl))
        insn = code[pc]
        before = trace[i]
        after = trace[i + 1] if i + 1 < len(trace) else now
        if not _replay(insn, pc, before, after, pcs[i + 1] if i + 1 < len(pcs) else watch.head, dl, bounds):
            return None
        if bounds.limit <= 1:
            return None
    for n in live:
        if dl.get(n, 0) != deltas.get(n, 0):
            return None
    return Summary(bounds.limit, deltas, start, trace, position_deltas)


def _replay(insn: Insn, pc: int, before: list[Reg], after: list[Reg], next_pc: int, dl: dict[int, int],
            bounds: _Bounds) -> bool:
    """Carry the affine deltas ``dl`` over one instruction; False when it is beyond this analysis."""
    code = insn.opcode
    cls = code & 0x07
    if insn.is_wide:
        dl.pop(insn.dst, None)
        return True
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        return _replay_alu(insn, before, after, dl, bounds)
    if cls == op.BPF_LDX:
        if insn.src in dl:
            return False
        dl.pop(insn.dst, None)
        return True
    if cls in (op.BPF_ST, op.BPF_STX):
        if insn.dst in dl or (cls == op.BPF_STX and insn.src in dl):
            return False
        if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC:
            if 0 in dl and insn.imm == op.BPF_CMPXCHG:
                return False
            dl.pop(insn.src, None)
            if insn.imm == op.BPF_CMPXCHG:
                dl.pop(0, None)
        return True
    if cls == op.BPF_LD:
        if code & 0xE0 == op.BPF_IND and insn.src in dl:
            return False
        for n in range(6):
            dl.pop(n, None)
        return True
    jop = code & 0xF0
    if jop == op.BPF_JA:
        return True
    if jop in (op.BPF_CALL, op.BPF_EXIT):
        return False
    return _replay_cond(insn, pc, before, next_pc, dl, bounds)


def _replay_alu(insn: Insn, before: list[Reg], after: list[Reg], dl: dict[int, int], bounds: _Bounds) -> bool:
    code = insn.opcode
    alu = code & 0xF0
    bits = 64 if code & 0x07 == op.BPF_ALU64 else 32
    d = insn.dst
    by_reg = bool(code & op.BPF_X) and alu not in (op.BPF_NEG, op.BPF_END)
    dd = dl.get(d, 0) if alu != op.BPF_MOV else 0
    sd = dl.get(insn.src, 0) if by_reg else 0
    if not dd and not sd:
        dl.pop(d, None)
        return True
    if insn.off and alu in (op.BPF_MOV, op.BPF_DIV, op.BPF_MOD):
        return False
    dst_v = _const(before[d])
    src_v = _const(before[insn.src]) if by_reg else (insn.imm & (U64 if bits == 64 else U32))
    if dst_v is None and alu != op.BPF_MOV or src_v is None:
        return False
    if alu == op.BPF_MOV:
        nd = sd
    elif alu == op.BPF_ADD:
        nd = dd + sd
    elif alu == op.BPF_SUB:
        nd = dd - sd
    elif alu == op.BPF_NEG:
        nd = -dd
    elif alu == op.BPF_MUL and not (dd and sd):
        nd = dd * _signed(src_v, bits) if dd else sd * _signed(dst_v, bits)
    elif alu == op.BPF_LSH and not sd:
        nd = dd << (src_v & (bits - 1))
    else:
        return False
    result = _const(after[d])
    if result is None:
        return False
    if nd:
        # In the ring of integers modulo 2**bits, these operations make the result move by nd per
        # iteration; without wrapping it moves by exactly nd.
        bounds.keep(result, nd, 0, U64 if bits == 64 else U32)
        dl[d] = nd
    else:
        dl.pop(d, None)
    return True


def _signed(v: int, bits: int) -> int:
    return v - (1 << bits) if v >> (bits - 1) else v


def _replay_cond(insn: Insn, pc: int, before: list[Reg], next_pc: int, dl: dict[int, int],
                 bounds: _Bounds) -> bool:
    code = insn.opcode
    by_reg = bool(code & op.BPF_X)
    dd = dl.get(insn.dst, 0)
    sd = dl.get(insn.src, 0) if by_reg else 0
    if not dd and not sd:
        return True  # decided (or forked) the same way in every iteration
    if dd and sd:
        return False
    bits = 32 if code & 0x07 == op.BPF_JMP32 else 64
    mask = U32 if bits == 32 else U64
    a = _const(before[insn.dst])
    b = _const(before[insn.src]) if by_reg else insn.imm & mask
    if a is None or b is None:
        return False
    a &= mask
    b &= mask
    taken = next_pc == pc + 1 + (insn.imm if code == op.JA32 else insn.off)
    fall = next_pc == pc + 1
    if taken == fall:
        return False  # a jump to the next instruction: which arm the walk took cannot be told
    # The moving operand, the fixed one, and whether the relation is read with them swapped.
    c, d, k, swapped = (a, dd, b, False) if dd else (b, sd, a, True)
    jop = code & 0xF0
    if jop in (op.BPF_JEQ, op.BPF_JNE):
        bounds.keep(c, d, 0, mask)
        if c == k:
            bounds.turn(1)
        elif (k - c) % d == 0 and (k - c) // d > 0:
            bounds.turn((k - c) // d)
        return _agrees(jop == op.BPF_JEQ and c == k or jop == op.BPF_JNE and c != k, taken)
    if jop not in _ORDERED:
        return False  # jset: not monotone in the iteration
    rel, signed = _ORDERED[jop]
    if signed:
        half = 1 << (bits - 1)
        lo, hi = (0, half - 1) if c < half else (half, mask)
        bounds.keep(c, d, lo, hi)
    else:
        bounds.keep(c, d, 0, mask)

    # Read as the comparison reads it, but without wrapping: linear in j, so the search below
    # finds the turn even where the limit lies beyond the range kept above.
    shift = (1 << bits) if signed and c >> (bits - 1) else 0
    fixed = _signed(k, bits) if signed else k

    def outcome(j: int) -> bool:
        v = c + j * d - shift
        return _holds(rel, fixed, v) if swapped else _holds(rel, v, fixed)

    first = outcome(0)
    if not _agrees(first, taken):
        return False
    hi = bounds.limit
    if hi >= 1 and outcome(hi) != first:
        lo = 0  # outcome(lo) == first, outcome(hi) != first: the comparison turns in (lo, hi]
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if outcome(mid) == first:
                lo = mid
            else:
                hi = mid
        bounds.turn(hi)
    return True


def _agrees(outcome: bool, taken: bool) -> bool:
    return outcome == taken
