"""The static shape of a program before any value is tracked (the kernel's ``check_cfg``).

Functions (entry, bpf-to-bpf call targets, callback addresses), jumps that leave their
function, functions that can run off their end, unreachable instructions, back-edges (loops:
privileged only), the call graph for the combined stack check, where explored states are kept
(prune points), and which registers are live at each instruction -- the last one lets state
comparison ignore dead registers, as the kernel's liveness marks do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import opcodes as op
from ..insn import Insn
from .helpers import PROTOS


class CfgError(Exception):
    def __init__(self, pc: int, message: str):
        super().__init__(message)
        self.pc = pc
        self.message = message


def _is_cond_jump(insn: Insn) -> bool:
    cls = insn.opcode & 0x07
    code = insn.opcode & 0xF0
    return cls in (op.BPF_JMP, op.BPF_JMP32) and code not in (op.BPF_JA, op.BPF_CALL, op.BPF_EXIT)


def jump_target(pc: int, insn: Insn) -> int:
    if insn.opcode == op.JA32:
        return pc + 1 + insn.imm
    return pc + 1 + insn.off


def func_target(pc: int, insn: Insn) -> int:
    """Target of a local call or of a callback address (lddw src=4): relative to the next slot."""
    imm = insn.imm & 0xFFFFFFFF if insn.is_wide else insn.imm
    if imm >> 31 and insn.is_wide:
        imm -= 1 << 32
    return pc + 1 + imm


@dataclass
class Cfg:
    code: dict[int, Insn]
    order: list[int]
    next_pc: dict[int, int]
    subprogs: list[int] = field(default_factory=list)  # entry pcs, sorted
    callbacks: set[int] = field(default_factory=set)
    prune: set[int] = field(default_factory=set)
    live: dict[int, frozenset[int]] = field(default_factory=dict)
    calls: dict[int, set[int]] = field(default_factory=dict)  # subprog -> subprogs it calls
    loop_heads: set[int] = field(default_factory=set)  # targets of back-edges

    def subprog_of(self, pc: int) -> int:
        best = self.subprogs[0]
        for s in self.subprogs:
            if s <= pc:
                best = s
            else:
                break
        return best

    def successors(self, pc: int) -> list[int]:
        insn = self.code[pc]
        cls = insn.opcode & 0x07
        if insn.opcode == op.EXIT:
            return []
        if insn.opcode in (op.JA, op.JA32):
            return [jump_target(pc, insn)]
        if cls in (op.BPF_JMP, op.BPF_JMP32) and _is_cond_jump(insn):
            return [self.next_pc[pc], jump_target(pc, insn)]
        return [self.next_pc[pc]] if pc in self.next_pc else []


def build(insns: list[Insn], positions: list[int], privileged: bool) -> Cfg:
    code = dict(zip(positions, insns, strict=True))
    nxt = {p: p + i.slots for p, i in zip(positions, insns, strict=True)}
    end = positions[-1] + insns[-1].slots
    cfg = Cfg(code, list(positions), {p: n for p, n in nxt.items() if n < end})
    entries = {0}
    for p, i in code.items():
        if i.opcode == op.CALL and i.src == op.BPF_PSEUDO_CALL:
            entries.add(func_target(p, i))
        elif i.is_wide and i.src == op.BPF_PSEUDO_FUNC:
            t = func_target(p, i)
            if t not in code:
                raise CfgError(p, f"callback address {t} is not the start of an instruction")
            entries.add(t)
            cfg.callbacks.add(t)
    cfg.subprogs = sorted(entries)
    bounds = {s: (cfg.subprogs[k + 1] if k + 1 < len(cfg.subprogs) else end) for k, s in enumerate(cfg.subprogs)}
    for s in cfg.subprogs:
        cfg.calls[s] = set()
    # Jumps stay in their function; every function ends in exit or ja.
    for p, i in code.items():
        s = cfg.subprog_of(p)
        lo, hi = s, bounds[s]
        if (i.opcode & 0x07) in (op.BPF_JMP, op.BPF_JMP32) and (i.opcode in (op.JA, op.JA32) or _is_cond_jump(i)):
            t = jump_target(p, i)
            if not lo <= t < hi:
                raise CfgError(p, f"jump from {p} to {t} leaves its function (pcs {lo}..{hi - 1})")
            cfg.prune.add(t)
            if _is_cond_jump(i) and p in cfg.next_pc:
                cfg.prune.add(cfg.next_pc[p])
        if i.opcode == op.CALL and i.src == op.BPF_PSEUDO_CALL:
            cfg.calls[s].add(func_target(p, i))
            cfg.prune.add(p)
            if p in cfg.next_pc:
                cfg.prune.add(cfg.next_pc[p])
        if i.is_wide and i.src == op.BPF_PSEUDO_FUNC:
            cfg.calls[s].add(func_target(p, i))
        if i.opcode == op.CALL and i.src == 0 and i.imm == 181:
            cfg.prune.add(p)
    for s in cfg.subprogs:
        last = max(p for p in code if s <= p < bounds[s])
        if code[last].opcode not in (op.EXIT, op.JA, op.JA32):
            raise CfgError(last, f"the function starting at {s} can run past its last instruction "
                                 f"(pc {last} is not exit or ja)")
    cfg.prune.update(cfg.subprogs)
    _reachability(cfg, privileged)
    _liveness(cfg)
    return cfg


def _reachability(cfg: Cfg, privileged: bool) -> None:
    # Iterative DFS from every function entry: colours find back-edges as the kernel does.
    colour: dict[int, int] = {}
    for entry in cfg.subprogs:
        if entry in colour:
            continue
        stack: list[tuple[int, list[int]]] = [(entry, cfg.successors(entry))]
        colour[entry] = 1
        while stack:
            p, succ = stack[-1]
            if not succ:
                colour[p] = 2
                stack.pop()
                continue
            t = succ.pop()
            c = colour.get(t, 0)
            if c == 0:
                colour[t] = 1
                stack.append((t, cfg.successors(t)))
            elif c == 1:
                if not privileged:
                    raise CfgError(p, f"back-edge from {p} to {t}: loops need privileged mode")
                cfg.loop_heads.add(t)
    # Only functions something calls count; a function nobody calls is unreachable code.
    called = {0}
    work = [0]
    while work:
        s = work.pop()
        for t in cfg.calls.get(s, ()):
            if t not in called:
                called.add(t)
                work.append(t)
    for p in cfg.order:
        if p not in colour or cfg.subprog_of(p) not in called:
            raise CfgError(p, f"instruction {p} is unreachable")


def _uses_defs(pc: int, insn: Insn) -> tuple[set[int], set[int]]:
    code, cls = insn.opcode, insn.opcode & 0x07
    if insn.is_wide:
        return set(), {insn.dst}
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        alu_op = code & 0xF0
        uses = set()
        if alu_op != op.BPF_MOV:
            uses.add(insn.dst)
        if code & op.BPF_X and alu_op not in (op.BPF_NEG, op.BPF_END):
            uses.add(insn.src)
        return uses, {insn.dst}
    if cls == op.BPF_LDX:
        return {insn.src}, {insn.dst}
    if cls == op.BPF_ST:
        return {insn.dst}, set()
    if cls == op.BPF_STX:
        if code & 0xE0 == op.BPF_ATOMIC:
            uses = {insn.dst, insn.src}
            defs = set()
            if insn.imm == op.BPF_CMPXCHG:
                uses.add(0)
                defs.add(0)
            elif insn.imm & op.BPF_FETCH:
                defs.add(insn.src)
            return uses, defs
        return {insn.dst, insn.src}, set()
    if cls == op.BPF_LD:  # ld_abs / ld_ind
        uses = {6} | ({insn.src} if code & 0xE0 == op.BPF_IND else set())
        return uses, {0, 1, 2, 3, 4, 5}
    if code == op.EXIT:
        return {0}, set()
    if code == op.CALL:
        if insn.src == 0 and insn.imm in PROTOS:
            return set(range(1, 1 + len(PROTOS[insn.imm].args))), {0, 1, 2, 3, 4, 5}
        return {1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5}
    if code == op.CALLX:
        return {insn.dst, 1, 2, 3, 4, 5}, {0, 1, 2, 3, 4, 5}
    if code in (op.JA, op.JA32):
        return set(), set()
    uses = {insn.dst}
    if code & op.BPF_X:
        uses.add(insn.src)
    return uses, set()


def _liveness(cfg: Cfg) -> None:
    info = {p: _uses_defs(p, i) for p, i in cfg.code.items()}
    preds: dict[int, list[int]] = {p: [] for p in cfg.code}
    succs = {p: cfg.successors(p) for p in cfg.code}
    for p, ss in succs.items():
        for t in ss:
            if t in preds:
                preds[t].append(p)
    live_in: dict[int, int] = {p: 0 for p in cfg.code}
    work = list(cfg.order)
    queued = set(work)
    while work:
        p = work.pop()
        queued.discard(p)
        out = 0
        for t in succs[p]:
            out |= live_in.get(t, 0)
        uses, defs = info[p]
        mask = out
        for d in defs:
            mask &= ~(1 << d)
        for u in uses:
            mask |= 1 << u
        mask |= 1 << 10
        if mask != live_in[p]:
            live_in[p] = mask
            for q in preds[p]:
                if q not in queued:
                    queued.add(q)
                    work.append(q)
    cfg.live = {p: frozenset(r for r in range(11) if m >> r & 1) for p, m in live_in.items()}
