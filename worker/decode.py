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

# ---- Internal opcodes --------------------------------------------------------------------------
# The interpreter dispatches on a dense renumbering of the opcodes (``code``), not on the raw
# byte: a chain of ``o == I_*`` tests over a dense range becomes jump tables, and what the raw
# byte would leave to run time (immediate or register operand, call kind, access size) is decided
# here. Rare instructions share a few generic handlers that look at the raw opcode again.
# LLVM folds only the first 42 tests of the chain (in the interpreter's source order, which
# follows this numbering) into one switch; the rest become a second switch behind it, so an
# instruction there pays a compare and a second indirect jump. The first 42 tests (0-41) are
# therefore what compiled code runs most: ALU64, loads, the common conditional jumps and the
# superinstructions.
# ALU64 with an immediate (_K) or register (_X) operand.
I_ADD64_K, I_ADD64_X, I_SUB64_K, I_SUB64_X, I_MUL64_K, I_MUL64_X = 0, 1, 2, 3, 4, 5
I_OR64_K, I_OR64_X, I_AND64_K, I_AND64_X, I_XOR64_K, I_XOR64_X = 6, 7, 8, 9, 10, 11
I_LSH64_K, I_LSH64_X, I_RSH64_K, I_RSH64_X, I_ARSH64_K, I_ARSH64_X = 12, 13, 14, 15, 16, 17
I_MOV64_K, I_MOV64_X = 18, 19
I_LDXB, I_LDXH, I_LDXW, I_LDXDW = 20, 21, 22, 23
# Superinstructions for a conditional jump over an unconditional one (``if c goto +1; goto L``,
# how LLVM often closes a loop): one dispatch goes to pc+2 when c holds, else straight to L.
I_JEQ_K_JA, I_JNE_K_JA = 24, 25
I_JEQ_K, I_JNE_K, I_JGT_X = 26, 27, 28
# Superinstructions ``mov dst, imm`` followed by a conditional jump (clang sets the return value
# before each early-exit test, or loads a bound to compare with): both halves run as decoded.
I_MOVK_JEQ_K, I_MOVK_JNE_K, I_MOVK_JGT_X = 29, 30, 31
# Superinstructions: ``mov dst, src`` followed by an ALU64 operation on the same dst, run as one
# dispatch computing ``dst = src OP operand``. The second slot keeps its own decoding, so a jump
# may still land on it. The common ones first (inside the 42), the others behind.
I_MOVADD_K, I_MOVADD_X, I_MOVSUB_X, I_MOVMUL_X, I_MOVAND_K = 32, 33, 34, 35, 36
I_MOVOR_X, I_MOVXOR_X, I_MOVLSH_K, I_MOVRSH_K, I_MOVARSH_K = 37, 38, 39, 40, 41
I_MOVSUB_K, I_MOVMUL_K, I_MOVOR_K, I_MOVAND_X, I_MOVXOR_K = 42, 43, 44, 45, 46
I_MOVLSH_X, I_MOVRSH_X, I_MOVARSH_X = 47, 48, 49
I_MOV32_K, I_MOV32_X = 50, 51
I_ALU32 = 52  # every other ALU32 operation (raw opcode decides)
I_NEG64, I_DIVMOD64, I_MOVSX64, I_MOVSX32, I_ENDIAN = 53, 54, 55, 56, 57
# Memory.
I_LDXS = 58  # sign-extending loads, all sizes
I_STB, I_STH, I_STW, I_STDW, I_STXB, I_STXH, I_STXW, I_STXDW = 59, 60, 61, 62, 63, 64, 65, 66
I_LDDW, I_ATOMIC = 67, 68
# Control flow: 64-bit conditional jumps get handlers of their own; JMP32 ones share one.
I_JA, I_JMP32 = 69, 70  # JMP32: 32-bit conditional jumps and invalid jump opcodes
I_JEQ_X, I_JNE_X, I_JGT_K, I_JGE_K, I_JGE_X, I_JLT_K, I_JLT_X = 71, 72, 73, 74, 75, 76, 77
I_JLE_K, I_JLE_X, I_JSET_K, I_JSET_X = 78, 79, 80, 81
I_JSGT_K, I_JSGT_X, I_JSGE_K, I_JSGE_X, I_JSLT_K, I_JSLT_X, I_JSLE_K, I_JSLE_X = 82, 83, 84, 85, 86, 87, 88, 89
I_CALL, I_CALL_LOCAL, I_CALLX, I_EXIT = 90, 91, 92, 93
I_BAD = 94  # invalid opcodes and the sentinel slot after the program
I_LDPKT = 95  # legacy packet loads, ld_abs / ld_ind (socket filters, tc)
_OVER_JA = {I_JEQ_K: I_JEQ_K_JA, I_JNE_K: I_JNE_K_JA}
_AFTER_MOVK = {I_JEQ_K: I_MOVK_JEQ_K, I_JNE_K: I_MOVK_JNE_K, I_JGT_X: I_MOVK_JGT_X}


def _k_x(cls: int, operation: int, k: int, x: int) -> dict[int, int]:
    return {cls | operation | op.BPF_K: k, cls | operation | op.BPF_X: x}


# Raw opcode -> internal opcode for everything with a handler of its own (_X = _K + 1).
_INTERNAL: dict[int, int] = {}
for _operation, _k in ((op.BPF_ADD, I_ADD64_K), (op.BPF_SUB, I_SUB64_K), (op.BPF_MUL, I_MUL64_K),
                       (op.BPF_OR, I_OR64_K), (op.BPF_AND, I_AND64_K), (op.BPF_XOR, I_XOR64_K),
                       (op.BPF_LSH, I_LSH64_K), (op.BPF_RSH, I_RSH64_K), (op.BPF_ARSH, I_ARSH64_K),
                       (op.BPF_MOV, I_MOV64_K)):
    _INTERNAL.update(_k_x(op.BPF_ALU64, _operation, _k, _k + 1))
for _operation, _k, _x in ((op.BPF_JEQ, I_JEQ_K, I_JEQ_X), (op.BPF_JNE, I_JNE_K, I_JNE_X),
                           (op.BPF_JGT, I_JGT_K, I_JGT_X), (op.BPF_JGE, I_JGE_K, I_JGE_X),
                           (op.BPF_JLT, I_JLT_K, I_JLT_X), (op.BPF_JLE, I_JLE_K, I_JLE_X),
                           (op.BPF_JSET, I_JSET_K, I_JSET_X), (op.BPF_JSGT, I_JSGT_K, I_JSGT_X),
                           (op.BPF_JSGE, I_JSGE_K, I_JSGE_X), (op.BPF_JSLT, I_JSLT_K, I_JSLT_X),
                           (op.BPF_JSLE, I_JSLE_K, I_JSLE_X)):
    _INTERNAL.update(_k_x(op.BPF_JMP, _operation, _k, _x))
_INTERNAL.update(_k_x(op.BPF_ALU, op.BPF_MOV, I_MOV32_K, I_MOV32_X))
_INTERNAL.update({
    0x87: I_NEG64, 0x37: I_DIVMOD64, 0x3F: I_DIVMOD64, 0x97: I_DIVMOD64, 0x9F: I_DIVMOD64,
    OP_MOVSX64: I_MOVSX64, OP_MOVSX32: I_MOVSX32, 0xD4: I_ENDIAN, 0xDC: I_ENDIAN, 0xD7: I_ENDIAN,
    0x71: I_LDXB, 0x69: I_LDXH, 0x61: I_LDXW, 0x79: I_LDXDW, 0x91: I_LDXS, 0x89: I_LDXS, 0x81: I_LDXS,
    0x72: I_STB, 0x6A: I_STH, 0x62: I_STW, 0x7A: I_STDW, 0x73: I_STXB, 0x6B: I_STXH, 0x63: I_STXW, 0x7B: I_STXDW,
    op.LDDW: I_LDDW, 0xDB: I_ATOMIC, 0xC3: I_ATOMIC, op.JA: I_JA, op.JA32: I_JA,
    op.CALLX: I_CALLX, op.EXIT: I_EXIT,
    0x20: I_LDPKT, 0x28: I_LDPKT, 0x30: I_LDPKT, 0x40: I_LDPKT, 0x48: I_LDPKT, 0x50: I_LDPKT,
})
# The ALU64 operations that fuse with a preceding ``mov dst, src``, and which of those take a
# register operand.
_FUSED = {I_ADD64_K: I_MOVADD_K, I_ADD64_X: I_MOVADD_X, I_SUB64_K: I_MOVSUB_K, I_SUB64_X: I_MOVSUB_X,
          I_MUL64_K: I_MOVMUL_K, I_MUL64_X: I_MOVMUL_X, I_OR64_K: I_MOVOR_K, I_OR64_X: I_MOVOR_X,
          I_AND64_K: I_MOVAND_K, I_AND64_X: I_MOVAND_X, I_XOR64_K: I_MOVXOR_K, I_XOR64_X: I_MOVXOR_X,
          I_LSH64_K: I_MOVLSH_K, I_LSH64_X: I_MOVLSH_X, I_RSH64_K: I_MOVRSH_K, I_RSH64_X: I_MOVRSH_X,
          I_ARSH64_K: I_MOVARSH_K, I_ARSH64_X: I_MOVARSH_X}
_FUSED_X = {I_ADD64_X, I_SUB64_X, I_MUL64_X, I_OR64_X, I_AND64_X, I_XOR64_X, I_LSH64_X, I_RSH64_X, I_ARSH64_X}


def _internal(code: int, src: int) -> int:
    if code == op.CALL:
        return I_CALL if src == 0 else I_CALL_LOCAL
    if code in _INTERNAL:
        return _INTERNAL[code]
    cls = code & 0x07
    if cls == op.BPF_ALU:
        return I_ALU32  # checks the operation itself (invalid ones fault there)
    if cls == op.BPF_JMP32 or cls == op.BPF_JMP:
        return I_JMP32  # checks the operation itself (invalid ones fault there)
    return I_BAD


# Static register cache. The interpreter keeps the value of the register written last in a host
# register (``cv``) besides writing it to the register array. Which register that is, is a fact
# of the program text wherever control can arrive only from the previous instruction, so decode
# works it out: a read of that register gets index ``CACHED`` and the interpreter takes ``cv``
# instead of waiting for the store it has just made to be forwarded back from memory. ``CACHED``
# is one slot past the sixteen a 4-bit register field can name: never written, so loading it
# (the interpreter loads unconditionally, then selects) never waits on a recent store.
CACHED = 16
REG_SLOTS = CACHED + 1  # length of the interpreter's register array
_NONE = -1  # no register known to be in the cache


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
    code: np.ndarray  # uint8 internal opcode (I_*)
    op: np.ndarray  # uint8 raw opcode
    dst: np.ndarray  # uint8: destination register (written)
    src: np.ndarray  # uint8: source register
    rd: np.ndarray  # uint8: index to read the destination operand from (dst or CACHED)
    rs: np.ndarray  # uint8: index to read the source operand from (src or CACHED)
    off: np.ndarray  # int64
    imm: np.ndarray  # uint64: sign-extended imm, or lddw's 64-bit constant
    tgt: np.ndarray  # uint64: absolute target of jumps and local calls
    run_len: np.ndarray  # int64: instructions from pc to the end of its run
    run_cyc: np.ndarray  # int64: cycles from pc to the end of its run (branches not taken)
    cyc: np.ndarray  # int64: cycles of the instruction itself
    taken_extra: int
    # False when no instruction of the image can change the event's bytes (see _may_write_event):
    # the engine then need not compare the packet with the input after each run.
    event_writes: bool = True

    def columns(self) -> tuple:
        word = (self.code.astype(np.uint32) | self.dst.astype(np.uint32) << 8
                | self.rd.astype(np.uint32) << 16 | self.rs.astype(np.uint32) << 24)
        return (word, self.op, self.src, self.off, self.imm, self.tgt, self.run_len, self.run_cyc, self.cyc,
                np.int64(self.event_writes))


def decode_program(program: Program, model: HardwareModel, entries: tuple[int, ...] = ()) -> DecodedProgram:
    """Decode ``program``; ``entries`` are further pcs where control may arrive from outside
    the program text (other programs' starts in a linked image, callbacks, tail-call targets)."""
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
    col_code = np.array([_internal(int(c), int(r)) for c, r in zip(col_op, col_src, strict=True)], np.uint8)
    col_code[is_tail] = I_BAD
    col_rd, col_rs = _cache_reads(col_code, col_op, col_dst, col_src, col_imm, col_tgt, is_tail, term, n, entries)
    return DecodedProgram(
        name=program.name, num_slots=n, code=col_code, op=col_op, dst=col_dst, src=col_src, rd=col_rd, rs=col_rs,
        off=col_off, imm=col_imm,
        tgt=col_tgt, run_len=run_len, run_cyc=run_cyc, cyc=col_cyc, taken_extra=model.taken_extra,
        event_writes=_may_write_event(col_op, col_dst, col_src, col_imm, is_tail, n),
    )



def _writes_cached(code: int) -> bool:
    """Whether the instruction writes its dst through the cache (and only that register)."""
    cls = code & 0x07
    if cls in (op.BPF_ALU, op.BPF_ALU64, op.BPF_LDX):
        return True
    return code == op.LDDW or code in (OP_MOVSX64, OP_MOVSX32)


def _read_index(reg: int, cached: int) -> int:
    return CACHED if reg == cached else reg


def _cache_reads(col_code, col_op, col_dst, col_src, col_imm, col_tgt, is_tail, term, n, entries=()):
    """Read-index columns: ``CACHED`` where the operand's register is the one in the cache.
    Also turns ``mov``+ALU64 pairs into superinstructions (``col_code``/``col_imm`` in place).

    The cache is known to hold register R at pc when pc can be reached only by falling through
    from the previous instruction, and that instruction wrote R, or left the cache alone (stores,
    not-taken conditional jumps) while it held R. Wherever else control may arrive -- pc 0, jump
    and call targets, the instruction after any call (returns land there) -- nothing is known.
    """
    landing = np.zeros(n + 1, np.bool_)
    landing[0] = True
    for e in entries:
        landing[e] = True
    for p in range(n):
        if is_tail[p]:
            continue
        code = int(col_op[p])
        cls = code & 0x07
        if cls in (op.BPF_JMP, op.BPF_JMP32) and code != op.EXIT:
            if code not in (op.CALL, op.CALLX) or int(col_src[p]) == op.BPF_PSEUDO_CALL:
                landing[int(col_tgt[p])] = True
            if code in (op.CALL, op.CALLX):
                landing[p + 1] = True
    col_rd = col_dst.copy()
    col_rs = col_src.copy()
    cached = _NONE
    for p in range(n):
        if is_tail[p]:
            continue
        if landing[p]:
            cached = _NONE
        code = int(col_op[p])
        dst, src = int(col_dst[p]), int(col_src[p])
        col_rd[p] = _read_index(dst, cached)
        col_rs[p] = _read_index(src, cached)
        nxt = int(col_code[p + 1])
        if col_code[p] == I_MOV64_X and nxt in _FUSED and col_dst[p + 1] == dst and not is_tail[p + 1]:
            # Superinstruction dst = src OP operand: every read happens before the one write,
            # so all read indices are those of the cache state at p.
            col_code[p] = _FUSED[nxt]
            col_rd[p] = _read_index(src, cached)
            if nxt in _FUSED_X:  # register operand; if it names dst, it means the mov's source
                operand = int(col_src[p + 1])
                col_rs[p] = col_rd[p] if operand == dst else _read_index(operand, cached)
            col_imm[p] = col_imm[p + 1]
        if int(col_code[p]) in _OVER_JA and int(col_tgt[p]) == p + 2 and col_code[p + 1] == I_JA:
            col_code[p] = _OVER_JA[int(col_code[p])]
        if col_code[p] == I_MOV64_K and nxt in _AFTER_MOVK and not is_tail[p + 1]:
            # The jump at p+1 is read before this loop reaches it, so it may still become a
            # jump over a ja there; run plainly by this pair, it means the same.
            col_code[p] = _AFTER_MOVK[nxt]
        cls = code & 0x07
        if _writes_cached(code):
            cached = int(col_dst[p])
        elif cls in (op.BPF_ST, op.BPF_STX) and code & 0xE0 != op.BPF_ATOMIC:
            pass  # memory only
        elif cls in (op.BPF_JMP, op.BPF_JMP32) and not term[p]:
            cached = _NONE  # helper call: clobbers r0-r5 behind the cache's back
        elif cls in (op.BPF_JMP, op.BPF_JMP32) and code not in (op.JA, op.JA32, op.EXIT, op.CALL, op.CALLX):
            pass  # conditional jump: falls through with the cache as it was
        else:
            cached = _NONE  # atomics, exits, unconditional transfers, anything unusual
    return col_rd, col_rs


# Helpers that write nowhere a program could have pointed them at the event's bytes (they read
# their pointer arguments, or write maps, the context or the log). Any other helper might.
_HELPERS_NOT_WRITING_EVENT = frozenset({
    1, 2, 3, 5, 6, 7, 8, 12, 14, 15, 23, 25, 28, 34, 42, 51, 87, 118, 125, 130, 131, 132, 133, 134, 160, 181, 195,
})


def _may_write_event(col_op, col_dst, col_src, col_imm, is_tail, n) -> bool:
    """Whether any instruction of the image might change the packet or raw input: a store or
    atomic not based on r10 (r10 addresses the stack only, and programs cannot write it), a
    helper outside the list above, or ``callx``. Tail calls and callbacks stay inside the image,
    which is scanned whole."""
    for p in range(n):
        if is_tail[p]:
            continue
        code = int(col_op[p])
        cls = code & 0x07
        if cls in (op.BPF_ST, op.BPF_STX) and int(col_dst[p]) != 10:
            return True
        # Writes to r10 itself (refused by validation, but decode does not rely on it): a
        # store based on r10 could then reach anything.
        if cls in (op.BPF_ALU, op.BPF_ALU64, op.BPF_LDX, op.BPF_LD) and int(col_dst[p]) == 10:
            return True
        if cls == op.BPF_STX and code & 0xE0 == op.BPF_ATOMIC and int(col_src[p]) == 10:
            return True
        if code == op.CALLX:
            return True
        if code == op.CALL and int(col_src[p]) == 0 and int(col_imm[p]) not in _HELPERS_NOT_WRITING_EVENT:
            return True
    return False
