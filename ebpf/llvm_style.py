"""Rendering in the style of ``llvm-objdump-19 -d`` for BPF (the C-like "pseudo-C" syntax).

Spelling was taken from objdump's own output instruction by instruction (``r0 = 0x1``,
``if w1 s> -0x5 goto +0x3 <.text+0x28>``, ``r0 = 0x1122334455667788 ll``); the tests compare
against objdump on objects built at test time. Immediates and offsets are signed hex.

Without ``alu32`` this is plain ``llvm-objdump-19 -d``; with it, ``--mcpu=v3``/``v4``, which
prints the 32-bit side of narrow loads, stores and 32-bit atomics as ``wN``. Two deliberate
differences, both where objdump's default mode loses information:

* 32-bit atomics other than plain ``lock ... +=`` (``fetch``, ``xchg``, ``cmpxchg``, ``&=``...)
  are ``<unknown>`` in default objdump, and its default decoder shows 32-bit fetch-add as a
  plain add. They are always rendered with the ``--mcpu=v3`` spelling.
* ``ldind`` with a non-zero immediate shows it (``skb[r1 + 0x4]``); objdump drops it.
"""

from __future__ import annotations

from . import opcodes as op
from .insn import DecodeError, Insn, decode, pcs
from .validate import RULES

_ALU_OPS = {
    op.BPF_ADD: "+=", op.BPF_SUB: "-=", op.BPF_MUL: "*=", op.BPF_DIV: "/=", op.BPF_OR: "|=",
    op.BPF_AND: "&=", op.BPF_LSH: "<<=", op.BPF_RSH: ">>=", op.BPF_MOD: "%=", op.BPF_XOR: "^=",
    op.BPF_MOV: "=", op.BPF_ARSH: "s>>=",
}
_JMP_OPS = {
    op.BPF_JEQ: "==", op.BPF_JGT: ">", op.BPF_JGE: ">=", op.BPF_JSET: "&", op.BPF_JNE: "!=",
    op.BPF_JSGT: "s>", op.BPF_JSGE: "s>=", op.BPF_JLT: "<", op.BPF_JLE: "<=", op.BPF_JSLT: "s<",
    op.BPF_JSLE: "s<=",
}
_ATOMIC_OPS = {op.BPF_ADD: "+=", op.BPF_OR: "|=", op.BPF_AND: "&=", op.BPF_XOR: "^="}
_SIZE_TYPES = {op.BPF_B: "u8", op.BPF_H: "u16", op.BPF_W: "u32", op.BPF_DW: "u64"}
_END_NAMES = {
    op.BPF_ALU | op.BPF_END | op.BPF_TO_LE: "le",
    op.BPF_ALU | op.BPF_END | op.BPF_TO_BE: "be",
    op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE: "bswap",
}
UNKNOWN = "<unknown>"


def _hex(v: int) -> str:
    return f"-0x{-v:x}" if v < 0 else f"0x{v:x}"


def _rel(v: int) -> str:
    return f"-0x{-v:x}" if v < 0 else f"+0x{v:x}"


def _addr(reg: int, off: int) -> str:
    return f"r{reg} - 0x{-off:x}" if off < 0 else f"r{reg} + 0x{off:x}"


def _s64(v: int) -> int:
    return v - (1 << 64) if v >> 63 else v


class _Renderer:
    def __init__(self, symbol: str, alu32: bool):
        self.symbol = symbol
        self.alu32 = alu32

    def target(self, pc: int, rel: int) -> str:
        addr = ((pc + 1 + rel) * 8) & ((1 << 64) - 1)  # objdump wraps targets before the start
        return f"<{self.symbol}+0x{addr:x}>" if addr else f"<{self.symbol}>"

    def narrow(self, size: int) -> str:
        """Register prefix for the value side of a load/store of this size."""
        return "w" if self.alu32 and size != op.BPF_DW else "r"

    def line(self, pc: int, insn: Insn) -> str:
        cls = insn.opcode & 0x07
        if insn.is_wide:
            if insn.src:
                return f"ld_pseudo\tr{insn.dst}, {_hex(insn.src)}, {_hex(_s32(insn.imm))}"
            return f"r{insn.dst} = {_hex(_s64(insn.imm))} ll"
        if cls in (op.BPF_ALU, op.BPF_ALU64):
            return self.alu(insn)
        if cls in (op.BPF_JMP, op.BPF_JMP32):
            return self.jmp(pc, insn)
        return self.mem(insn)

    def alu(self, insn: Insn) -> str:
        code = insn.opcode
        rule = RULES.get(code)
        # LLVM decodes the offset of ALU instructions (sdiv, movsx), so a stray one is unknown.
        if rule is None or (isinstance(rule.off, frozenset) and insn.off not in rule.off):
            return UNKNOWN
        r = "w" if code & 0x07 == op.BPF_ALU else "r"
        d = f"{r}{insn.dst}"
        if code in _END_NAMES:
            return f"r{insn.dst} = {_END_NAMES[code]}{insn.imm} r{insn.dst}" if insn.imm in (16, 32, 64) else UNKNOWN
        alu_op = code & 0xF0
        if alu_op == op.BPF_NEG:
            return f"{d} = -{d}"
        sym = _ALU_OPS[alu_op]
        if insn.off == 1:
            sym = "s" + sym
        if not code & op.BPF_X:
            return f"{d} {sym} {_hex(insn.imm)}"
        if alu_op == op.BPF_MOV and insn.off:
            return f"{d} = (s{insn.off}){r}{insn.src}"
        return f"{d} {sym} {r}{insn.src}"

    def jmp(self, pc: int, insn: Insn) -> str:
        code = insn.opcode
        if code == op.JA:
            return f"goto {_rel(insn.off)} {self.target(pc, insn.off)}"
        if code == op.JA32:
            return f"gotol {_rel(insn.imm)} {self.target(pc, insn.imm)}"
        if code == op.EXIT:
            return "exit"
        if code == op.CALL:
            return f"call {_hex(insn.imm)}"
        if code == op.CALLX:
            return f"callx r{insn.dst}"
        sym = _JMP_OPS.get(code & 0xF0)
        if sym is None or RULES.get(code) is None:
            return UNKNOWN
        r = "w" if code & 0x07 == op.BPF_JMP32 else "r"
        src = f"{r}{insn.src}" if code & op.BPF_X else _hex(insn.imm)
        return f"if {r}{insn.dst} {sym} {src} goto {_rel(insn.off)} {self.target(pc, insn.off)}"

    def mem(self, insn: Insn) -> str:
        code = insn.opcode
        if RULES.get(code) is None:
            return UNKNOWN
        cls, size, mode = code & 0x07, code & 0x18, code & 0xE0
        ty = _SIZE_TYPES[size]
        if cls == op.BPF_LD:
            where = f"r{insn.src}" if mode == op.BPF_IND else _hex(insn.imm)
            if mode == op.BPF_IND and insn.imm:
                where += f" + {_hex(insn.imm)}" if insn.imm > 0 else f" - 0x{-insn.imm:x}"
            return f"r0 = *({ty} *)skb[{where}]"
        if cls == op.BPF_LDX:
            if mode == op.BPF_MEMSX:
                return f"r{insn.dst} = *(s{ty[1:]} *)({_addr(insn.src, insn.off)})"
            return f"{self.narrow(size)}{insn.dst} = *({ty} *)({_addr(insn.src, insn.off)})"
        if cls == op.BPF_ST:
            return f"*({ty} *)({_addr(insn.dst, insn.off)}) = {_hex(insn.imm)}"
        if mode == op.BPF_MEM:
            return f"*({ty} *)({_addr(insn.dst, insn.off)}) = {self.narrow(size)}{insn.src}"
        return self.atomic(insn, size, ty)

    def atomic(self, insn: Insn, size: int, ty: str) -> str:
        imm = insn.imm
        wide = size == op.BPF_DW
        # Default objdump only knows the 32-bit non-fetch add; everything else gets v3 spelling.
        r = "r" if wide or (not self.alu32 and imm == op.BPF_ADD) else "w"
        s, d = f"{r}{insn.src}", insn.dst
        if imm in _ATOMIC_OPS:
            return f"lock *({ty} *)({_addr(d, insn.off)}) {_ATOMIC_OPS[imm]} {s}"
        if imm & ~op.BPF_FETCH in _ATOMIC_OPS and imm & op.BPF_FETCH:
            name = op.ATOMIC_OP_NAMES[imm & ~op.BPF_FETCH]
            return f"{s} = atomic_fetch_{name}(({ty} *)({_addr(d, insn.off)}), {s})"
        if imm == op.BPF_XCHG:
            fn = "xchg_64" if wide else "xchg32_32"
            return f"{s} = {fn}({_addr(d, insn.off)}, {s})"
        if imm == op.BPF_CMPXCHG:
            fn = "cmpxchg_64" if wide else "cmpxchg32_32"
            return f"{r}0 = {fn}({_addr(d, insn.off)}, {r}0, {s})"
        return UNKNOWN


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >> 31 else v


def render_llvm(code: bytes, *, raw_bytes: bool = True, symbol: str = ".text", alu32: bool = False) -> str:
    """The instruction lines of ``llvm-objdump -d`` for these bytes (no file or symbol headers)."""
    renderer = _Renderer(symbol, alu32)
    whole = len(code) // 8 * 8
    try:
        insns, end = decode(code[:whole]), whole
    except DecodeError as e:  # an lddw missing its second slot: objdump says <unknown> there
        insns, end = decode(code[: e.pc * 8]), e.pc * 8
    out = [
        _row(pc, insn.encode(), renderer.line(pc, insn), raw_bytes)
        for pc, insn in zip(pcs(insns), insns, strict=True)
    ]
    if end < len(code):
        out.append(_row(end // 8, code[end:], UNKNOWN, raw_bytes))
    return "".join(line + "\n" for line in out)


def _row(pc: int, raw: bytes, text: str, raw_bytes: bool) -> str:
    if raw_bytes:
        return f"{pc:>8}:\t{raw.hex(' ')}\t{text}"
    return f"{pc:>8}:\t{text}"
