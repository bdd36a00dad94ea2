"""Structural validation: the suite's programs pass, reserved fields and bad shapes are refused."""

from __future__ import annotations

import pytest
from conftest import conformance_files
from test_asm import ENCODINGS

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.asm import assemble
from bpfmc.ebpf.conformance import parse_file
from bpfmc.ebpf.insn import Insn, encode
from bpfmc.ebpf.validate import RULES, ValidationError, validate

TEST_FILES = conformance_files("tests")
UNUSED_FILES = conformance_files("negative", "unused-*.data")
EXIT = Insn(op.EXIT).encode()


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.stem)
def test_conformance_programs_validate(path):
    validate(parse_file(path).code)


def test_there_are_45_unused_files(conformance_dir):
    assert len(UNUSED_FILES) == 45


# The file name ends in the field that must be zero; map it to the wording of our messages.
FIELD_WORDS = {"offset": "offset", "src": "src register", "imm": "immediate", "dst": "dst register"}


@pytest.mark.parametrize("path", UNUSED_FILES, ids=lambda p: p.stem)
def test_reserved_fields_are_refused(path):
    case = parse_file(path)
    assert case.error == "" and case.result is None
    with pytest.raises(ValidationError) as exc:
        validate(case.code)
    assert exc.value.pc == 0
    assert FIELD_WORDS[path.stem.rsplit("-", 1)[1]] in exc.value.reason


def _refused(code: bytes, **kw) -> ValidationError:
    with pytest.raises(ValidationError) as exc:
        validate(code, **kw)
    assert str(exc.value) == f"pc {exc.value.pc}: {exc.value.reason}"
    return exc.value


# (name, program, expected pc, words the reason must contain)
BAD_ASM = [
    ("jump past the end", "ja +1\nexit", 0, "outside the program"),
    ("jump before the start", "mov %r0, 0\nja -3\nexit", 1, "outside the program"),
    ("conditional jump past the end", "jeq %r1, 0, +5\nexit", 0, "target 6"),
    ("jump into lddw", "ja +1\nlddw %r0, 1\nexit", 0, "second slot of an lddw"),
    ("ja32 out of range", "ja32 +7\nexit", 0, "ja32: target 8"),
    ("local call out of range", "call local +9\nexit", 0, "call local"),
    ("local call into lddw", "call local +1\nlddw %r0, 1\nexit", 0, "second slot"),
    ("write to r10 (alu)", "mov %r10, 1\nexit", 0, "r10"),
    ("write to r10 (alu32 reg)", "add32 %r10, %r1\nexit", 0, "r10"),
    ("write to r10 (ldx)", "ldxdw %r10, [%r1]\nexit", 0, "r10"),
    ("write to r10 (lddw)", "lddw %r10, 1\nexit", 0, "r10"),
    ("write to r10 (neg)", "neg %r10\nexit", 0, "r10"),
    ("write to r10 (be)", "be16 %r10\nexit", 0, "r10"),
    ("fetch into r10", "lock fetch add [%r1], %r10\nexit", 0, "r10"),
    ("xchg into r10", "lock xchg32 [%r1], %r10\nexit", 0, "r10"),
    ("missing exit", "mov %r0, 0", 0, "fall off the end"),
    ("ends in a conditional jump", "mov %r0, 0\njeq %r0, 0, -2", 1, "fall off the end"),
    ("ends in a call", "call 5", 0, "fall off the end"),
    ("ends in lddw", "lddw %r0, 1", 0, "fall off the end"),
    ("kfunc call", "call runtime 3\nexit", 0, "not supported"),
    ("legacy 64-bit packet load", "ldabsdw 4\nexit", 0, "unknown opcode 0x38"),
    ("legacy 64-bit indirect packet load", "ldinddw %r1, 4\nexit", 0, "unknown opcode 0x58"),
]


@pytest.mark.parametrize("src,pc,words", [b[1:] for b in BAD_ASM], ids=[b[0] for b in BAD_ASM])
def test_bad_programs_from_asm(src, pc, words):
    err = _refused(assemble(src))
    assert err.pc == pc
    assert words in err.reason


def _raw(opcode: int, regs: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return bytes([opcode, regs]) + off.to_bytes(2, "little", signed=True) + imm.to_bytes(4, "little", signed=True)


LDDW1 = _raw(op.LDDW, 0x01, 0, 5)
BAD_RAW = [
    ("empty", b"", 0, "empty"),
    ("length not a multiple of 8", EXIT + b"\x95\x00", 1, "not a multiple of 8"),
    ("truncated lddw", EXIT + LDDW1, 1, "truncated"),
    ("unknown opcode", _raw(0xFF) + EXIT, 0, "unknown opcode 0xff"),
    ("neg with a register source bit", _raw(0x8F) + EXIT, 0, "unknown opcode 0x8f"),
    ("ldxsdw", _raw(0x99, 0x21) + EXIT, 0, "unknown opcode 0x99"),
    ("16-bit atomic", _raw(0xCB, 0x21) + EXIT, 0, "unknown opcode 0xcb"),
    ("8-bit atomic", _raw(0xD3, 0x21) + EXIT, 0, "unknown opcode 0xd3"),
    ("big-endian bswap", _raw(0xDF, 0x01, 0, 16) + EXIT, 0, "unknown opcode 0xdf"),
    ("jmp32 call", _raw(0x86) + EXIT, 0, "unknown opcode 0x86"),
    ("bad dst register", _raw(0xB7, 0x0B, 0, 1) + EXIT, 0, "invalid dst register r11"),
    ("bad src register", _raw(0xBF, 0xF1) + EXIT, 0, "invalid src register r15"),
    ("bad store base register", _raw(0x62, 0x0C, 0, 1) + EXIT, 0, "invalid dst register r12"),
    ("bad callx register", _raw(0x8D, 0x0B) + EXIT, 0, "invalid dst register r11"),
    ("lddw second slot opcode", LDDW1[:8] + _raw(0x18) + EXIT, 1, "second slot"),
    ("lddw second slot registers", LDDW1[:8] + _raw(0, 0x10) + EXIT, 1, "second slot"),
    ("lddw second slot offset", LDDW1[:8] + _raw(0, 0, 1) + EXIT, 1, "second slot"),
    ("lddw pseudo source", _raw(op.LDDW, 0x11, 0, 5) + _raw(0) + EXIT, 0, "src register"),
    ("lddw offset", _raw(op.LDDW, 0x01, 1, 5) + _raw(0) + EXIT, 0, "offset"),
    ("call with src 3", _raw(0x85, 0x30, 0, 1) + EXIT, 0, "invalid src register 3"),
    ("le32 with imm 8", _raw(0xD4, 0x01, 0, 8) + EXIT, 0, "invalid immediate 8"),
    ("bswap with imm 24", _raw(0xD7, 0x01, 0, 24) + EXIT, 0, "invalid immediate 24"),
    ("movsx32 from 32 bits", _raw(0xBC, 0x21, 32) + EXIT, 0, "invalid offset 32"),
    ("movsx64 from 4 bits", _raw(0xBF, 0x21, 4) + EXIT, 0, "invalid offset 4"),
    ("mov imm with offset", _raw(0xB7, 0x01, 8, 1) + EXIT, 0, "offset"),
    ("sdiv with offset 2", _raw(0x3F, 0x21, 2) + EXIT, 0, "invalid offset 2"),
    ("smod32 imm with offset 2", _raw(0x94, 0x01, 2, 3) + EXIT, 0, "invalid offset 2"),
    ("atomic sub", _raw(0xDB, 0x21, 0, 0x10) + EXIT, 0, "invalid immediate 16"),
    ("atomic fetch with a bad op", _raw(0xC3, 0x21, 0, 0x31) + EXIT, 0, "invalid immediate 49"),
    ("ja32 with offset", _raw(0x06, 0, 1, 0) + EXIT, 0, "offset"),
    ("ldabs with dst", _raw(0x20, 0x01, 0, 4) + EXIT, 0, "dst register"),
    ("ldabs with src", _raw(0x20, 0x10, 0, 4) + EXIT, 0, "src register"),
    ("ldind with offset", _raw(0x40, 0x10, 2, 4) + EXIT, 0, "offset"),
    ("bad second instruction", EXIT + _raw(0x07, 0x01, 1, 1), 1, "offset"),
]


@pytest.mark.parametrize("code,pc,words", [b[1:] for b in BAD_RAW], ids=[b[0] for b in BAD_RAW])
def test_bad_programs_from_bytes(code, pc, words):
    err = _refused(code)
    assert err.pc == pc
    assert words in err.reason


def test_helpers_set():
    code = assemble("call 5\ncall 7\nexit")
    validate(code)  # no set: any helper id is structurally fine
    validate(code, helpers={5, 7})
    err = _refused(code, helpers={5})
    assert err.pc == 1 and "unknown helper function 7" in err.reason
    # A call through a register cannot be checked statically, a local call is not a helper.
    validate(assemble("mov %r2, 9\ncall %r2\ncall local +1\nexit\nexit"), helpers=set())


def test_allow_pseudo():
    code = _raw(op.LDDW, 0x21, 0, 5) + _raw(0) + EXIT  # lddw r1 with src = map value
    _refused(code)
    validate(code, allow_pseudo=True)
    _refused(_raw(op.LDDW, 0x71, 0, 5) + _raw(0) + EXIT, allow_pseudo=True)  # no pseudo source 7


def test_accepted_corner_cases():
    validate(assemble("ja +0\nexit"))  # a jump to the next instruction
    validate(assemble("ja -1"))  # an endless loop ends the program text legitimately
    validate(assemble("ja32 -1"))
    validate(assemble("lddw %r0, 1\nja -3"))  # back to slot 0, not into the lddw
    validate(assemble("stdw [%r10-8], 1\nstxdw [%r10-8], %r10\nldxdw %r0, [%r10-8]\nexit"))  # r10 read
    validate(assemble("lock cmpxchg [%r1], %r10\nexit"))  # cmpxchg writes r0, not src
    validate(assemble("ldabsw 4\nldindb %r1, 2\nexit"))


# Forms the assembler accepts that the validator must refuse (or that need a context).
NOT_VALID_ALONE = {"ldabsdw 4", "ldinddw %r1, 8", "call runtime 7", "ja32 -70000"}


@pytest.mark.parametrize("src", [s for s, _ in ENCODINGS if s not in NOT_VALID_ALONE])
def test_every_assembler_form_validates(src):
    # Cross-checks the two tables: what the assembler emits, the validator knows.
    validate(assemble("exit\nexit\n" + src + "\nexit" * 8))


def test_rule_table_is_consistent():
    for opcode, rule in RULES.items():
        assert 0 <= opcode <= 0xFF
        for policy in (rule.dst, rule.src, rule.off, rule.imm):
            assert isinstance(policy, frozenset) or policy in ("reg", "wreg", "any", "jump")
    # 2 x (12 ALU ops x 2 sources + neg) + le/be/bswap + ja/ja32 + 2 x 11 x 2 JCC + call/callx/exit
    # + lddw + 4 ldx + 4 st + 4 stx + 3 ldxs + 3 ldabs + 3 ldind + 2 atomics
    assert len(RULES) == 2 * 25 + 3 + 2 + 44 + 3 + 1 + 12 + 9 + 2


def test_errors_name_slots_not_instructions():
    code = encode([Insn(op.LDDW, 1, imm=1), Insn(0xB7, op.FRAME_POINTER, imm=1), Insn(op.EXIT)])
    assert _refused(code).pc == 2  # the mov is the second instruction but sits in slot 2
