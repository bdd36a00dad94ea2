"""Disassembler: instruction bytes to text, in the conformance dialect or in llvm-objdump's style.

``conformance`` output is meant to be assembled again: every line is re-encoded as it is
produced and compared with the original bytes, so ``assemble(disassemble(b)) == b`` holds for
anything this function returns. Jump targets are written as relative numbers (``+3``), which
also expresses targets that a label could not (outside the program, inside an ``lddw``).

``llvm`` output is for reading and imitates ``llvm-objdump-19 -d`` line by line (see
:mod:`bpfmc.ebpf.llvm_style`).
"""

from __future__ import annotations

from . import opcodes as op
from .asm import AsmError, assemble_insn
from .insn import DecodeError, Insn, decode, pcs
from .llvm_style import render_llvm


class DisasmError(ValueError):
    """Bytes that cannot be written in the requested style."""

    def __init__(self, pc: int, reason: str):
        super().__init__(f"pc {pc}: {reason}")
        self.pc = pc
        self.reason = reason


STYLES = ("conformance", "llvm")

_END_NAMES = {
    op.BPF_ALU | op.BPF_END | op.BPF_TO_LE: "le",
    op.BPF_ALU | op.BPF_END | op.BPF_TO_BE: "be",
    op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE: "bswap",
}
_ATOMIC_NAMES = {op.BPF_XCHG: "xchg", op.BPF_CMPXCHG: "cmpxchg"}


def _reg(n: int) -> str:
    return f"%r{n}"


def _imm(v: int) -> str:
    # Small values read best in decimal; large ones are usually masks or addresses.
    return str(v) if -0x1000 < v < 0x1000 else f"0x{v & 0xFFFFFFFF:x}"


def _mem(reg: int, off: int) -> str:
    return f"[{_reg(reg)}{off:+d}]" if off else f"[{_reg(reg)}]"


def _rel(v: int) -> str:
    return f"{v:+d}"


def conformance_line(insn: Insn) -> str:
    """One instruction in the conformance dialect, without checking that it round-trips."""
    code = insn.opcode
    cls = code & 0x07
    if insn.is_wide:
        return f"lddw {_reg(insn.dst)}, 0x{insn.imm:x}"
    if cls in (op.BPF_ALU, op.BPF_ALU64):
        return _alu_line(insn)
    if cls in (op.BPF_JMP, op.BPF_JMP32):
        return _jmp_line(insn)
    size = code & 0x18
    sfx = op.SIZE_SUFFIX[size]
    mode = code & 0xE0
    if cls == op.BPF_LDX and mode in (op.BPF_MEM, op.BPF_MEMSX):
        name = ("ldx" if mode == op.BPF_MEM else "ldxs") + sfx
        return f"{name} {_reg(insn.dst)}, {_mem(insn.src, insn.off)}"
    if cls == op.BPF_ST and mode == op.BPF_MEM:
        return f"st{sfx} {_mem(insn.dst, insn.off)}, {_imm(insn.imm)}"
    if cls == op.BPF_STX and mode == op.BPF_MEM:
        return f"stx{sfx} {_mem(insn.dst, insn.off)}, {_reg(insn.src)}"
    if cls == op.BPF_STX and mode == op.BPF_ATOMIC:
        width = "32" if size == op.BPF_W else ""
        operands = f"{_mem(insn.dst, insn.off)}, {_reg(insn.src)}"
        if insn.imm in (op.BPF_XCHG, op.BPF_CMPXCHG):
            return f"lock {_ATOMIC_NAMES[insn.imm]}{width} {operands}"
        if insn.imm & ~op.BPF_FETCH in op.ATOMIC_OP_NAMES:
            fetch = "fetch " if insn.imm & op.BPF_FETCH else ""
            return f"lock {fetch}{op.ATOMIC_OP_NAMES[insn.imm & ~op.BPF_FETCH]}{width} {operands}"
        return f"<unknown atomic operation 0x{insn.imm & 0xFFFFFFFF:x}>"
    if cls == op.BPF_LD and mode == op.BPF_ABS:
        return f"ldabs{sfx} {_imm(insn.imm)}"
    if cls == op.BPF_LD and mode == op.BPF_IND:
        return f"ldind{sfx} {_reg(insn.src)}, {_imm(insn.imm)}"
    return f"<unknown opcode 0x{code:02x}>"


def _alu_line(insn: Insn) -> str:
    code = insn.opcode
    w = "32" if code & 0x07 == op.BPF_ALU else ""
    alu_op = code & 0xF0
    if code in _END_NAMES:
        return f"{_END_NAMES[code]}{insn.imm} {_reg(insn.dst)}"
    if alu_op == op.BPF_NEG:
        return f"neg{w} {_reg(insn.dst)}"
    name = op.ALU_OP_NAMES.get(alu_op)
    if name is None:
        return f"<unknown opcode 0x{code:02x}>"
    if alu_op in (op.BPF_DIV, op.BPF_MOD) and insn.off == 1:
        name = "s" + name
    if code & op.BPF_X:
        if alu_op == op.BPF_MOV and insn.off:
            return f"movsx{insn.off}{w or '64'} {_reg(insn.dst)}, {_reg(insn.src)}"
        return f"{name}{w} {_reg(insn.dst)}, {_reg(insn.src)}"
    return f"{name}{w} {_reg(insn.dst)}, {_imm(insn.imm)}"


def _jmp_line(insn: Insn) -> str:
    code = insn.opcode
    if code == op.JA:
        return f"ja {_rel(insn.off)}"
    if code == op.JA32:
        return f"ja32 {_rel(insn.imm)}"
    if code == op.EXIT:
        return "exit"
    if code == op.CALLX:
        return f"call {_reg(insn.dst)}"
    if code == op.CALL:
        if insn.src == op.BPF_PSEUDO_CALL:
            return f"call local {_rel(insn.imm)}"
        if insn.src == op.BPF_PSEUDO_KFUNC_CALL:
            return f"call runtime {insn.imm}"
        return f"call {insn.imm}"
    name = op.JMP_OP_NAMES.get(code & 0xF0)
    if name is None:
        return f"<unknown opcode 0x{code:02x}>"
    w = "32" if code & 0x07 == op.BPF_JMP32 else ""
    src = _reg(insn.src) if code & op.BPF_X else _imm(insn.imm)
    return f"{name}{w} {_reg(insn.dst)}, {src}, {_rel(insn.off)}"


def _field_diff(want: Insn, got: Insn) -> str:
    names = ("opcode", "dst", "src", "off", "imm", "next_opcode", "next_regs", "next_off")
    diffs = [f"{n}={getattr(want, n)}" for n in names if getattr(want, n) != getattr(got, n)]
    return ", ".join(diffs)


def _disasm_conformance(code: bytes) -> str:
    try:
        insns = decode(code)
    except DecodeError as e:
        raise DisasmError(e.pc, e.reason) from None
    lines = []
    for pc, insn in zip(pcs(insns), insns, strict=True):
        text = conformance_line(insn)
        if text.startswith("<"):
            raise DisasmError(pc, f"{insn.encode().hex(' ')}: {text[1:-1]}")
        try:
            back = assemble_insn(text)
        except AsmError:
            back = None
        if back != insn:
            detail = f" (fields the dialect cannot express: {_field_diff(insn, back)})" if back else ""
            raise DisasmError(pc, f"{insn.encode().hex(' ')} cannot be written in the conformance dialect{detail}")
        lines.append(text)
    return "".join(line + "\n" for line in lines)


def disassemble(
    code: bytes, style: str = "conformance", *, raw_bytes: bool = True, symbol: str = ".text", alu32: bool = False
) -> str:
    """Disassemble instruction bytes, one instruction per line.

    ``style="conformance"``: source that :func:`~bpfmc.ebpf.asm.assemble` turns back into the
    same bytes; raises :class:`DisasmError` for bytes the dialect cannot express (unknown
    opcodes, non-zero reserved fields, registers above r10, a non-empty second lddw slot).

    ``style="llvm"``: the instruction lines of ``llvm-objdump-19 -d`` (``raw_bytes=False`` for
    ``--no-show-raw-insn``; ``alu32=True`` for ``--mcpu=v3``/``v4`` spelling); jump targets are
    annotated relative to ``symbol``. Never raises for well-sized input: what objdump cannot
    decode is shown as ``<unknown>``.
    """
    if style == "conformance":
        return _disasm_conformance(code)
    if style == "llvm":
        return render_llvm(code, raw_bytes=raw_bytes, symbol=symbol, alu32=alu32)
    raise ValueError(f"unknown disassembly style {style!r} (known: {', '.join(STYLES)})")
