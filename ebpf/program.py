"""The ``Program`` value: the instruction bytes of one eBPF function plus what is known about it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import insn as _insn
from .insn import Insn

# Program types the engine knows how to present an event to (see DESIGN "Contracts").
PROGRAM_TYPES = ("raw", "xdp", "sched_cls", "socket_filter", "seccomp")
TYPE_ALIASES = {"tc": "sched_cls", "socket": "socket_filter", "classifier": "sched_cls"}


def canonical_type(name: str) -> str:
    name = TYPE_ALIASES.get(name, name)
    if name not in PROGRAM_TYPES:
        raise ValueError(f"unknown program type {name!r} (known: {', '.join(PROGRAM_TYPES)}, tc)")
    return name


@dataclass(frozen=True)
class Program:
    """Immutable program: raw little-endian 8-byte slots, a name and a program type."""

    code: bytes
    name: str = "prog"
    prog_type: str = "raw"
    meta: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prog_type", canonical_type(self.prog_type))
        if len(self.code) % 8:
            n = len(self.code)
            raise _insn.DecodeError(n // 8, f"program length {n} is not a multiple of 8 bytes")

    @classmethod
    def from_insns(cls, insns: list[Insn], **kw) -> Program:
        return cls(_insn.encode(insns), **kw)

    @property
    def num_slots(self) -> int:
        return len(self.code) // 8

    def insns(self) -> list[Insn]:
        return _insn.decode(self.code)

    def slots(self) -> np.ndarray:
        return _insn.slots(self.code)
