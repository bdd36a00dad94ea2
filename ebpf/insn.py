"""One eBPF instruction: decode from and encode to the 8-byte wire format.

Program counters count 8-byte *slots*. ``lddw`` is the only instruction that takes two slots;
decoding folds both into one :class:`Insn` whose ``imm`` is the full 64-bit constant, and
records the raw fields of its second slot so that encoding gives the same bytes back.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from . import opcodes as op

_SLOT = struct.Struct("<BBhi")

# numpy view of a program: one record per 8-byte slot, fields as on the wire.
SLOT_DTYPE = np.dtype([("opcode", "u1"), ("regs", "u1"), ("off", "<i2"), ("imm", "<i4")])


class DecodeError(ValueError):
    """The bytes are not a well-formed instruction stream (bad length, truncated lddw)."""

    def __init__(self, pc: int, message: str):
        super().__init__(f"pc {pc}: {message}")
        self.pc = pc
        self.reason = message


@dataclass(frozen=True)
class Insn:
    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0  # signed 32-bit; for lddw the unsigned 64-bit constant
    # lddw only: the raw fields of the second slot (opcode, regs, off) -- zero when well formed.
    next_opcode: int = 0
    next_regs: int = 0
    next_off: int = 0

    @property
    def is_wide(self) -> bool:
        return self.opcode == op.LDDW

    @property
    def slots(self) -> int:
        return 2 if self.is_wide else 1

    @property
    def cls(self) -> int:
        return self.opcode & 0x07

    def encode(self) -> bytes:
        if self.is_wide:
            lo = self.imm & 0xFFFFFFFF
            hi = (self.imm >> 32) & 0xFFFFFFFF
            return _SLOT.pack(self.opcode, (self.src << 4) | self.dst, self.off, _s32(lo)) + _SLOT.pack(
                self.next_opcode, self.next_regs, self.next_off, _s32(hi)
            )
        return _SLOT.pack(self.opcode, ((self.src & 0xF) << 4) | (self.dst & 0xF), self.off, _s32(self.imm))


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def encode(insns: list[Insn]) -> bytes:
    return b"".join(i.encode() for i in insns)


def decode(code: bytes) -> list[Insn]:
    """Decode a byte string into instructions (lddw folded). Raises :class:`DecodeError`."""
    if len(code) % op.INSN_SIZE:
        raise DecodeError(len(code) // op.INSN_SIZE, f"program length {len(code)} is not a multiple of 8 bytes")
    out: list[Insn] = []
    n = len(code) // op.INSN_SIZE
    pc = 0
    while pc < n:
        opcode, regs, off, imm = _SLOT.unpack_from(code, pc * 8)
        if opcode == op.LDDW:
            if pc + 1 >= n:
                raise DecodeError(pc, "lddw is truncated: its second slot is missing")
            nop, nregs, noff, nimm = _SLOT.unpack_from(code, (pc + 1) * 8)
            value = (imm & 0xFFFFFFFF) | ((nimm & 0xFFFFFFFF) << 32)
            out.append(Insn(opcode, regs & 0xF, regs >> 4, off, value, nop, nregs, noff))
            pc += 2
        else:
            out.append(Insn(opcode, regs & 0xF, regs >> 4, off, imm))
            pc += 1
    return out


def slots(code: bytes) -> np.ndarray:
    """A read-only structured view of the raw slots (fields as on the wire)."""
    if len(code) % op.INSN_SIZE:
        raise DecodeError(len(code) // op.INSN_SIZE, f"program length {len(code)} is not a multiple of 8 bytes")
    return np.frombuffer(code, dtype=SLOT_DTYPE)


def pcs(insns: list[Insn]) -> list[int]:
    """The slot index of each decoded instruction."""
    out, pc = [], 0
    for i in insns:
        out.append(pc)
        pc += i.slots
    return out
