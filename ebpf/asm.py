"""Assembler for the conformance dialect of eBPF assembly.

The dialect is the one the ``bpf_conformance`` test files are written in (see the conformance
README for the full grammar): ``mov %r0, 1``, ``ldxw %r1, [%r2+8]``, ``jne %r1, 0x5, label``,
``lock fetch add32 [%r10-8], %r1``, ``lddw %r0, 0x1122334455667788``, labels as ``name:`` lines,
``#`` comments. Two passes: the first assigns slots to labels, the second encodes, so forward
references work. The word ``exit`` used as a jump target means the first ``exit`` instruction
unless a label of that name exists.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from . import opcodes as op
from .insn import Insn, decode


class AsmError(ValueError):
    """A source line the assembler cannot encode; ``line`` is 1-based."""

    def __init__(self, line: int, message: str):
        super().__init__(f"line {line}: {message}")
        self.line = line
        self.reason = message


_INT = r"0[xX][0-9a-fA-F]+|\d+"
_INT_RE = re.compile(rf"([+-]?)({_INT})")
_REG_RE = re.compile(r"%r(\d+)")
_MEM_RE = re.compile(rf"\[%r(\d+)(?:([+-])({_INT}))?\]")
_LABEL_RE = re.compile(r"([A-Za-z_.][A-Za-z0-9_.$]*):")
_NAME_RE = re.compile(r"[A-Za-z_.][A-Za-z0-9_.$]*")
# A memory operand may contain blanks (`[%r1 + 8]`), so it is kept whole before splitting on
# blanks and commas.
_TOKEN_RE = re.compile(r"\[[^\]]*\]|[^\s,]+")

_INT32_MIN, _INT32_MAX = -(1 << 31), (1 << 31) - 1
_INT16_MIN, _INT16_MAX = -(1 << 15), (1 << 15) - 1


@dataclass
class _Stmt:
    line: int
    mnemonic: str
    operands: list[str]
    pc: int = 0


class _Ctx:
    """What pass two needs to resolve a jump target: the labels and the current slot."""

    def __init__(self, labels: dict[str, int], first_exit: int | None):
        self.labels = labels
        self.first_exit = first_exit

    def target(self, stmt: _Stmt, tok: str, lo: int, hi: int) -> int:
        """A jump operand as a relative offset (next slot + offset = target)."""
        if _INT_RE.fullmatch(tok):
            value = _parse_int(tok, stmt.line, "jump offset")
        else:
            if tok in self.labels:
                slot = self.labels[tok]
            elif tok == "exit" and self.first_exit is not None:
                slot = self.first_exit
            elif _NAME_RE.fullmatch(tok):
                raise AsmError(stmt.line, f"undefined label '{tok}'")
            else:
                raise AsmError(stmt.line, f"invalid jump target '{tok}' (expected a label, +N or -N)")
            value = slot - (stmt.pc + 1)
        if not lo <= value <= hi:
            raise AsmError(stmt.line, f"jump offset {value} out of range [{lo}, {hi}]")
        return value


def _sign(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _parse_int(tok: str, line: int, what: str) -> int:
    m = _INT_RE.fullmatch(tok)
    if not m:
        raise AsmError(line, f"invalid {what} '{tok}'")
    sign, digits = m.groups()
    value = int(digits, 0) if digits[:2].lower() == "0x" else int(digits, 10)
    return -value if sign == "-" else value


def _imm32(tok: str, line: int) -> int:
    """A 32-bit immediate: decimal must fit int32; hex is the raw 32 bits (<= 0xffffffff)."""
    value = _parse_int(tok, line, "immediate")
    if "x" in tok.lower():
        if value > 0xFFFFFFFF or value < _INT32_MIN:
            raise AsmError(line, f"immediate '{tok}' does not fit in 32 bits")
        return _sign(value, 32)
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise AsmError(line, f"immediate '{tok}' out of int32 range")
    return value


def _imm64(tok: str, line: int) -> int:
    """An lddw constant as unsigned 64 bits; a leading '-' means two's complement."""
    value = _parse_int(tok, line, "64-bit immediate")
    if not -(1 << 63) <= value <= (1 << 64) - 1:
        raise AsmError(line, f"immediate '{tok}' does not fit in 64 bits")
    return value & ((1 << 64) - 1)


def _reg(tok: str, line: int) -> int:
    m = _REG_RE.fullmatch(tok)
    if not m:
        raise AsmError(line, f"expected a register (%r0-%r10), got '{tok}'")
    n = int(m.group(1))
    if n >= op.NUM_REGS:
        raise AsmError(line, f"invalid register '{tok}'")
    return n


def _mem(tok: str, line: int) -> tuple[int, int]:
    """``[%rN+off]`` -> (register, offset); decimal offsets are int16, hex ones raw 16 bits."""
    compact = tok.replace(" ", "").replace("\t", "")
    m = _MEM_RE.fullmatch(compact)
    if not m:
        if compact.startswith("[") and compact.endswith("]"):
            raise AsmError(line, f"invalid memory operand '{tok}'")
        raise AsmError(line, f"expected a memory operand like [%r1+8], got '{tok}'")
    reg = _reg(f"%r{m.group(1)}", line)
    sign, digits = m.group(2), m.group(3)
    if digits is None:
        return reg, 0
    value = int(digits, 0) if digits[:2].lower() == "0x" else int(digits, 10)
    if digits[:2].lower() == "0x" and sign == "+":
        if value > 0xFFFF:
            raise AsmError(line, f"offset '{sign}{digits}' does not fit in 16 bits")
        return reg, _sign(value, 16)
    value = -value if sign == "-" else value
    if not _INT16_MIN <= value <= _INT16_MAX:
        raise AsmError(line, f"offset '{sign}{digits}' out of int16 range")
    return reg, value


def _want(stmt: _Stmt, n: int, usage: str) -> list[str]:
    if len(stmt.operands) != n:
        got = len(stmt.operands)
        raise AsmError(stmt.line, f"invalid number of operands for {stmt.mnemonic}: expected {n}, got {got} ({usage})")
    return stmt.operands


# --- encoders: one per statement shape -------------------------------------------------------

_Encoder = Callable[[_Stmt, _Ctx], Insn]


def _alu(cls: int, code: int, off: int = 0) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        dst_tok, src_tok = _want(s, 2, f"{s.mnemonic} %rD, %rS|imm")
        dst = _reg(dst_tok, s.line)
        if src_tok.startswith("%"):
            return Insn(cls | code | op.BPF_X, dst, _reg(src_tok, s.line), off, 0)
        return Insn(cls | code | op.BPF_K, dst, 0, off, _imm32(src_tok, s.line))

    return enc


def _unary(opcode: int, off: int = 0, imm: int = 0) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        (dst_tok,) = _want(s, 1, f"{s.mnemonic} %rD")
        return Insn(opcode, _reg(dst_tok, s.line), 0, off, imm)

    return enc


def _movsx(opcode: int, bits: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        dst_tok, src_tok = _want(s, 2, f"{s.mnemonic} %rD, %rS")
        return Insn(opcode, _reg(dst_tok, s.line), _reg(src_tok, s.line), bits, 0)

    return enc


def _ja(s: _Stmt, c: _Ctx) -> Insn:
    (tok,) = _want(s, 1, "ja target")
    return Insn(op.JA, off=c.target(s, tok, _INT16_MIN, _INT16_MAX))


def _ja32(s: _Stmt, c: _Ctx) -> Insn:
    (tok,) = _want(s, 1, "ja32 target")
    return Insn(op.JA32, imm=c.target(s, tok, _INT32_MIN, _INT32_MAX))


def _jcc(cls: int, code: int) -> _Encoder:
    def enc(s: _Stmt, c: _Ctx) -> Insn:
        dst_tok, src_tok, tgt = _want(s, 3, f"{s.mnemonic} %rD, %rS|imm, target")
        dst = _reg(dst_tok, s.line)
        off = c.target(s, tgt, _INT16_MIN, _INT16_MAX)
        if src_tok.startswith("%"):
            return Insn(cls | code | op.BPF_X, dst, _reg(src_tok, s.line), off, 0)
        return Insn(cls | code | op.BPF_K, dst, 0, off, _imm32(src_tok, s.line))

    return enc


def _exit(s: _Stmt, _c: _Ctx) -> Insn:
    _want(s, 0, "exit")
    return Insn(op.EXIT)


def _call(s: _Stmt, c: _Ctx) -> Insn:
    ops = s.operands
    usage = "call N | call helper N | call %rN | call local label | call runtime N"
    kind = ops[0] if ops and ops[0] in ("helper", "local", "runtime") else None
    args = ops[1:] if kind else ops
    if len(args) != 1:
        raise AsmError(s.line, f"invalid number of operands for call ({usage})")
    arg = args[0]
    if kind == "local":
        return Insn(op.CALL, src=op.BPF_PSEUDO_CALL, imm=c.target(s, arg, _INT32_MIN, _INT32_MAX))
    if arg.startswith("%"):
        if kind == "runtime":
            raise AsmError(s.line, "call runtime takes a number, not a register")
        return Insn(op.CALLX, dst=_reg(arg, s.line))
    src = op.BPF_PSEUDO_KFUNC_CALL if kind == "runtime" else 0
    return Insn(op.CALL, src=src, imm=_imm32(arg, s.line))


def _ldx(opcode: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        dst_tok, mem_tok = _want(s, 2, f"{s.mnemonic} %rD, [%rS+off]")
        dst = _reg(dst_tok, s.line)
        src, off = _mem(mem_tok, s.line)
        return Insn(opcode, dst, src, off, 0)

    return enc


def _st(opcode: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        mem_tok, imm_tok = _want(s, 2, f"{s.mnemonic} [%rD+off], imm")
        dst, off = _mem(mem_tok, s.line)
        return Insn(opcode, dst, 0, off, _imm32(imm_tok, s.line))

    return enc


def _stx(opcode: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        mem_tok, src_tok = _want(s, 2, f"{s.mnemonic} [%rD+off], %rS")
        dst, off = _mem(mem_tok, s.line)
        return Insn(opcode, dst, _reg(src_tok, s.line), off, 0)

    return enc


_LOCK_OPS = {name: code for code, name in op.ATOMIC_OP_NAMES.items()}


def _lock(s: _Stmt, _c: _Ctx) -> Insn:
    ops = s.operands
    fetch = bool(ops) and ops[0] == "fetch"
    rest = ops[1:] if fetch else ops
    if len(rest) != 3:
        raise AsmError(s.line, "invalid number of operands for lock (lock [fetch] OP [%rD+off], %rS)")
    name, mem_tok, src_tok = rest
    base, wide = (name[:-2], False) if name.endswith("32") else (name, True)
    if base in _LOCK_OPS:
        imm = _LOCK_OPS[base] | (op.BPF_FETCH if fetch else 0)
    elif base in ("xchg", "cmpxchg"):
        if fetch:
            raise AsmError(s.line, f"'lock fetch {name}': {base} always fetches, write 'lock {name}'")
        imm = op.BPF_XCHG if base == "xchg" else op.BPF_CMPXCHG
    else:
        raise AsmError(s.line, f"invalid lock operation '{name}'")
    dst, off = _mem(mem_tok, s.line)
    size = op.BPF_DW if wide else op.BPF_W
    return Insn(op.BPF_STX | op.BPF_ATOMIC | size, dst, _reg(src_tok, s.line), off, imm)


def _lddw(s: _Stmt, _c: _Ctx) -> Insn:
    dst_tok, value_tok = _want(s, 2, "lddw %rD, imm64")
    return Insn(op.LDDW, _reg(dst_tok, s.line), 0, 0, _imm64(value_tok, s.line))


def _ldabs(opcode: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        (imm_tok,) = _want(s, 1, f"{s.mnemonic} imm")
        return Insn(opcode, imm=_imm32(imm_tok, s.line))

    return enc


def _ldind(opcode: int) -> _Encoder:
    def enc(s: _Stmt, _c: _Ctx) -> Insn:
        src_tok, imm_tok = _want(s, 2, f"{s.mnemonic} %rS, imm")
        return Insn(opcode, src=_reg(src_tok, s.line), imm=_imm32(imm_tok, s.line))

    return enc


def _build_table() -> dict[str, _Encoder]:
    t: dict[str, _Encoder] = {}
    for code, name in op.ALU_OP_NAMES.items():
        if code == op.BPF_NEG:
            continue
        t[name] = _alu(op.BPF_ALU64, code)
        t[name + "32"] = _alu(op.BPF_ALU, code)
    for name, code in (("sdiv", op.BPF_DIV), ("smod", op.BPF_MOD)):
        t[name] = _alu(op.BPF_ALU64, code, off=1)
        t[name + "32"] = _alu(op.BPF_ALU, code, off=1)
    t["neg"] = _unary(op.BPF_ALU64 | op.BPF_NEG)
    t["neg32"] = _unary(op.BPF_ALU | op.BPF_NEG)
    for a in (8, 16, 32):
        t[f"movsx{a}64"] = _movsx(op.BPF_ALU64 | op.BPF_MOV | op.BPF_X, a)
        if a != 32:
            t[f"movsx{a}32"] = _movsx(op.BPF_ALU | op.BPF_MOV | op.BPF_X, a)
    for n in (16, 32, 64):
        t[f"le{n}"] = _unary(op.BPF_ALU | op.BPF_END | op.BPF_TO_LE, imm=n)
        t[f"be{n}"] = _unary(op.BPF_ALU | op.BPF_END | op.BPF_TO_BE, imm=n)
        t[f"bswap{n}"] = t[f"swap{n}"] = _unary(op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE, imm=n)
    t["ja"] = _ja
    t["ja32"] = _ja32
    for code, name in op.JMP_OP_NAMES.items():
        t[name] = _jcc(op.BPF_JMP, code)
        t[name + "32"] = _jcc(op.BPF_JMP32, code)
    t["exit"] = _exit
    t["call"] = _call
    for size, suffix in op.SIZE_SUFFIX.items():
        t["ldx" + suffix] = _ldx(op.BPF_LDX | op.BPF_MEM | size)
        if size != op.BPF_DW:
            t["ldxs" + suffix] = _ldx(op.BPF_LDX | op.BPF_MEMSX | size)
        t["st" + suffix] = _st(op.BPF_ST | op.BPF_MEM | size)
        t["stx" + suffix] = _stx(op.BPF_STX | op.BPF_MEM | size)
        t["ldabs" + suffix] = _ldabs(op.BPF_LD | op.BPF_ABS | size)
        t["ldind" + suffix] = _ldind(op.BPF_LD | op.BPF_IND | size)
    t["lock"] = _lock
    t["lddw"] = _lddw
    return t


_TABLE = _build_table()
MNEMONICS = frozenset(_TABLE)


def _strip_comment(text: str) -> str:
    return text.split("#", 1)[0].strip()


def assemble_lines(lines: Iterable[tuple[int, str]]) -> bytes:
    """Assemble (line number, source line) pairs; the numbers are used in error messages."""
    labels: dict[str, int] = {}
    stmts: list[_Stmt] = []
    first_exit: int | None = None
    pc = 0
    for lineno, raw in lines:
        text = " ".join(_strip_comment(raw).split())  # tabs and runs of blanks separate alike
        if not text:
            continue
        m = _LABEL_RE.fullmatch(text)
        if m:
            name = m.group(1)
            if name in labels:
                raise AsmError(lineno, f"label '{name}' defined twice")
            labels[name] = pc
            continue
        mnemonic, _, rest = text.partition(" ")
        if mnemonic not in _TABLE:
            raise AsmError(lineno, f"invalid mnemonic '{mnemonic}'")
        stmt = _Stmt(lineno, mnemonic, _TOKEN_RE.findall(rest), pc)
        stmts.append(stmt)
        if mnemonic == "exit" and first_exit is None:
            first_exit = pc
        pc += 2 if mnemonic == "lddw" else 1
    ctx = _Ctx(labels, first_exit)
    return b"".join(_TABLE[s.mnemonic](s, ctx).encode() for s in stmts)


def assemble(text: str, *, first_line: int = 1) -> bytes:
    """Assemble conformance-dialect source into little-endian instruction bytes.

    ``first_line`` is the line number of the text's first line, so that errors for a section
    cut out of a larger file point at the right line. Raises :class:`AsmError`.
    """
    return assemble_lines(enumerate(text.splitlines(), start=first_line))


def assemble_insn(text: str) -> Insn:
    """Encode one instruction line (no labels, so jump targets must be numeric)."""
    insns = decode(assemble(text))
    if len(insns) != 1:
        raise AsmError(1, f"expected exactly one instruction, got {len(insns)}")
    return insns[0]
