"""The verifier's log: the cause first, then the path that led there, then statistics.

Instructions are shown as ``llvm-objdump`` (and the kernel's log) write them, through the
disassembler's llvm-style renderer.
"""

from __future__ import annotations

import re

from ..insn import Insn
from ..llvm_style import _Renderer
from .state import Reg, State

_RENDER = _Renderer(".text", False)
_TARGET = re.compile(r"\s*<[^>]*>$")


def insn_text(pc: int, insn: Insn) -> str:
    text = _RENDER.line(pc, insn)
    return _TARGET.sub("", text).replace("\t", " ")


def regs_text(state: State) -> str:
    parts = []
    frames = state.frames
    for n, r in enumerate(frames[-1].regs):
        if r.type != "not_init":
            parts.append(f"R{n}={_short(r)}")
    stack = frames[-1].stack
    for k in sorted(stack):
        s = stack[k]
        if s.kinds == "????????":
            continue
        off = -(k + 1) * 8
        if s.spill is not None and s.kinds == "rrrrrrrr":
            parts.append(f"fp{off}={_short(s.spill)}")
        else:
            parts.append(f"fp{off}={s.kinds}")
    prefix = f"frame{len(frames) - 1}: " if len(frames) > 1 else ""
    return prefix + " ".join(parts)


def _short(r: Reg) -> str:
    if r.type == "scalar":
        return r.var.describe() if r.var.is_const else f"scalar{r.var.describe()}"
    return r.describe()


class Log:
    def __init__(self, level: int):
        self.level = level
        self.lines: list[str] = []

    def trace(self, pc: int, insn: Insn, state: State) -> None:
        if self.level >= 2:
            self.lines.append(f"{pc}: {insn_text(pc, insn)} ; {regs_text(state)}")

    def text(self) -> str:
        return "".join(line + "\n" for line in self.lines)
