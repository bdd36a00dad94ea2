"""The walker: abstract interpretation of every path, instruction by instruction.

Depth-first like the kernel's ``do_check``: a conditional jump whose outcome is not known
continues on the fall-through and queues the taken branch. At prune points (jump targets,
call sites, function entries) the current state is compared with the states already explored
there: one that was proved safe and subsumes it ends the path; one still being explored on
this path and equal to it is an infinite loop. Every processed instruction counts towards the
limit, as the kernel counts.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import maps as mt
from .. import opcodes as op
from ..insn import Insn
from ..maps import MapSpec
from . import context as cx
from . import helpers as hp
from . import loops
from . import scalar as sc
from . import state as st
from . import tnum as tn
from .cfg import Cfg, func_target, jump_target
from .log import Log, insn_text
from .state import Frame, Reg, Slot, State

MAX_CALL_FRAMES = 8
MAX_VAR_OFF = 1 << 29
MAX_PACKET_OFF = 0xFFFF
RAW_MAX_LEN = 64 << 20  # what the engine accepts as one event

_JMP_REL = {op.BPF_JEQ: "eq", op.BPF_JNE: "ne", op.BPF_JGT: "gt", op.BPF_JGE: "ge", op.BPF_JLT: "lt",
            op.BPF_JLE: "le", op.BPF_JSGT: "sgt", op.BPF_JSGE: "sge", op.BPF_JSLT: "slt", op.BPF_JSLE: "sle",
            op.BPF_JSET: "set"}
_ALU_NAMES = dict(op.ALU_OP_NAMES)
_U32_HELPERS = frozenset({7, 8, 34, 42})


class Reject(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class TooComplex(Reject):
    pass


class _Rec:
    """An explored state kept at a prune point."""

    __slots__ = ("state", "parent", "branches", "pc", "key", "hit", "miss")

    def __init__(self, state: State, parent: _Rec | None, pc: int, key: tuple):
        self.state = state
        self.parent = parent
        self.branches = 1
        self.pc = pc
        self.key = key
        self.hit = 0
        self.miss = 0


def _rname(n: int) -> str:
    return f"R{n}"


def _what(r: Reg) -> str:
    d = r.describe()
    return f"{d} {r.origin}" if r.origin else d


def _counts_as_jump(insn: Insn) -> bool:
    """Whether ``insn`` adds to the jump count that spaces kept states apart: every instruction
    of the jump classes, calls and exits included, as the kernel counts ``jmps_processed`` (with
    calls and exits left out, 2 more corpus programs differed from the kernel's processed count).

    The walk counts by it as it goes and a summary recounts the iterations it skips by it: one
    rule, so that both keep states at the same places.
    """
    return op.is_jmp(insn.opcode)


class _SnapshotKeys(dict):
    """position -> key of the state a watch recorded there, made on first use.

    A summary compares these keys both when it looks for the iteration in which the walk would
    find a repeat and when it keeps the states of the skipped iterations; each is made once.
    """

    __slots__ = ("watch", "live")

    def __init__(self, watch: loops.Watch, live: dict[int, frozenset[int]]):
        super().__init__()
        self.watch = watch
        self.live = live

    def __missing__(self, position: int) -> tuple:
        key = self[position] = self.watch.snapshots[position].key(self.live.get(self.watch.pcs[position]))
        return key


class Walker:
    def __init__(self, cfg: Cfg, maps: Sequence[MapSpec], prog_type: str, privileged: bool, log: Log,
                 insn_limit: int):
        self.cfg = cfg
        self.code = cfg.code
        self.maps = list(maps)
        self.prog_type = prog_type
        self.layout = cx.LAYOUTS.get(prog_type)
        self.priv = privileged
        self.log = log
        self.limit = insn_limit
        self.processed = 0
        self.total_states = 0
        self.live_states = 0
        self.peak_states = 0
        self.next_id = 0
        self.safe: dict[int, list[_Rec]] = {}
        self.inprog: dict[int, dict[tuple, _Rec]] = {}
        self.depth: dict[int, int] = {s: 0 for s in cfg.subprogs}
        self.jmps = 0
        self.last_add_jmps = 0
        self.last_add_insns = 0
        self.pending: list[State] = []
        self.forks = 0
        self.loop_heads = cfg.loop_heads
        self.iterations_summarised = 0

    # -- driver -------------------------------------------------------------------------------
    def run(self) -> None:
        self.pending.append(self._initial())
        while self.pending:
            s = self.pending.pop()
            self.cur = s
            self._walk(s)
        self._check_stack_chains()

    def _initial(self) -> State:
        regs = [st.UNINIT] * 11
        regs[10] = Reg(st.STACK, aux=0)
        if self.prog_type == "raw":
            regs[1] = Reg(st.RAW, origin="(the event buffer)")
            regs[2] = st.scalar(sc.unsigned_range(0, RAW_MAX_LEN))
        else:
            regs[1] = Reg(st.CTX)
        return State([Frame(regs, {}, -1, 0)], {}, 0, None)

    def _new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def _walk(self, s: State) -> None:
        code = self.code
        while True:
            pc = s.pc
            self.processed += 1
            if self.processed > self.limit:
                raise self._too_complex()
            if pc in self.cfg.prune and self._visit(s):
                self._finish(s)
                return
            if pc in self.loop_heads and self._loop_head(s, pc):
                self._finish(s)
                return
            watch = s.watch
            if watch is not None and not watch.record(pc, s, pc in self.cfg.prune):
                s.watch = None
            insn = code[pc]
            if self.log.level >= 2:
                self.log.trace(pc, insn, s)
            self.cur = s
            if not self._step(s, pc, insn):
                self._finish(s)
                return

    def _too_complex(self) -> TooComplex:
        return TooComplex(f"the program is too large or too complex: {self.limit} instructions processed "
                          f"without finishing every path")

    # -- loops --------------------------------------------------------------------------------------
    def _loop_head(self, s: State, pc: int) -> bool:
        """At a loop head: skip the iterations that repeat the last one, then watch the next one.

        True when the state reached after skipping is covered by an explored one (the path ends).
        """
        watch = s.watch
        if watch is not None and watch.head == pc and self._summarise(s, pc, watch):
            return True
        s.watch = loops.Watch(pc, s.frames, s.refs, self.forks, self.jmps)
        return False

    def _summarise(self, s: State, pc: int, watch: loops.Watch) -> bool:
        """Skip what :mod:`.loops` proves repeats, leaving every count and kept state as the walk would."""
        prune, safe = self.cfg.prune, self.safe
        if any(safe.get(p) for p in set(watch.pcs) if p in prune):
            return False  # a finished path's state might end a later iteration early
        k = len(watch.pcs)
        cap = (self.limit - self.processed) // k + 2  # enough iterations to pass the limit
        live = self.cfg.live.get(pc, frozenset(range(11)))
        summary = loops.summarise(self.code, watch, s.frames, s.refs, live, cap)
        if summary is None:
            return False
        stops = [(p, q) for p, q in enumerate(watch.pcs) if q in prune]
        keys = _SnapshotKeys(watch, self.cfg.live)
        end = self._first_repeat(summary, watch, stops, keys)
        skipped = end - 1  # iteration 1 (this one) up to the last repeating one
        if skipped < 1:
            return False
        if self.processed + skipped * k > self.limit:
            # The walk would stop inside the skipped iterations: say where, with that state.
            rest = self.limit + 1 - self.processed
            j, position = 1 + rest // k, rest % k
            s.frames[-1].regs = summary.regs_at(j, position)
            s.pc = watch.pcs[position]
            s.note(pc, f"loop iterations 1..{j} repeat iteration 0 ({k} instructions each)")
            self.processed = self.limit + 1
            self.iterations_summarised += j - 1
            self.cur = s
            raise self._too_complex()
        if self.forks != watch.forks:
            return False  # every skipped iteration would queue a state of its own
        self._keep_skipped_states(s, summary, watch, stops, end, keys)
        s.frames[-1].regs = summary.head_regs(end, s.regs)
        self.processed += skipped * k
        self.jmps += skipped * (self.jmps - watch.jmps)
        self.iterations_summarised += skipped
        note = f"loop iterations 1..{skipped} repeat iteration 0 ({k} instructions each)"
        s.note(pc, note)
        if self.log.level >= 2:
            self.log.lines.append(f"{pc}: {note}: {skipped * k} instructions counted, not traced")
        return self._visit(s)  # the head of iteration `end`, as the walk would visit it

    def _moved(self, summary: loops.Summary, watch: loops.Watch, position: int, j: int) -> State:
        """The state at ``position`` of iteration ``j``: kept states are never changed, so it
        shares everything but the registers with the recorded one."""
        snap = watch.snapshots[position]
        inner = snap.frames[-1]
        frame = Frame(summary.regs_at(j, position), inner.stack, inner.callsite, inner.subprog, inner.entry)
        t = State(snap.frames[:-1] + [frame], snap.refs, snap.pc, snap.history)
        t.rec = snap.rec
        return t

    def _first_repeat(self, summary: loops.Summary, watch: loops.Watch, stops: list[tuple[int, int]],
                      keys: _SnapshotKeys) -> int:
        """The first iteration (≤ summary.iterations) in which the walk's infinite-loop check would fire.

        The walk compares each state at a prune point with the states kept on its own path; a
        skipped iteration must meet the same comparisons.
        """
        end = summary.iterations
        for p, q in stops:
            live = self.cfg.live.get(q, frozenset(range(11)))
            moving = [n for n in summary.position_deltas[p] if n in live]
            if not moving:
                return 1  # this state repeats in every iteration: let the walk find it
            n = moving[0]
            c, d = summary.trace[p][n].var.value, summary.position_deltas[p][n]
            for rec in list(self.inprog.get(q, {}).values()):
                r = rec.state.frames[-1].regs[n] if len(rec.state.frames) == len(watch.frames) else None
                if r is None or r.type != st.SCALAR or not r.var.is_const or (r.var.value - c) % d:
                    continue
                j = (r.var.value - c) // d
                if (2 if p == 0 else 1) <= j < end and \
                        st.key_with_regs(keys[p], summary.regs_at(j, p), moving) == rec.key:
                    end = j
        return end

    def _keep_skipped_states(self, s: State, summary: loops.Summary, watch: loops.Watch,
                             stops: list[tuple[int, int]], end: int, keys: _SnapshotKeys) -> None:
        """Keep the explored states the walk would have kept in iterations 1 .. end-1."""
        jumps_before, n = [], 0
        for q in watch.pcs:
            jumps_before.append(n)
            n += _counts_as_jump(self.code[q])
        k, per_jumps = len(watch.pcs), self.jmps - watch.jmps
        base_insns, base_jumps = self.processed, self.jmps
        for j in range(1, end):
            for p, q in stops:
                if j == 1 and p == 0:
                    continue  # visited for real
                processed = base_insns + (j - 1) * k + p
                jumps = base_jumps + (j - 1) * per_jumps + jumps_before[p]
                if not self._checkpoint(q, jumps, processed):
                    continue
                t = self._moved(summary, watch, p, j)
                self._keep(s, t, q, st.key_with_regs(keys[p], t.regs, summary.position_deltas[p]))

    def _keep(self, s: State, kept: State, pc: int, key: tuple) -> None:
        rec = _Rec(kept, s.rec, pc, key)
        self.inprog.setdefault(pc, {})[key] = rec
        s.rec = rec
        self.total_states += 1
        self.live_states += 1
        self.peak_states = max(self.peak_states, self.live_states)

    # -- explored states ------------------------------------------------------------------------
    def _visit(self, s: State) -> bool:
        pc = s.pc
        live = self.cfg.live.get(pc)
        inprog = self.inprog.get(pc)
        key = None
        if inprog:
            key = s.key(live)
            if key in inprog:
                if s.loop_callback is not None and s.loop_callback == pc:
                    return True  # another bpf_loop iteration from a state already being explored
                raise Reject(f"infinite loop: the state at {pc} repeats with nothing changed since the last visit "
                             f"on this path")
        s.loop_callback = None
        safe = self.safe.get(pc)
        if safe:
            covered = dropped = False
            for i, rec in enumerate(safe):
                if st.subsumes(rec.state, s, live):
                    rec.hit += 1
                    covered = True
                    break
                rec.miss += 1
                if rec.miss > rec.hit * 3 + 3 and len(safe) > 8:
                    safe[i] = None  # type: ignore[call-overload]
                    dropped = True
            if dropped:  # states that rarely cover anything cost more to compare than they save
                self.live_states -= safe.count(None)  # type: ignore[arg-type]
                self.safe[pc] = [r for r in safe if r is not None]
            if covered:
                return True
        if not self._checkpoint(pc, self.jmps, self.processed):
            return False
        if key is None:
            key = s.key(live)
        self._keep(s, s.copy(), pc, key)
        return False

    def _checkpoint(self, pc: int, jumps: int, processed: int) -> bool:
        """Whether the walk keeps the state it reaches at prune point ``pc`` with these counts;
        if so, the counts start again from it.

        Keeping a state at every prune point would cost more comparisons than it saves, so, as the
        kernel does, states are spaced out, except where a path enters a function or makes a
        call. A summary replays this rule over the iterations it skips: both must go through here.
        """
        force = pc in self.cfg.subprogs or self.code[pc].opcode == op.CALL
        if not force and (jumps - self.last_add_jmps < 2 or processed - self.last_add_insns < 8):
            return False
        self.last_add_jmps, self.last_add_insns = jumps, processed
        return True

    def _fork(self, s: State) -> State:
        self.forks += 1
        t = s.copy()
        if s.rec is not None:
            s.rec.branches += 1
        self.pending.append(t)
        return t

    def _finish(self, s: State) -> None:
        r = s.rec
        while r is not None:
            r.branches -= 1
            if r.branches > 0:
                break
            d = self.inprog.get(r.pc)
            if d is not None and d.get(r.key) is r:
                del d[r.key]
            self.safe.setdefault(r.pc, []).append(r)
            r = r.parent

    # -- one instruction ----------------------------------------------------------------------------
    def _step(self, s: State, pc: int, insn: Insn) -> bool:
        """Apply ``insn``; False when the path ends here."""
        cls = insn.opcode & 0x07
        if insn.is_wide:
            self._lddw(s, pc, insn)
        elif cls in (op.BPF_ALU, op.BPF_ALU64):
            self._alu(s, insn)
        elif cls == op.BPF_LDX:
            self._ldx(s, insn)
        elif cls in (op.BPF_ST, op.BPF_STX):
            if cls == op.BPF_STX and insn.opcode & 0xE0 == op.BPF_ATOMIC:
                self._atomic(s, insn)
            else:
                self._store(s, insn)
        elif cls == op.BPF_LD:
            self._ld_abs(s, insn)
        else:
            return self._jmp(s, pc, insn)
        s.pc = self.cfg.next_pc[pc]
        return True

    # -- registers ------------------------------------------------------------------------------
    def _read(self, s: State, n: int) -> Reg:
        r = s.regs[n]
        if r.type == st.NOT_INIT:
            raise Reject(f"{_rname(n)} is read before it is written (uninitialised)")
        return r

    def _no_leak(self, r: Reg, n: int, where: str) -> None:
        if not self.priv and r.is_pointer:
            raise Reject(f"{_rname(n)} ({_what(r)}) would leak a kernel address into {where}; "
                         f"only privileged programs may do that")

    # -- lddw -------------------------------------------------------------------------------------
    def _lddw(self, s: State, pc: int, insn: Insn) -> None:
        src = insn.src
        if src == 0:
            s.regs[insn.dst] = st.const(insn.imm)
            return
        if src in (op.BPF_PSEUDO_MAP_IDX, op.BPF_PSEUDO_MAP_IDX_VALUE):
            idx = insn.imm & 0xFFFFFFFF
            if idx >= len(self.maps):
                raise Reject(f"map index {idx} does not exist: the program has {len(self.maps)} map(s)")
            m = self.maps[idx]
            if src == op.BPF_PSEUDO_MAP_IDX:
                s.regs[insn.dst] = Reg(st.MAP_PTR, aux=idx, origin=f"(map '{m.name}')")
                return
            off = insn.imm >> 32
            if off >= m.value_size:
                raise Reject(f"offset {off} is outside the {m.value_size}-byte value of map '{m.name}'")
            s.regs[insn.dst] = Reg(st.MAP_VALUE, off=off, aux=idx, origin=f"(global data in map '{m.name}')")
            return
        if src == op.BPF_PSEUDO_FUNC:
            s.regs[insn.dst] = Reg(st.FUNC, aux=func_target(pc, insn))
            return
        raise Reject(f"lddw with source {src} (map fd / BTF id) must be resolved by the loader first")

    # -- ALU ----------------------------------------------------------------------------------------
    def _alu(self, s: State, insn: Insn) -> None:
        regs = s.regs
        code = insn.opcode
        is64 = code & 0x07 == op.BPF_ALU64
        bits = 64 if is64 else 32
        alu_op = code & 0xF0
        d = insn.dst
        if alu_op == op.BPF_END:
            r = self._read(s, d)
            if r.is_pointer:
                self._no_leak(r, d, "a byte swap")
                regs[d] = st.UNKNOWN
                return
            swap = is64 or bool(code & op.BPF_TO_BE)
            regs[d] = st.scalar(sc.byteswap(r.var, insn.imm, swap))
            return
        if alu_op == op.BPF_NEG:
            r = self._read(s, d)
            if r.is_pointer:
                if not self.priv:
                    raise Reject(f"R{d} pointer arithmetic prohibited: cannot negate {_what(r)}")
                regs[d] = st.UNKNOWN
                return
            v = sc.alu("sub", sc.const(0), r.var, bits)
            regs[d] = st.scalar(v)
            return
        if code & op.BPF_X:
            src = self._read(s, insn.src)
        else:
            if alu_op in (op.BPF_DIV, op.BPF_MOD) and insn.imm == 0:
                raise Reject("division by the constant 0 (the kernel refuses a zero immediate divisor; "
                             "a register divisor that is 0 at run time gives 0)")
            imm = insn.imm if is64 else insn.imm & 0xFFFFFFFF
            src = st.const(imm)
        if alu_op == op.BPF_MOV:
            self._mov(s, insn, src, is64)
            return
        dst = self._read(s, d)
        name = _ALU_NAMES[alu_op]
        if alu_op in (op.BPF_DIV, op.BPF_MOD) and insn.off == 1:
            name = "s" + name
        if not dst.is_pointer and not src.is_pointer:
            regs[d] = st.scalar(sc.alu(name, dst.var, src.var, bits))
            return
        regs[d] = self._ptr_alu(d, insn, name, dst, src, is64)

    def _mov(self, s: State, insn: Insn, src: Reg, is64: bool) -> None:
        regs = s.regs
        if not insn.opcode & op.BPF_X:
            regs[insn.dst] = src
            return
        if src.is_pointer:
            if is64 and insn.off == 0:
                regs[insn.dst] = src
                return
            self._no_leak(src, insn.src, "a partial copy")
            regs[insn.dst] = st.UNKNOWN if is64 else st.scalar(sc.unsigned_range(0, tn.U32))
            return
        if insn.off:
            regs[insn.dst] = st.scalar(sc.sign_extend(src.var, insn.off, 64 if is64 else 32))
            return
        if not is64:
            regs[insn.dst] = st.scalar(sc.zext32(src.var))
            return
        if not src.var.is_const and insn.dst != insn.src:
            if src.id == 0:
                src = src._replace(id=self._new_id())
                regs[insn.src] = src
        regs[insn.dst] = src

    def _ptr_alu(self, d: int, insn: Insn, name: str, dst: Reg, src: Reg, is64: bool) -> Reg:
        if dst.is_pointer and src.is_pointer:
            if name == "sub" and self.priv:
                return st.UNKNOWN
            raise Reject(f"R{d} pointer {name} pointer prohibited: {_what(dst)} {name} {_what(src)}")
        if not is64:
            if name == "sub" and self.priv:
                return st.UNKNOWN
            raise Reject(f"R{d} 32-bit pointer arithmetic prohibited ({_what(dst if dst.is_pointer else src)})")
        if src.is_pointer:  # scalar <op> pointer
            if name == "add":
                dst, src = src, dst
            elif name == "sub":
                raise Reject(f"R{d} tried to subtract a pointer ({_what(src)}) from a scalar")
            else:
                raise Reject(f"R{d} pointer arithmetic with {name} operator prohibited ({_what(src)})")
        if name not in ("add", "sub"):
            what = "bitwise operator" if name in ("and", "or", "xor") else "pointer arithmetic with operator"
            raise Reject(f"R{d} {what} {name} on a pointer prohibited ({_what(dst)})")
        t = dst.type
        if t in st.NULLABLE:
            raise Reject(f"R{d} pointer arithmetic on {t} prohibited: {_what(dst)} may be NULL; "
                         f"check it against 0 first")
        off_s = src.var
        if t == st.MAP_PTR and not (off_s.is_const and off_s.value == 0 and name == "add"):
            raise Reject(f"R{d} pointer arithmetic on map_ptr prohibited")
        if t in (st.PKT_END, st.FUNC, st.SOCK, st.SOCK_OR_NULL):
            raise Reject(f"R{d} pointer arithmetic on {t} prohibited")
        if off_s.is_const:
            c = sc.s64(off_s.value)
            new_off = dst.off + c if name == "add" else dst.off - c
            if t != st.RAW and abs(new_off) >= MAX_VAR_OFF:
                raise Reject(f"R{d} value {c} makes the {t} pointer go out of bounds")
            return dst._replace(off=new_off)
        if t != st.RAW:
            if off_s.smin == sc.S64_MIN or off_s.smax == sc.S64_MAX:
                raise Reject(f"R{d} math between {t} pointer and a register with unbounded range "
                             f"(scalar {off_s.describe()}) is not allowed; bound it first")
            if off_s.smin <= -MAX_VAR_OFF or off_s.smax >= MAX_VAR_OFF:
                raise Reject(f"R{d} value range {off_s.describe()} makes the {t} pointer go out of bounds")
        var = sc.alu(name, dst.var, off_s, 64)
        new = st.with_var(dst, var)
        if t in st.PACKET_TYPES:
            new = new._replace(id=self._new_id(), aux=0)
        return new

    # -- memory -------------------------------------------------------------------------------------
    def _ldx(self, s: State, insn: Insn) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        signed = insn.opcode & 0xE0 == op.BPF_MEMSX
        n = insn.src
        ptr = self._read(s, n)
        value = self._access(s, n, ptr, insn.off, size, write=False, signed=signed)
        s.regs[insn.dst] = value

    def _store(self, s: State, insn: Insn) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        if insn.opcode & 0x07 == op.BPF_STX:
            value = self._read(s, insn.src)
            vreg = insn.src
        else:
            value = st.const(insn.imm)
            vreg = -1
        ptr = self._read(s, insn.dst)
        self._access(s, insn.dst, ptr, insn.off, size, write=True, value=value, vreg=vreg)

    def _atomic(self, s: State, insn: Insn) -> None:
        size = op.SIZE_BYTES[insn.opcode & 0x18]
        ptr = self._read(s, insn.dst)
        value = self._read(s, insn.src)
        self._no_leak(value, insn.src, "memory (atomic operand)")
        if insn.imm == op.BPF_CMPXCHG:
            r0 = self._read(s, 0)
            self._no_leak(r0, 0, "memory (cmpxchg operand)")
        if ptr.type not in (st.STACK, st.MAP_VALUE, st.MEM, st.RAW):
            raise Reject(f"atomic operation on R{insn.dst} ({_what(ptr)}) is not allowed: only stack, map values "
                         f"and ringbuf records")
        where = tn.add(ptr.var.var, tn.const(ptr.off + insn.off))
        if not tn.is_aligned(where, size):
            raise Reject(f"misaligned {size}-byte atomic access through R{insn.dst} ({_what(ptr)}), "
                         f"offset {insn.off}")
        self._access(s, insn.dst, ptr, insn.off, size, write=False)
        self._access(s, insn.dst, ptr, insn.off, size, write=True, value=st.UNKNOWN, vreg=-1)
        result = st.scalar(sc.loaded(size))
        if insn.imm == op.BPF_CMPXCHG:
            s.regs[0] = result
        elif insn.imm & op.BPF_FETCH:
            s.regs[insn.src] = result

    def _access(self, s: State, n: int, ptr: Reg, off: int, size: int, *, write: bool, signed: bool = False,
                value: Reg | None = None, vreg: int = -1) -> Reg:
        t = ptr.type
        verb = "write" if write else "read"
        if t == st.SCALAR:
            raise Reject(f"R{n} is a scalar ({ptr.var.describe()}), not a pointer: cannot {verb} memory through it")
        if t in st.NULLABLE:
            raise Reject(f"R{n} may be NULL ({_what(ptr)}); check it against 0 first")
        loaded = st.scalar(sc.loaded(size, signed))
        if t == st.STACK:
            if write and value is not None and value.is_pointer and size != 8:
                raise Reject(f"invalid size of register spill: {size}-byte store of R{vreg} ({_what(value)})")
            return self._stack_access(s, n, ptr, off, size, write, value, signed)
        if t == st.CTX:
            return self._ctx_access(n, ptr, off, size, write, value, vreg, signed)
        if t in st.PACKET_TYPES:
            self._check_packet(n, ptr, off, size)
            if write:
                if self.prog_type not in ("xdp", "sched_cls"):
                    raise Reject(f"{self.prog_type} programs cannot write into the packet")
                if value is not None:
                    self._no_leak(value, vreg, "the packet")
            return loaded
        if t in (st.MAP_VALUE, st.MEM):
            if t == st.MAP_VALUE:
                m = self.maps[ptr.aux]
                limit, what = m.value_size, f"the {m.value_size}-byte value of map '{m.name}'"
                if write and m.flags & mt.BPF_F_RDONLY_PROG:
                    raise Reject(f"map '{m.name}' is read-only for programs: cannot write into its value")
            else:
                limit, what = ptr.aux, f"the {ptr.aux}-byte ringbuf record"
            self._check_region(n, ptr, off, size, limit, what)
            if write and value is not None:
                self._no_leak(value, vreg, "a map value")
            return loaded
        if t == st.RAW:
            return loaded
        if t == st.PKT_END:
            raise Reject(f"R{n} is the packet end ({_what(ptr)}): it cannot be dereferenced")
        raise Reject(f"R{n} ({_what(ptr)}) cannot be dereferenced")

    def _check_region(self, n: int, ptr: Reg, off: int, size: int, limit: int, what: str) -> None:
        v = ptr.var
        if v.smin < 0:
            raise Reject(f"R{n} ({_what(ptr)}): the variable offset may be negative "
                         f"(min {v.smin}); use an unsigned index or check it is >= 0")
        if v.umax >= MAX_VAR_OFF:
            raise Reject(f"R{n} ({_what(ptr)}): unbounded memory access; bound the offset first "
                         f"(e.g. 'if (i < N)' or 'i &= mask')")
        lo = ptr.off + off + v.smin
        hi = ptr.off + off + v.umax + size
        if lo < 0 or hi > limit:
            raise Reject(f"R{n} ({_what(ptr)}): access of {size} bytes at offset {ptr.off + off}"
                         f"{'' if v.is_const else f' + [{v.smin}, {v.umax}]'} is outside {what}")

    def _check_packet(self, n: int, ptr: Reg, off: int, size: int) -> None:
        if ptr.var.smin < 0:
            raise Reject(f"R{n} ({_what(ptr)}): the variable offset may be negative; check it is >= 0")
        o = ptr.off + off
        if o < 0 or o + size > ptr.aux:
            kind = "packet metadata" if ptr.type == st.PKT_META else "packet"
            end = "data" if ptr.type == st.PKT_META else "data_end"
            raise Reject(f"R{n} ({_what(ptr)}): {size}-byte access at offset {o} is beyond the {ptr.aux} "
                         f"{kind} bytes proved to exist; compare the pointer with {end} first")

    def _ctx_access(self, n: int, ptr: Reg, off: int, size: int, write: bool, value: Reg | None, vreg: int,
                    signed: bool) -> Reg:
        layout = self.layout
        if layout is None:
            raise Reject(f"R{n}: the {self.prog_type} program type has no context structure")
        if ptr.off or not (ptr.var.is_const and ptr.var.value == 0):
            raise Reject(f"R{n} ({_what(ptr)}): dereference of a modified context pointer; "
                         f"use the original pointer with an instruction offset")
        f, why = layout.check(off, size, write)
        if f is None:
            raise Reject(f"invalid {layout.name} access at off={off} size={size}: {why}")
        if write:
            if value is not None:
                self._no_leak(value, vreg, "the context")
            return st.UNKNOWN
        if f.loads != st.SCALAR:
            if signed:
                raise Reject(f"{layout.name} field '{f.name}' is a pointer: it cannot be loaded sign-extended")
            if f.loads == st.SOCK_OR_NULL:
                return Reg(st.SOCK_OR_NULL, id=self._new_id(), origin=f"(from {layout.name}.{f.name})")
            return Reg(f.loads, origin=f"(from {layout.name}.{f.name})")
        return st.scalar(sc.loaded(size, signed))

    def _stack_range(self, n: int, ptr: Reg, off: int, size: int, what: str) -> tuple[int, int]:
        v = ptr.var
        if not v.is_const and not self.priv:
            raise Reject(f"R{n} ({_what(ptr)}): variable-offset stack {what} is allowed only in privileged mode")
        lo = ptr.off + off + (sc.s64(v.value) if v.is_const else v.smin)
        hi = ptr.off + off + (sc.s64(v.value) if v.is_const else v.smax) + size
        if lo < -st.MAX_STACK or hi > 0:
            raise Reject(f"R{n} ({_what(ptr)}): stack {what} of {size} bytes at offset {lo} is outside the "
                         f"{st.MAX_STACK}-byte stack frame")
        return lo, hi

    def _frame_of(self, s: State, ptr: Reg) -> Frame:
        return s.frames[ptr.aux]

    def _stack_access(self, s: State, n: int, ptr: Reg, off: int, size: int, write: bool, value: Reg | None,
                      signed: bool) -> Reg:
        lo, hi = self._stack_range(n, ptr, off, size, "write" if write else "read")
        if ptr.var.is_const:
            if lo % size:
                raise Reject(f"misaligned stack access: {size} bytes at fp{lo}")
        elif not tn.is_aligned(tn.add(ptr.var.var, tn.const(ptr.off + off)), size):
            raise Reject(f"misaligned variable-offset stack access through R{n} ({_what(ptr)})")
        frame = self._frame_of(s, ptr)
        self._note_depth(frame, -lo)
        if write:
            self._stack_write(frame, lo, hi, size, value if ptr.var.is_const else None, value)
            return st.UNKNOWN
        return self._stack_read(frame, lo, hi, size, signed, exact=ptr.var.is_const)

    def _note_depth(self, frame: Frame, depth: int) -> None:
        if depth > self.depth.get(frame.subprog, 0):
            self.depth[frame.subprog] = depth

    def _stack_write(self, frame: Frame, lo: int, hi: int, size: int, spill: Reg | None, value: Reg | None) -> None:
        stack = frame.stack
        if spill is not None and size == 8 and lo % 8 == 0 and (spill.is_pointer or spill.type == st.SCALAR):
            stack[(-lo - 1) // 8] = Slot("rrrrrrrr", spill)
            return
        zero = value is not None and value.type == st.SCALAR and value.var.is_const and value.var.value == 0
        exact = spill is not None
        for addr in range(lo, hi):
            k = (-addr - 1) // 8
            slot = stack.get(k, st.EMPTY_SLOT)
            kinds = list(slot.kinds)
            if slot.spill is not None:
                if slot.spill.is_pointer and not self.priv:
                    raise Reject(f"attempt to overwrite part of a spilled pointer at fp{-(k + 1) * 8}")
                kinds = ["m" if c == "r" else c for c in kinds]
            i = addr - (-(k + 1) * 8)
            if zero and (exact or kinds[i] == "0"):
                kinds[i] = "0"
            else:
                kinds[i] = "m"
            stack[k] = Slot("".join(kinds), None)

    def _stack_read(self, frame: Frame, lo: int, hi: int, size: int, signed: bool, exact: bool) -> Reg:
        stack = frame.stack
        if exact and size == 8 and lo % 8 == 0:
            slot = stack.get((-lo - 1) // 8)
            if slot is not None and slot.spill is not None and slot.kinds == "rrrrrrrr":
                return slot.spill
        kinds = []
        for addr in range(lo, hi):
            k = (-addr - 1) // 8
            slot = stack.get(k, st.EMPTY_SLOT)
            c = slot.kinds[addr - (-(k + 1) * 8)]
            if c == "r" and slot.spill is not None and slot.spill.is_pointer:
                raise Reject(f"invalid size of register fill: {size}-byte read of a spilled pointer "
                             f"({_what(slot.spill)}) at fp{lo}")
            if c == "?" and not self.priv:
                raise Reject(f"invalid read from stack: {size} bytes at fp{lo} include uninitialised bytes")
            kinds.append(c)
        if all(c == "0" for c in kinds):
            return st.const(0)
        return st.scalar(sc.loaded(size, signed))

    # -- helper memory arguments ---------------------------------------------------------------------
    def _check_mem_arg(self, s: State, n: int, ptr: Reg, size_max: int, *, write: bool, what: str) -> None:
        t = ptr.type
        if t in st.NULLABLE:
            raise Reject(f"R{n} may be NULL ({_what(ptr)}); check it against 0 before passing it as {what}")
        if size_max == 0 and t in (st.STACK, st.MAP_VALUE, st.MEM, st.PKT, st.PKT_META, st.RAW):
            return
        if t == st.STACK:
            lo, hi = self._stack_range(n, ptr, 0, size_max, "access by a helper")
            frame = self._frame_of(s, ptr)
            self._note_depth(frame, -lo)
            if write:
                for addr in range(lo, hi):
                    k = (-addr - 1) // 8
                    slot = frame.stack.get(k, st.EMPTY_SLOT)
                    kinds = ["m" if c == "r" else c for c in slot.kinds]
                    kinds[addr - (-(k + 1) * 8)] = "m"
                    frame.stack[k] = Slot("".join(kinds), None)
            elif not self.priv:
                for addr in range(lo, hi):
                    k = (-addr - 1) // 8
                    slot = frame.stack.get(k, st.EMPTY_SLOT)
                    if slot.kinds[addr - (-(k + 1) * 8)] == "?":
                        raise Reject(f"R{n} ({_what(ptr)}): {what} of {size_max} bytes includes uninitialised "
                                     f"stack at fp{addr}")
            return
        if t == st.MAP_VALUE:
            m = self.maps[ptr.aux]
            if write and m.flags & mt.BPF_F_RDONLY_PROG:
                raise Reject(f"map '{m.name}' is read-only for programs: a helper cannot write into its value")
            self._check_region(n, ptr, 0, size_max, m.value_size, f"the {m.value_size}-byte value of map '{m.name}'")
            return
        if t == st.MEM:
            self._check_region(n, ptr, 0, size_max, ptr.aux, f"the {ptr.aux}-byte ringbuf record")
            return
        if t in st.PACKET_TYPES:
            self._check_packet(n, ptr, 0, size_max)
            return
        if t == st.RAW:
            return
        raise Reject(f"R{n} ({_what(ptr)}) is not {what}: expected a pointer to stack, map value, packet or "
                     f"ringbuf record")

    # -- calls ----------------------------------------------------------------------------------------
    def _helper(self, s: State, pc: int, insn: Insn) -> bool:
        hid = insn.imm
        proto = hp.PROTOS.get(hid)
        if proto is None:
            raise Reject(f"unknown helper function {hid}: no helper has id {hid} in this runtime")
        if not hp.allowed(hid, self.prog_type):
            raise Reject(f"program type {self.prog_type} cannot call helper {proto.name} (#{hid})")
        regs = s.regs
        map_idx = -1
        mem_reg = -1
        callback = -1
        release_ref = 0
        alloc_size = 0
        key_reg = None
        for i, kind in enumerate(proto.args):
            n = i + 1
            r = self._read(s, n)
            if kind == hp.ANYTHING:
                self._no_leak(r, n, f"helper {proto.name}")
            elif kind == hp.MAP:
                if r.type != st.MAP_PTR or r.off:
                    raise Reject(f"R{n} ({_what(r)}) must be a map for {proto.name}")
                map_idx = r.aux
                m = self.maps[map_idx]
                if proto.map_types is not None and m.map_type not in proto.map_types:
                    raise Reject(f"{proto.name} cannot be used with map '{m.name}' of type "
                                 f"{mt.MAP_TYPE_NAMES.get(m.map_type, m.map_type)}")
            elif kind in (hp.KEY, hp.VALUE, hp.UNINIT_VALUE):
                m = self.maps[map_idx]
                size = m.key_size if kind == hp.KEY else m.value_size
                if kind == hp.KEY:
                    key_reg = r
                self._check_mem_arg(s, n, r, size, write=kind == hp.UNINIT_VALUE,
                                    what=f"a {size}-byte {'key' if kind == hp.KEY else 'value'} of map '{m.name}'")
            elif kind in (hp.MEM, hp.UNINIT_MEM, hp.MEM_OR_NULL):
                mem_reg = n
            elif kind in (hp.SIZE, hp.SIZE_OR_ZERO):
                self._size_arg(s, n, r, mem_reg, proto, kind, regs)
            elif kind == hp.ALLOC_SIZE:
                if r.type != st.SCALAR or not r.var.is_const:
                    raise Reject(f"R{n} ({_what(r)}) must be a known constant: the size of the record to reserve")
                alloc_size = r.var.value
            elif kind == hp.CTX:
                if r.type == st.RAW and r.off == 0 and r.var.is_const:
                    continue
                if r.type != st.CTX or r.off or not (r.var.is_const and r.var.value == 0):
                    raise Reject(f"R{n} ({_what(r)}) must be the unmodified context pointer for {proto.name}")
            elif kind == hp.FUNC:
                if r.type != st.FUNC:
                    raise Reject(f"R{n} ({_what(r)}) must be a callback function address for {proto.name}")
                callback = r.aux
            elif kind == hp.STACK_OR_NULL:
                if not (r.type == st.STACK or (r.type == st.SCALAR and r.var.is_const and r.var.value == 0)):
                    raise Reject(f"R{n} ({_what(r)}) must be a stack pointer or NULL for {proto.name}")
            elif kind == hp.RINGBUF_MEM:
                if r.type == st.MEM_OR_NULL:
                    raise Reject(f"R{n} may be NULL ({_what(r)}); check it against 0 before {proto.name}")
                if r.type != st.MEM or r.ref == 0:
                    raise Reject(f"R{n} ({_what(r)}) must be a record from bpf_ringbuf_reserve for {proto.name}")
                if r.off or not (r.var.is_const and r.var.value == 0):
                    raise Reject(f"R{n} ({_what(r)}) must point at the start of the record when passed to "
                                 f"{proto.name}")
                release_ref = r.ref
        if hid == hp.BPF_FUNC_TAIL_CALL and s.refs:
            ref, at = next(iter(s.refs.items()))
            raise Reject(f"bpf_tail_call would leak the ringbuf record reserved at {at} (ref {ref})")
        if hid == hp.BPF_FUNC_LOOP:
            return self._bpf_loop(s, pc, callback)
        if release_ref:
            del s.refs[release_ref]
            self._invalidate(s, lambda r: r.ref == release_ref)
        if proto.changes_pkt:
            self._invalidate(s, lambda r: r.type in (st.PKT, st.PKT_END, st.PKT_META))
        regs = s.regs  # _invalidate replaced the register lists: write the call's results to the new ones
        for n in range(1, 6):
            regs[n] = st.UNINIT
        if proto.ret == hp.RET_INTEGER:
            regs[0] = st.scalar(sc.unsigned_range(0, tn.U32)) if hid in _U32_HELPERS else st.UNKNOWN
        elif proto.ret == hp.RET_VOID:
            regs[0] = st.UNINIT
        elif proto.ret == hp.RET_MAP_VALUE_OR_NULL and self._known_in_bounds(s, hid, map_idx, key_reg):
            regs[0] = Reg(st.MAP_VALUE, aux=map_idx, origin=f"from {proto.name} at {pc} (constant key)")
        elif proto.ret == hp.RET_MAP_VALUE_OR_NULL:
            regs[0] = Reg(st.MAP_VALUE_OR_NULL, aux=map_idx, id=self._new_id(), origin=f"from {proto.name} at {pc}")
        elif proto.ret == hp.RET_RINGBUF_MEM_OR_NULL:
            ref = self._new_id()
            s.refs[ref] = pc
            regs[0] = Reg(st.MEM_OR_NULL, aux=alloc_size, id=ref, ref=ref, origin=f"from {proto.name} at {pc}")
        s.pc = self.cfg.next_pc[pc]
        return True

    def _known_in_bounds(self, s: State, hid: int, map_idx: int, key: Reg | None) -> bool:
        # Newer kernels (6.x) prove an array lookup with a constant in-range key cannot fail.
        m = self.maps[map_idx]
        if hid != 1 or m.map_type not in (mt.BPF_MAP_TYPE_ARRAY, mt.BPF_MAP_TYPE_PERCPU_ARRAY):
            return False
        if key is None or key.type != st.STACK or not key.var.is_const or m.key_size != 4:
            return False
        lo = key.off + sc.s64(key.var.value)
        if lo % 4 or lo < -st.MAX_STACK or lo + 4 > 0:
            return False
        frame = s.frames[key.aux]
        k = (-lo - 1) // 8
        slot = frame.stack.get(k)
        if slot is None:
            return False
        i = lo - (-(k + 1) * 8)
        if slot.kinds[i:i + 4] == "0000":
            value = 0
        elif slot.spill is not None and slot.kinds == "rrrrrrrr" and slot.spill.type == st.SCALAR \
                and slot.spill.var.is_const:
            value = (slot.spill.var.value >> (8 * i)) & 0xFFFFFFFF
        else:
            return False
        return value < m.max_entries

    def _size_arg(self, s: State, n: int, r: Reg, mem_reg: int, proto: hp.Proto, kind: str, regs: list[Reg]) -> None:
        if r.type != st.SCALAR:
            raise Reject(f"R{n} ({_what(r)}) must be a scalar size for {proto.name}")
        v = r.var
        if v.smin < 0:
            raise Reject(f"R{n} (scalar {v.describe()}): the size may be negative; check it is >= 0 first")
        if v.umax >= MAX_VAR_OFF:
            raise Reject(f"R{n} (scalar {v.describe()}): unbounded memory access size; bound it first "
                         f"(e.g. 'if (len <= N)')")
        if kind == hp.SIZE and v.umin == 0:
            raise Reject(f"R{n} (scalar {v.describe()}): the size may be zero, which {proto.name} does not allow")
        ptr = regs[mem_reg]
        mem_kind = proto.args[mem_reg - 1]
        if mem_kind == hp.MEM_OR_NULL and ptr.type == st.SCALAR and ptr.var.is_const and ptr.var.value == 0:
            if v.umax != 0:
                raise Reject(f"R{mem_reg} is NULL but R{n} (size {v.describe()}) is not 0")
            return
        self._check_mem_arg(s, mem_reg, ptr, v.umax, write=mem_kind == hp.UNINIT_MEM,
                            what=f"memory for {proto.name}")

    def _invalidate(self, s: State, pred) -> None:
        bad = st.UNKNOWN if self.priv else st.UNINIT
        for f in s.frames:
            f.regs = [bad if pred(r) else r for r in f.regs]
            for k, slot in list(f.stack.items()):
                if slot.spill is not None and pred(slot.spill):
                    f.stack[k] = Slot("mmmmmmmm", None)

    def _bpf_loop(self, s: State, pc: int, callback: int) -> bool:
        # Zero iterations: the caller goes on with the call's result. The callback path comes
        # back to this call when it returns, so further iterations are explored until pruned.
        after = self._fork(s)
        for n in range(1, 6):
            after.regs[n] = st.UNINIT
        after.regs[0] = st.UNKNOWN
        after.pc = self.cfg.next_pc[pc]
        after.note(pc, "bpf_loop: no (more) iterations")
        if len(s.frames) >= MAX_CALL_FRAMES:
            raise Reject(f"the call stack of {len(s.frames) + 1} frames is too deep (at most {MAX_CALL_FRAMES})")
        regs = [st.UNINIT] * 11
        regs[1] = st.scalar(sc.unsigned_range(0, (1 << 23) - 1))
        regs[2] = s.regs[3]
        regs[10] = Reg(st.STACK, aux=len(s.frames))
        entry = [f.copy() for f in s.frames]
        s.frames.append(Frame(regs, {}, pc, callback, entry))
        s.note(pc, f"bpf_loop callback at {callback}")
        s.pc = callback
        return True

    def _call_local(self, s: State, pc: int, insn: Insn) -> bool:
        if not self.priv:
            raise Reject("calls to other bpf functions are allowed only in privileged mode")
        if len(s.frames) >= MAX_CALL_FRAMES:
            raise Reject(f"the call stack of {len(s.frames) + 1} frames is too deep (at most {MAX_CALL_FRAMES})")
        target = func_target(pc, insn)
        caller = s.regs
        regs = [st.UNINIT] * 11
        for n in range(1, 6):
            regs[n] = caller[n]
        regs[10] = Reg(st.STACK, aux=len(s.frames))
        s.frames.append(Frame(regs, {}, pc, target))
        s.note(pc, f"call {target}")
        s.pc = target
        return True

    def _exit(self, s: State, pc: int) -> bool:
        r0 = s.regs[0]
        if r0.type == st.NOT_INIT:
            raise Reject("R0 is not set at exit: a function must leave its return value in r0")
        if len(s.frames) > 1:
            frame = s.frames[-1]
            caller = s.frames[-2]
            callsite = frame.callsite
            is_callback = self.code[callsite].opcode == op.CALL and self.code[callsite].src == 0
            if r0.type == st.STACK and r0.aux == len(s.frames) - 1:
                raise Reject("R0 points into the returning function's own stack frame: cannot return it")
            if is_callback:
                if r0.type != st.SCALAR or r0.var.umin > 1 or r0.var.umax > 1:
                    raise Reject(f"a bpf_loop callback must return 0 or 1, R0 is {_what(r0)}")
                s.frames.pop()
                # Another iteration starts from what this one left, joined with what the
                # previous one started from: values the callback changes widen to unknown, so
                # the iterations reach a fixed point instead of walking every trip count.
                if frame.entry is not None:
                    for f, old in zip(s.frames, frame.entry, strict=True):
                        st.join_frame_into(f, old)
                s.note(pc, f"callback returns to {callsite}")
                s.pc = callsite
                s.loop_callback = callsite
                return True
            s.frames.pop()
            regs = caller.regs
            regs[0] = r0
            for n in range(1, 6):
                regs[n] = st.UNINIT
            s.note(pc, f"return to {callsite + 1}")
            s.pc = self.cfg.next_pc[callsite]
            return True
        if r0.is_pointer:
            if not self.priv:
                raise Reject(f"R0 ({_what(r0)}) leaks a kernel address as the return value")
        rng = cx.RETURN_RANGES.get(self.prog_type)
        if rng is not None and r0.type == st.SCALAR and (r0.var.smin < rng[0] or r0.var.smax > rng[1]):
            raise Reject(f"R0 is {_what(r0)} at exit; a {self.prog_type} program must return a value in "
                         f"[{rng[0]}, {rng[1]}]")
        if s.refs:
            ref, at = next(iter(s.refs.items()))
            raise Reject(f"the ringbuf record reserved at {at} (ref {ref}) is neither submitted nor discarded "
                         f"on this path")
        return False

    def _ld_abs(self, s: State, insn: Insn) -> None:
        if self.prog_type not in cx.LD_ABS_TYPES:
            raise Reject(f"legacy packet loads (ld_abs/ld_ind) are not allowed in {self.prog_type} programs")
        r6 = self._read(s, 6)
        if r6.type != st.CTX or r6.off:
            raise Reject(f"ld_abs/ld_ind need the context in R6, but R6 is {_what(r6)}")
        if insn.opcode & 0xE0 == op.BPF_IND:
            r = self._read(s, insn.src)
            if r.is_pointer:
                raise Reject(f"R{insn.src} ({_what(r)}) must be a scalar offset for ld_ind")
        if s.refs:
            raise Reject("ld_abs/ld_ind cannot be used while a ringbuf record is held")
        for n in range(1, 6):
            s.regs[n] = st.UNINIT
        s.regs[0] = st.scalar(sc.loaded(op.SIZE_BYTES[insn.opcode & 0x18]))

    # -- jumps ------------------------------------------------------------------------------------------
    def _jmp(self, s: State, pc: int, insn: Insn) -> bool:
        code = insn.opcode
        self.jmps += _counts_as_jump(insn)
        if code in (op.JA, op.JA32):
            s.pc = jump_target(pc, insn)
            return True
        if code == op.EXIT:
            return self._exit(s, pc)
        if code == op.CALL:
            if insn.src == op.BPF_PSEUDO_CALL:
                return self._call_local(s, pc, insn)
            return self._helper(s, pc, insn)
        if code == op.CALLX:
            raise Reject("call through a register (callx) is not supported by the kernel's verifier")
        return self._cond(s, pc, insn)

    def _cond(self, s: State, pc: int, insn: Insn) -> bool:
        code = insn.opcode
        is32 = code & 0x07 == op.BPF_JMP32
        bits = 32 if is32 else 64
        rel = _JMP_REL[code & 0xF0]
        dst = self._read(s, insn.dst)
        if code & op.BPF_X:
            src = self._read(s, insn.src)
        else:
            src = st.const(insn.imm if not is32 else insn.imm & 0xFFFFFFFF)
        target = jump_target(pc, insn)
        fall = self.cfg.next_pc[pc]
        taken_ok, fall_ok = True, True
        taken_fix = fall_fix = None
        if not dst.is_pointer and not src.is_pointer:
            t = sc.refine(dst.var, src.var, rel, bits)
            f = sc.refine(dst.var, src.var, sc.NEGATE[rel], bits)
            taken_ok, fall_ok = t is not None, f is not None
            taken_fix = ("scalar", t)
            fall_fix = ("scalar", f)
        else:
            zero = src.type == st.SCALAR and src.var.is_const and src.var.value == 0
            if dst.type in st.NULLABLE and zero and rel in ("eq", "ne") and not is32:
                null_on_taken = rel == "eq"
                taken_fix = ("null", null_on_taken)
                fall_fix = ("null", not null_on_taken)
            elif dst.type in (st.MAP_VALUE, st.MEM) and zero and rel in ("eq", "ne") and not is32:
                taken_ok, fall_ok = rel == "ne", rel == "eq"
            elif dst.is_pointer and src.is_pointer and self._pkt_pair(dst, src):
                taken_fix = ("pkt", rel)
                fall_fix = ("pkt", sc.NEGATE[rel])
            elif not self.priv and (src.is_pointer or not zero):
                raise Reject(f"R{insn.dst} pointer comparison prohibited: {_what(dst)} against {_what(src)}")
        if taken_ok and fall_ok:
            t = self._fork(s)
            self._apply(t, insn, dst, src, taken_fix)
            t.pc = target
            t.note(pc, f"taken to {target}")
            self._apply(s, insn, dst, src, fall_fix)
            s.pc = fall
            s.note(pc, "fall-through")
            return True
        if taken_ok:
            self._apply(s, insn, dst, src, taken_fix)
            s.pc = target
            return True
        if fall_ok:
            self._apply(s, insn, dst, src, fall_fix)
            s.pc = fall
            return True
        return False

    def _pkt_pair(self, a: Reg, b: Reg) -> bool:
        return (a.type == st.PKT and b.type == st.PKT_END) or (a.type == st.PKT_END and b.type == st.PKT) or \
            (a.type == st.PKT_META and b.type == st.PKT) or (a.type == st.PKT and b.type == st.PKT_META)

    def _apply(self, s: State, insn: Insn, dst: Reg, src: Reg, fix) -> bool:
        if fix is None:
            return True
        kind, arg = fix
        if kind == "scalar":
            if arg is None:
                return False
            nd, ns = arg
            self._set_scalar(s, insn.dst, dst, nd)
            if insn.opcode & op.BPF_X:
                self._set_scalar(s, insn.src, src, ns)
            return True
        if kind == "null":
            is_null = arg
            rid = dst.id
            if is_null:
                self._map_regs(s, lambda r: r.id == rid and r.type in st.NULLABLE, lambda r: st.const(0))
                if dst.ref:
                    s.refs.pop(dst.ref, None)
            else:
                self._map_regs(s, lambda r: r.id == rid and r.type in st.NULLABLE,
                               lambda r: r._replace(type=st.NULLABLE[r.type]))
            return True
        if kind == "pkt":
            self._learn_packet(s, dst, src, arg)
            return True
        return True

    def _set_scalar(self, s: State, n: int, old: Reg, new: sc.Scalar) -> None:
        if old.id:
            rid = old.id
            self._map_regs(s, lambda r: r.type == st.SCALAR and r.id == rid, lambda r: r._replace(var=new))
        else:
            s.regs[n] = st.with_var(old, new)

    def _map_regs(self, s: State, pred, fn) -> None:
        for f in s.frames:
            f.regs = [fn(r) if pred(r) else r for r in f.regs]
            for k, slot in list(f.stack.items()):
                if slot.spill is not None and pred(slot.spill):
                    f.stack[k] = Slot(slot.kinds, fn(slot.spill))

    def _learn_packet(self, s: State, dst: Reg, src: Reg, rel: str) -> None:
        # Normalise to "low <= high - k": accesses [low, low + k) are then within high.
        if rel in ("gt", "ge"):
            dst, src, rel = src, dst, {"gt": "lt", "ge": "le"}[rel]
        if rel == "lt":
            low, high, k = dst, src, 1
        elif rel == "le":
            low, high, k = dst, src, 0
        else:
            return
        if not ((low.type == st.PKT and high.type == st.PKT_END) or (low.type == st.PKT_META and high.type == st.PKT)):
            return
        if low.off < 0 or low.var.umax > MAX_PACKET_OFF or low.var.umax + low.off > MAX_PACKET_OFF:
            return
        new_range = low.off + k
        rid, rtype = low.id, low.type
        self._map_regs(s, lambda r: r.type == rtype and r.id == rid and r.aux < new_range,
                       lambda r: r._replace(aux=new_range))

    def _check_stack_chains(self) -> None:
        # The combined stack of every chain of calls, each frame rounded up to 32 bytes as the
        # kernel rounds, must fit in 512 bytes.
        def frame_size(sp: int) -> int:
            return (max(self.depth.get(sp, 0), 1) + 31) // 32 * 32

        def deepest(sp: int, seen: tuple[int, ...]) -> int:
            if sp in seen:
                return 0
            best = 0
            for callee in self.cfg.calls.get(sp, ()):
                best = max(best, deepest(callee, (*seen, sp)))
            return frame_size(sp) + best

        total = deepest(0, ())
        if total > st.MAX_STACK:
            raise Reject(f"combined stack size of the call chain is {total} bytes; at most {st.MAX_STACK} "
                         f"are allowed")


def insn_line(pc: int, insn: Insn) -> str:
    return f"{pc}: {insn_text(pc, insn)}"
