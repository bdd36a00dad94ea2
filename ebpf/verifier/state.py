"""The abstract machine state: registers, stack bytes, frames, references, and their comparison.

Registers and stack slots are immutable values, so copying a state at a branch copies lists of
references, not registers. :func:`subsumes` is the pruning rule (the kernel's ``regsafe`` and
``stacksafe``): an explored state that was proved safe covers a new one whose every live value
lies within it.
"""

from __future__ import annotations

from typing import NamedTuple

from . import scalar as sc
from .scalar import Scalar

# Register types (the kernel's enum bpf_reg_type, by the names its log uses).
NOT_INIT = "not_init"
SCALAR = "scalar"
CTX = "ctx"
STACK = "fp"
PKT = "pkt"
PKT_END = "pkt_end"
PKT_META = "pkt_meta"
MAP_VALUE = "map_value"
MAP_VALUE_OR_NULL = "map_value_or_null"
MAP_PTR = "map_ptr"
MEM = "ringbuf_mem"  # a reserved ringbuf record
MEM_OR_NULL = "ringbuf_mem_or_null"
RAW = "raw_mem"  # the raw program type's input buffer: accesses are bounds-checked at run time
FUNC = "func"  # a callback address (lddw with BPF_PSEUDO_FUNC)
SOCK_OR_NULL = "sock_common_or_null"
SOCK = "sock_common"

POINTER_TYPES = frozenset({CTX, STACK, PKT, PKT_END, PKT_META, MAP_VALUE, MAP_VALUE_OR_NULL, MAP_PTR, MEM,
                           MEM_OR_NULL, RAW, FUNC, SOCK_OR_NULL, SOCK})
NULLABLE = {MAP_VALUE_OR_NULL: MAP_VALUE, MEM_OR_NULL: MEM, SOCK_OR_NULL: SOCK}
PACKET_TYPES = frozenset({PKT, PKT_META})

MAX_STACK = 512
SLOT = 8

ZERO = sc.const(0)


class Reg(NamedTuple):
    type: str
    off: int = 0  # fixed offset of a pointer
    var: Scalar = ZERO  # a scalar's value, or a pointer's variable offset
    id: int = 0  # shared by copies: null checks and packet ranges apply to every holder
    ref: int = 0  # acquired reference (ringbuf record) the pointer stands for
    aux: int = 0  # map index (map_ptr/map_value), packet range, record size, stack frame, callback pc
    origin: str = ""  # where a pointer came from, for the log only

    @property
    def is_pointer(self) -> bool:
        return self.type in POINTER_TYPES

    def describe(self) -> str:
        t = self.type
        if t == NOT_INIT:
            return "uninitialised"
        if t == SCALAR:
            return f"scalar {self.var.describe()}" if not self.var.is_const else f"scalar {self.var.describe()}"
        parts = []
        if t in (MAP_VALUE, MAP_VALUE_OR_NULL, MAP_PTR):
            parts.append(f"map#{self.aux}")
        if self.off:
            parts.append(f"off={self.off}")
        if not (self.var.is_const and self.var.value == 0):
            parts.append(f"var_off={self.var.describe()}")
        if t in PACKET_TYPES:
            parts.append(f"r={self.aux}")
        if t in (MEM, MEM_OR_NULL):
            parts.append(f"size={self.aux}")
        if t == STACK and self.aux:
            parts.append(f"frame={self.aux}")
        if t == FUNC:
            parts.append(f"pc={self.aux}")
        if self.id:
            parts.append(f"id={self.id}")
        if self.ref:
            parts.append(f"ref={self.ref}")
        return f"{t}({','.join(parts)})" if parts else t


UNINIT = Reg(NOT_INIT)
UNKNOWN = Reg(SCALAR, var=sc.UNKNOWN)


def with_var(r: Reg, var: Scalar) -> Reg:
    """``r._replace(var=var)``, without namedtuple's generic (and, in the walk's hot path, slow) replace."""
    return Reg(r.type, r.off, var, r.id, r.ref, r.aux, r.origin)


def scalar(s: Scalar) -> Reg:
    return Reg(SCALAR, var=s)


def const(v: int) -> Reg:
    return Reg(SCALAR, var=sc.const(v))


class Slot(NamedTuple):
    """8 stack bytes: per byte '?' uninitialised, 'm' data, '0' zero, 'r' part of a spilled register."""

    kinds: str
    spill: Reg | None = None


EMPTY_SLOT = Slot("????????")


class Frame:
    __slots__ = ("regs", "stack", "callsite", "subprog", "entry")

    def __init__(self, regs: list[Reg], stack: dict[int, Slot], callsite: int, subprog: int, entry=None):
        self.regs = regs
        self.stack = stack  # slot index (0 = bytes -8..-1) -> Slot
        self.callsite = callsite  # pc of the call that made this frame (-1 for the main program)
        self.subprog = subprog  # first pc of the function
        self.entry = entry  # callbacks: the callers' frames as they were when the callback started

    def copy(self) -> Frame:
        return Frame(list(self.regs), dict(self.stack), self.callsite, self.subprog, self.entry)


class State:
    __slots__ = ("frames", "refs", "pc", "history", "rec", "loop_callback", "watch")

    def __init__(self, frames: list[Frame], refs: dict[int, int], pc: int, history: tuple | None):
        self.frames = frames
        self.refs = refs  # reference id -> pc that acquired it
        self.pc = pc
        self.history = history  # linked list (pc, note, parent) of the branches taken
        self.rec = None  # the last explored-state record on this path
        self.loop_callback = None
        self.watch = None  # loops.Watch: the loop iteration this path is in, not shared by copies

    @property
    def cur(self) -> Frame:
        return self.frames[-1]

    @property
    def regs(self) -> list[Reg]:
        return self.frames[-1].regs

    def copy(self) -> State:
        s = State([f.copy() for f in self.frames], dict(self.refs), self.pc, self.history)
        s.rec = self.rec
        s.loop_callback = self.loop_callback
        return s

    def note(self, pc: int, text: str) -> None:
        self.history = (pc, text, self.history)

    def path(self, limit: int = 64) -> list[tuple[int, str]]:
        out, h = [], self.history
        while h is not None:
            out.append((h[0], h[1]))
            h = h[2]
        out.reverse()
        return out[-limit:]

    def key(self, live: frozenset[int] | None = None) -> tuple:
        """Everything that decides what happens next, for exact comparison (loop detection)."""
        parts = []
        for i, f in enumerate(self.frames):
            inner = i == len(self.frames) - 1
            regs = tuple(_rkey(r) if (not inner or live is None or n in live) else None
                         for n, r in enumerate(f.regs))
            stack = tuple(sorted((k, s.kinds, _rkey(s.spill) if s.spill else None) for k, s in f.stack.items()
                                 if s.kinds != "????????"))
            parts.append((f.callsite, regs, stack))
        return (tuple(parts), tuple(sorted(self.refs)))


def key_with_regs(key: tuple, regs: list[Reg], changed) -> tuple:
    """``key`` (from :meth:`State.key`) with the innermost frame's registers ``changed`` read from ``regs``."""
    parts, refs = key
    callsite, old, stack = parts[-1]
    new = list(old)
    for n in changed:
        if new[n] is not None:
            new[n] = _rkey(regs[n])
    return (parts[:-1] + ((callsite, tuple(new), stack),), refs)


def _rkey(r: Reg) -> tuple:
    return r[:6]  # type, off, var, id, ref, aux: everything but the log's `origin`


# -- subsumption -------------------------------------------------------------------------------

class _IdMap:
    __slots__ = ("fwd", "back")

    def __init__(self) -> None:
        self.fwd: dict[int, int] = {}
        self.back: dict[int, int] = {}

    def same(self, old: int, new: int) -> bool:
        if old == 0 or new == 0:
            return old == new
        if old in self.fwd:
            return self.fwd[old] == new
        if new in self.back:
            return False
        self.fwd[old] = new
        self.back[new] = old
        return True


def regsafe(old: Reg, new: Reg, ids: _IdMap) -> bool:
    if old.type == NOT_INIT:
        return True
    if new.type != old.type:
        return False
    if old.type == SCALAR:
        return old.var.contains(new.var) and (old.id == 0 or ids.same(old.id, new.id))
    if old.off != new.off or not old.var.contains(new.var):
        return False
    if old.type in PACKET_TYPES:
        return new.aux >= old.aux and ids.same(old.id, new.id)
    if old.aux != new.aux:
        return False
    return ids.same(old.id, new.id) and ids.same(old.ref, new.ref)


def _slotsafe(old: Slot, new: Slot | None, ids: _IdMap) -> bool:
    nk = new.kinds if new is not None else "????????"
    if old.spill is not None and old.kinds == "rrrrrrrr":
        if new is None or new.spill is None or new.kinds != "rrrrrrrr":
            # a spilled unknown scalar is matched by plain data bytes
            return old.spill.type == SCALAR and old.spill.var == sc.UNKNOWN and "?" not in nk and "r" not in nk
        return regsafe(old.spill, new.spill, ids)
    for i in range(SLOT):
        o, n = old.kinds[i], nk[i]
        if o == "?" or o == n:
            if o == "r" and (new is None or new.spill is None or old.spill is None
                             or not regsafe(old.spill, new.spill, ids)):
                return False
            continue
        if o == "m" and n in "0":
            continue
        if o == "m" and n == "r" and new is not None and new.spill is not None and new.spill.type == SCALAR:
            continue
        return False
    return True


def subsumes(old: State, new: State, live: frozenset[int] | None) -> bool:
    """Whether every continuation of ``new`` is covered by the safe explored state ``old``."""
    if len(old.frames) != len(new.frames) or len(old.refs) != len(new.refs):
        return False
    ids = _IdMap()
    last = len(old.frames) - 1
    for i, (fo, fn) in enumerate(zip(old.frames, new.frames, strict=True)):
        if fo.callsite != fn.callsite:
            return False
        for n in range(11):
            if i == last and live is not None and n not in live:
                continue
            if not regsafe(fo.regs[n], fn.regs[n], ids):
                return False
        for k, slot in fo.stack.items():
            if slot.kinds == "????????":
                continue
            if not _slotsafe(slot, fn.stack.get(k), ids):
                return False
    return all(ids.same(r, r2) for r, r2 in zip(sorted(old.refs), sorted(new.refs), strict=True))


# -- joins (bpf_loop iterations) ----------------------------------------------------------------

def join_reg(a: Reg, b: Reg) -> Reg:
    """A register value containing both ``a`` and ``b`` (unknown scalar when they differ)."""
    if a == b:
        return a
    if a.type == SCALAR and b.type == SCALAR:
        return UNKNOWN
    if a.type == NOT_INIT or b.type == NOT_INIT:
        return UNINIT
    return UNKNOWN if a.type != b.type else (a if a == b else UNKNOWN)


def join_slot(a: Slot, b: Slot) -> Slot:
    if a == b:
        return a
    if a.spill is not None and b.spill is not None and a.kinds == b.kinds == "rrrrrrrr" \
            and a.spill.type == SCALAR and b.spill.type == SCALAR:
        return Slot("rrrrrrrr", UNKNOWN)
    kinds = []
    for x, y in zip(a.kinds, b.kinds, strict=True):
        if x == y and x != "r":
            kinds.append(x)
        elif "?" in (x, y):
            kinds.append("?")
        else:
            kinds.append("m")
    return Slot("".join(kinds), None)


def join_frame_into(frame: Frame, old: Frame) -> None:
    """Widen ``frame`` (after a callback ran) so that it also contains ``old`` (before it ran)."""
    frame.regs = [join_reg(a, b) for a, b in zip(frame.regs, old.regs, strict=True)]
    for k in set(frame.stack) | set(old.stack):
        frame.stack[k] = join_slot(frame.stack.get(k, EMPTY_SLOT), old.stack.get(k, EMPTY_SLOT))
