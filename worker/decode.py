"""Decode a :class:`~bpfmc.ebpf.program.Program` once into the struct-of-arrays form the
interpreter runs, with the metering precomputed.

Metering (DESIGN: "Metering is cheap only when done per basic block"): the interpreter charges
instructions and cycles only where control arrives -- at entry, at a jump target, after a
not-taken branch, after a call returns -- and each charge covers the whole straight-line *run*
from that pc to the next control-transfer instruction. ``run_len[pc]`` and ``run_cyc[pc]`` hold
those totals. A run that ends early (a fault) gives back what it did not execute, so counts stay
exact without a per-instruction counter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.program import Program

from .model import HardwareModel

# Opcode of the sentinel slot appended after the program: reaching it means the program fell off
# its end (possible only when structural validation was skipped). 0xff is not a valid opcode.
OP_FELL_OFF = 0xFF
# movsx shares its opcode with mov (off = source width); decoding gives it opcodes of its own
# from the unused ALU space so the common mov stays a single test.
OP_MOVSX64 = 0xEF
OP_MOVSX32 = 0xEC
# Opcode given to the second slot of lddw; never executed.
OP_LDDW_TAIL = 0x00


def _is_terminator(code: int, src: int) -> bool:
    cls = code & 0x07
    if cls not in (op.BPF_JMP, op.BPF_JMP32):
        return code == OP_FELL_OFF
    if code == op.CALL:
        return src == op.BPF_PSEUDO_CALL  # helper calls fall through; local calls transfer
    return True  # exits, jumps, callx


@dataclass
class DecodedProgram:
    """Columns of one program; index = slot pc. A sentinel slot follows the last instruction."""

    name: str
    num_slots: int
    op: np.ndarray  # uint8 raw opcode
    dst: np.ndarray  # uint8
    src: np.ndarray  # uint8
    off: np.ndarray  # int64
    imm: np.ndarray  # uint64: sign-extended imm, or lddw's 64-bit constant
    tgt: np.ndarray  # uint64: absolute target of jumps and local calls
    run_len: np.ndarray  # int64: instructions from pc to the end of its run
    run_cyc: np.ndarray  # int64: cycles from pc to the end of its run (branches not taken)
    cyc: np.ndarray  # int64: cycles of the instruction itself
    taken_extra: int

    def columns(self) -> tuple:
        return (self.op, self.dst, self.src, self.off, self.imm, self.tgt, self.run_len, self.run_cyc, self.cyc)


def decode_program(program: Program, model: HardwareModel) -> DecodedProgram:
    insns = program.insns()
    n = program.num_slots
    size = n + 1
    col_op = np.zeros(size, np.uint8)
    col_dst = np.zeros(size, np.uint8)
    col_src = np.zeros(size, np.uint8)
    col_off = np.zeros(size, np.int64)
    col_imm = np.zeros(size, np.uint64)
    col_tgt = np.zeros(size, np.int64)
    col_cyc = np.zeros(size, np.int64)
    term = np.zeros(size, np.bool_)
    next_pc = np.arange(1, size + 1, dtype=np.int64)
    is_tail = np.zeros(size, np.bool_)
    pc = 0
    for insn in insns:
        col_op[pc] = insn.opcode
        if insn.opcode in (0xBF, 0xBC) and insn.off != 0:
            col_op[pc] = OP_MOVSX64 if insn.opcode == 0xBF else OP_MOVSX32
        col_dst[pc] = insn.dst
        col_src[pc] = insn.src
        col_off[pc] = insn.off
        col_imm[pc] = np.uint64(insn.imm & 0xFFFFFFFFFFFFFFFF)
        col_cyc[pc] = model.insn_cycles(insn)
        term[pc] = _is_terminator(insn.opcode, insn.src)
        cls = insn.opcode & 0x07
        if insn.opcode == op.JA32:
            col_tgt[pc] = pc + 1 + insn.imm
        elif insn.opcode == op.CALL and insn.src == op.BPF_PSEUDO_CALL:
            col_tgt[pc] = pc + 1 + insn.imm
        elif cls in (op.BPF_JMP, op.BPF_JMP32):
            col_tgt[pc] = pc + 1 + insn.off
        if insn.is_wide:
            col_op[pc + 1] = OP_LDDW_TAIL
            is_tail[pc + 1] = True
            next_pc[pc] = pc + 2
            pc += 2
        else:
            pc += 1
    col_op[n] = OP_FELL_OFF
    term[n] = True
    # Targets outside the program (unvalidated input) are sent to the sentinel: a clean fault.
    bad = (col_tgt < 0) | (col_tgt > n)
    col_tgt[bad] = n
    col_tgt = col_tgt.astype(np.uint64)  # the interpreter's pc is unsigned

    run_len = np.zeros(size, np.int64)
    run_cyc = np.zeros(size, np.int64)
    run_len[n], run_cyc[n] = 1, 0
    for p in range(n - 1, -1, -1):
        if is_tail[p]:
            continue  # second slot of lddw: never a pc of its own
        if term[p]:
            run_len[p], run_cyc[p] = 1, col_cyc[p]
        else:
            nxt = min(next_pc[p], n)
            run_len[p] = 1 + run_len[nxt]
            run_cyc[p] = col_cyc[p] + run_cyc[nxt]
    return DecodedProgram(
        name=program.name, num_slots=n, op=col_op, dst=col_dst, src=col_src, off=col_off, imm=col_imm,
        tgt=col_tgt, run_len=run_len, run_cyc=run_cyc, cyc=col_cyc, taken_extra=model.taken_extra,
    )

