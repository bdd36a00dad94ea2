"""Structural validation of an instruction stream, done once at load.

Table-driven in the manner of uBPF's validator: every valid opcode has one :class:`Rule` row
that says what each of ``dst``, ``src``, ``off`` and ``imm`` may hold. Anything without a row
is an unknown opcode. A few checks need the whole program rather than one row: jump and
local-call targets, the shape of ``lddw``'s second slot, and that execution cannot run off
the end. This is not the verifier: it proves nothing about values, only that every
instruction is well formed, so that the interpreter never meets an encoding it does not know.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import opcodes as op
from .insn import DecodeError, Insn, decode, pcs


class ValidationError(ValueError):
    """The program is structurally invalid; ``pc`` is the offending slot."""

    def __init__(self, pc: int, reason: str):
        super().__init__(f"pc {pc}: {reason}")
        self.pc = pc
        self.reason = reason


# Field policies. A frozenset lists the allowed values; the strings are:
#   "reg"  a register read (r0-r10),   "wreg" a register written (r0-r9, r10 is read-only),
#   "any"  any value,                  "jump" a relative slot offset checked against the program.
ZERO = frozenset({0})
Policy = frozenset[int] | str

_END_SIZES = frozenset({16, 32, 64})
_ATOMIC_OPS = frozenset(
    {op.BPF_ADD, op.BPF_OR, op.BPF_AND, op.BPF_XOR}
    | {code | op.BPF_FETCH for code in (op.BPF_ADD, op.BPF_OR, op.BPF_AND, op.BPF_XOR)}
    | {op.BPF_XCHG, op.BPF_CMPXCHG}
)


@dataclass(frozen=True)
class Rule:
    name: str
    dst: Policy
    src: Policy
    off: Policy
    imm: Policy


def _build_rules() -> dict[int, Rule]:
    rules: dict[int, Rule] = {}

    def add(opcode: int, name: str, dst: Policy, src: Policy, off: Policy, imm: Policy) -> None:
        assert opcode not in rules, hex(opcode)
        rules[opcode] = Rule(name, dst, src, off, imm)

    for cls, suffix in ((op.BPF_ALU64, ""), (op.BPF_ALU, "32")):
        for code, name in op.ALU_OP_NAMES.items():
            if code == op.BPF_NEG:
                add(cls | code, f"neg{suffix}", "wreg", ZERO, ZERO, ZERO)
                continue
            # sdiv/smod are div/mod with offset 1; movsx is mov with the source width in offset.
            if code in (op.BPF_DIV, op.BPF_MOD):
                off_k = off_x = frozenset({0, 1})
            elif code == op.BPF_MOV:
                off_k, off_x = ZERO, frozenset({0, 8, 16, 32} if cls == op.BPF_ALU64 else {0, 8, 16})
            else:
                off_k = off_x = ZERO
            add(cls | code | op.BPF_K, f"{name}{suffix} imm", "wreg", ZERO, off_k, "any")
            add(cls | code | op.BPF_X, f"{name}{suffix} reg", "wreg", "reg", off_x, ZERO)
    add(op.BPF_ALU | op.BPF_END | op.BPF_TO_LE, "le", "wreg", ZERO, ZERO, _END_SIZES)
    add(op.BPF_ALU | op.BPF_END | op.BPF_TO_BE, "be", "wreg", ZERO, ZERO, _END_SIZES)
    add(op.BPF_ALU64 | op.BPF_END | op.BPF_TO_LE, "bswap", "wreg", ZERO, ZERO, _END_SIZES)

    add(op.JA, "ja", ZERO, ZERO, "jump", ZERO)
    add(op.JA32, "ja32", ZERO, ZERO, ZERO, "jump")
    for cls, suffix in ((op.BPF_JMP, ""), (op.BPF_JMP32, "32")):
        for code, name in op.JMP_OP_NAMES.items():
            add(cls | code | op.BPF_K, f"{name}{suffix} imm", "reg", ZERO, "jump", "any")
            add(cls | code | op.BPF_X, f"{name}{suffix} reg", "reg", "reg", "jump", ZERO)
    # call's src selects helper (0), local (1, imm is a jump) or kfunc (2): see _check_call.
    add(op.CALL, "call", ZERO, frozenset({0, 1, 2}), ZERO, "any")
    add(op.CALLX, "callx", "reg", ZERO, ZERO, ZERO)
    add(op.EXIT, "exit", ZERO, ZERO, ZERO, ZERO)

    # lddw's src (pseudo sources) depends on allow_pseudo: see validate().
    add(op.LDDW, "lddw", "wreg", ZERO, ZERO, "any")
    for size, sfx in op.SIZE_SUFFIX.items():
        add(op.BPF_LDX | op.BPF_MEM | size, f"ldx{sfx}", "wreg", "reg", "any", ZERO)
        add(op.BPF_ST | op.BPF_MEM | size, f"st{sfx}", "reg", ZERO, "any", "any")
        add(op.BPF_STX | op.BPF_MEM | size, f"stx{sfx}", "reg", "reg", "any", ZERO)
        if size == op.BPF_DW:
            continue  # RFC 9669: no 64-bit sign-extending load, legacy packet loads are b/h/w only
        add(op.BPF_LDX | op.BPF_MEMSX | size, f"ldxs{sfx}", "wreg", "reg", "any", ZERO)
        add(op.BPF_LD | op.BPF_ABS | size, f"ldabs{sfx}", ZERO, ZERO, ZERO, "any")
        add(op.BPF_LD | op.BPF_IND | size, f"ldind{sfx}", ZERO, "reg", ZERO, "any")
    for size, sfx in ((op.BPF_W, "32"), (op.BPF_DW, "")):
        add(op.BPF_STX | op.BPF_ATOMIC | size, f"lock{sfx}", "reg", "reg", "any", _ATOMIC_OPS)
    return rules


RULES: dict[int, Rule] = _build_rules()

_FIELD_NAMES = {"dst": "dst register", "src": "src register", "off": "offset", "imm": "immediate"}


def _check_field(pc: int, rule: Rule, field: str, value: int, policy: Policy) -> None:
    if isinstance(policy, frozenset):
        if value not in policy:
            if policy == ZERO:
                raise ValidationError(pc, f"{rule.name}: reserved {_FIELD_NAMES[field]} field must be 0, is {value}")
            allowed = ", ".join(str(v) for v in sorted(policy))
            raise ValidationError(pc, f"{rule.name}: invalid {_FIELD_NAMES[field]} {value} (allowed: {allowed})")
    elif policy in ("reg", "wreg"):
        if value >= op.NUM_REGS:
            raise ValidationError(pc, f"{rule.name}: invalid {_FIELD_NAMES[field]} r{value}")
        if policy == "wreg" and value == op.FRAME_POINTER:
            raise ValidationError(pc, f"{rule.name}: writes r10, which is read-only")


def _jump_target(pc: int, name: str, rel: int, n_slots: int, second_slots: set[int]) -> None:
    target = pc + 1 + rel
    if not 0 <= target < n_slots:
        where = f"outside the program (0..{n_slots - 1})"
        raise ValidationError(pc, f"{name}: target {target} (offset {rel:+d}) is {where}")
    if target in second_slots:
        raise ValidationError(pc, f"{name}: target {target} is the second slot of an lddw")


def validate(code: bytes, *, helpers: set[int] | None = None, allow_pseudo: bool = False) -> None:
    """Refuse a structurally invalid program with :class:`ValidationError`.

    ``helpers``: when given, the helper ids a ``call N`` may name (calls through a register
    cannot be checked here). ``allow_pseudo``: accept ``lddw`` with a pseudo source (map fd,
    map value, ...), which a loader must have resolved before the program runs.
    """
    if not code:
        raise ValidationError(0, "program is empty")
    try:
        insns = decode(code)
    except DecodeError as e:
        raise ValidationError(e.pc, e.reason) from None
    n_slots = len(code) // op.INSN_SIZE
    positions = pcs(insns)
    second_slots = {pc + 1 for pc, i in zip(positions, insns, strict=True) if i.is_wide}
    lddw_src = frozenset(range(op.BPF_PSEUDO_MAP_IDX_VALUE + 1)) if allow_pseudo else ZERO

    for pc, insn in zip(positions, insns, strict=True):
        rule = RULES.get(insn.opcode)
        if rule is None:
            raise ValidationError(pc, f"unknown opcode 0x{insn.opcode:02x}")
        _check_field(pc, rule, "dst", insn.dst, rule.dst)
        _check_field(pc, rule, "src", insn.src, lddw_src if insn.is_wide else rule.src)
        _check_field(pc, rule, "off", insn.off, rule.off)
        if not insn.is_wide:  # lddw's imm is the whole 64-bit constant: anything goes
            _check_field(pc, rule, "imm", insn.imm, rule.imm)
        if rule.off == "jump":
            _jump_target(pc, rule.name, insn.off, n_slots, second_slots)
        if rule.imm == "jump":
            _jump_target(pc, rule.name, insn.imm, n_slots, second_slots)
        if insn.is_wide:
            _check_second_slot(pc, insn)
        elif insn.opcode == op.CALL:
            _check_call(pc, insn, n_slots, second_slots, helpers)
        elif op.insn_class(insn.opcode) == op.BPF_STX and insn.opcode & 0xE0 == op.BPF_ATOMIC:
            # fetch and xchg write the old value into src; cmpxchg writes r0 instead.
            if insn.imm & op.BPF_FETCH and insn.imm != op.BPF_CMPXCHG and insn.src == op.FRAME_POINTER:
                raise ValidationError(pc, f"{rule.name}: fetching into r10, which is read-only")

    last = insns[-1]
    if last.opcode not in (op.EXIT, op.JA, op.JA32):
        raise ValidationError(positions[-1], "execution can fall off the end: the last instruction is not exit or ja")


def _check_second_slot(pc: int, insn: Insn) -> None:
    if insn.next_opcode or insn.next_regs or insn.next_off:
        raise ValidationError(
            pc + 1,
            f"lddw second slot must have opcode, registers and offset 0 (is opcode 0x{insn.next_opcode:02x}, "
            f"registers 0x{insn.next_regs:02x}, offset {insn.next_off})",
        )


def _check_call(pc: int, insn: Insn, n_slots: int, second_slots: set[int], helpers: set[int] | None) -> None:
    if insn.src == op.BPF_PSEUDO_KFUNC_CALL:
        raise ValidationError(pc, f"call runtime {insn.imm}: kernel-function (kfunc) calls are not supported")
    if insn.src == op.BPF_PSEUDO_CALL:
        _jump_target(pc, "call local", insn.imm, n_slots, second_slots)
    elif helpers is not None and insn.imm not in helpers:
        raise ValidationError(pc, f"call {insn.imm}: unknown helper function {insn.imm}")
