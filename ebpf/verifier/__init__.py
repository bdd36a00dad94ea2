"""The static verifier: prove a program safe for its type, helpers and maps before it runs.

``verify(program, maps=..., prog_type=..., privileged=...)`` returns a :class:`Verdict`. The
pipeline: structural validation (:mod:`bpfmc.ebpf.validate`), the control-flow checks
(:mod:`.cfg`), then abstract interpretation of every path (:mod:`.check`) over the state of
:mod:`.state`, with scalars from :mod:`.scalar`/:mod:`.tnum`, context rules from
:mod:`.context` and helper prototypes from :mod:`.helpers`.

Decisions of our own (the kernel has no ``raw`` program type): in ``raw`` programs r1 points
at the event buffer and r2 holds its length; the length is only known at run time, so
accesses through r1-derived pointers are accepted and left to the engine's bounds check
(``raw_mem`` in the log), while every other rule applies as for kernel program types.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ..insn import pcs
from ..maps import MapSpec
from ..program import Program, canonical_type
from ..validate import ValidationError, validate
from . import cfg as cfgmod
from .check import Reject, TooComplex, Walker
from .log import Log, insn_text, regs_text

__all__ = ["verify", "Verdict", "VerifierError"]


class VerifierError(Exception):
    """Why a program was refused: the pc, the instruction as disassembled, and the cause."""

    def __init__(self, pc: int, message: str, insn: str = "", log: str = ""):
        self.pc = pc
        self.message = message
        self.insn = insn
        self.log = log
        super().__init__(self.line)

    @property
    def line(self) -> str:
        if self.insn:
            return f"{self.pc}: {self.insn}: {self.message}"
        return f"{self.pc}: {self.message}"


@dataclass
class Verdict:
    accepted: bool
    error: VerifierError | None
    log: str
    stats: dict = field(default_factory=dict)

    def raise_for_error(self) -> None:
        if self.error is not None:
            raise self.error

    def __bool__(self) -> bool:
        return self.accepted


def verify(program: Program, *, maps: Sequence[MapSpec] = (), prog_type: str | None = None,
           privileged: bool = True, log_level: int = 1, insn_limit: int = 1_000_000,
           loop_summaries: bool = True) -> Verdict:
    """Verify ``program`` as ``prog_type`` (default: the program's own type).

    ``loop_summaries=False`` walks every loop iteration (see :mod:`.loops`); tests compare the two.
    """
    ptype = canonical_type(prog_type or program.prog_type)
    t0 = time.perf_counter()
    log = Log(log_level)
    stats = {"insns_processed": 0, "peak_states": 0, "total_states": 0, "iterations_summarised": 0,
             "time_ms": 0.0}

    def done(err: VerifierError | None, walker: Walker | None = None) -> Verdict:
        if walker is not None:
            stats.update(insns_processed=walker.processed, peak_states=walker.peak_states,
                         total_states=walker.total_states, iterations_summarised=walker.iterations_summarised)
        stats["time_ms"] = round((time.perf_counter() - t0) * 1000, 3)
        lines = []
        if err is not None:
            lines.append(err.line)
            lines.extend(err.log.splitlines())
        if log_level >= 2:
            lines.extend(log.lines)
        lines.append(f"{'accepted' if err is None else 'rejected'}: processed {stats['insns_processed']} insns "
                     f"(limit {insn_limit}), peak_states {stats['peak_states']}, total_states "
                     f"{stats['total_states']}, {stats['time_ms']} ms")
        text = "".join(line + "\n" for line in lines) if log_level > 0 else ""
        return Verdict(err is None, err, text, stats)

    try:
        validate(program.code, allow_pseudo=True)
    except ValidationError as e:
        return done(VerifierError(e.pc, e.reason))
    insns = program.insns()
    positions = pcs(insns)
    try:
        graph = cfgmod.build(insns, positions, privileged)
    except cfgmod.CfgError as e:
        return done(VerifierError(e.pc, e.message, insn_text(e.pc, graph_insn(insns, positions, e.pc))))
    walker = Walker(graph, maps, ptype, privileged, log, insn_limit)
    if not loop_summaries:
        walker.loop_heads = frozenset()
    try:
        walker.run()
    except Reject as e:
        s = walker.cur
        pc = s.pc
        insn = graph.code.get(pc)
        detail = []
        if not isinstance(e, TooComplex):
            path = s.path()
            if path:
                detail.append("path: " + " -> ".join(f"{p} {note}" for p, note in path))
            else:
                detail.append("path: straight from the entry")
            detail.append(f"state at {pc}: {regs_text(s)}")
        err = VerifierError(pc, e.message, insn_text(pc, insn) if insn is not None else "", "\n".join(detail))
        return done(err, walker)
    return done(None, walker)


def graph_insn(insns, positions, pc):
    for p, i in zip(positions, insns, strict=True):
        if p == pc:
            return i
    return insns[-1]
