"""The .data reader: every rule of the conformance README, on the real files and on small texts."""

from __future__ import annotations

import pytest
from conftest import conformance_files

from bpfmc.ebpf.asm import AsmError
from bpfmc.ebpf.conformance import FormatError, case_paths, iter_cases, parse_file, parse_text

TEST_FILES = conformance_files("tests")


def test_all_313_cases_load(conformance_dir):
    cases = list(iter_cases(conformance_dir / "tests"))
    assert len(cases) == 313
    assert [c.path for c in cases] == sorted(c.path for c in cases)
    assert all(c.code and len(c.code) % 8 == 0 for c in cases)
    assert all(c.result is not None and c.error is None and c.skip_reason is None for c in cases)
    assert sum(bool(c.mem) for c in cases) == 40  # the README's count of -- mem tests


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.stem)
def test_case_fields(path):
    case = parse_file(path)
    assert case.name == path.stem and case.path == path
    assert case.asm_text is not None
    assert 0 <= case.result < 1 << 64
    assert not case.expects_failure


def test_known_values(conformance_dir):
    tests = conformance_dir / "tests"
    subnet = parse_file(tests / "subnet.data")  # has -- c, mem over 10 lines
    assert subnet.result == 1 and len(subnet.mem) == 74 and subnet.mem[:3] == bytes.fromhex("0000c0")
    assert "#include" not in subnet.asm_text
    assert len(parse_file(tests / "mem-len.data").mem) == 8  # the test returns r2 and expects 8
    assert parse_file(tests / "lddw.data").result == 0x1122334455667788


def test_self_test_files(conformance_dir):
    neg = conformance_dir / "negative"
    for name in ("empty", "empty_instructions"):
        case = parse_file(neg / f"{name}.data")
        assert case.code is None and case.skip_reason
    unknown = parse_file(neg / "invalid_unknown_directive.data")
    assert unknown.code is None and "unknown directive '-- Unknown directive'" in unknown.skip_reason
    error = parse_file(neg / "error.data")
    assert error.error == "Invalid" and error.result is None and error.expects_failure
    assert error.code.hex() == "4fa00000000000009500000000000000"
    high = parse_file(neg / "incorrect_return_value_high_bits.data")
    assert high.result == 0x8977665544332211 and high.mem.hex() == "aabb1122334455667788ccdd"


def test_unused_files_use_byte_rows(conformance_dir):
    paths = case_paths(conformance_dir / "negative")
    unused = [parse_file(p) for p in paths if p.stem.startswith("unused-")]
    assert len(unused) == 45
    for case in unused:
        assert len(case.code) == 16 and case.code[8:] == bytes.fromhex("9500000000000000")
        assert case.error == "" and case.expects_failure
    add = parse_file(conformance_dir / "negative" / "unused-add_imm-offset.data")
    assert add.code[:8] == bytes.fromhex("0400010001000000")


def test_negative_assembly_errors_carry_file_lines(conformance_dir):
    with pytest.raises(AsmError) as exc:
        parse_file(conformance_dir / "negative" / "invalid_register.data")
    assert exc.value.line == 4 and "%r50" in str(exc.value)


# --- synthetic files ---------------------------------------------------------------------------


def test_sections_in_any_order_and_comments():
    text = "# header\nignored before any directive\n-- result\n0xFF # trailing\n-- mem\naa BB\ncc\n-- asm\n"
    text += "mov %r0, 1 # one\n\n# whole-line comment\nexit\n"
    case = parse_text(text, name="x")
    assert case.result == 0xFF and case.mem == bytes.fromhex("aabbcc")
    assert case.code.hex() == "b700000001000000" + "9500000000000000"
    assert case.asm_text.splitlines()[0] == "mov %r0, 1 # one"


def test_crlf_and_decimal_result():
    case = parse_text("-- asm\r\nexit\r\n-- result\r\n0\r\n")
    assert case.result == 0 and case.code == bytes.fromhex("9500000000000000")


def test_result_is_the_last_line():
    assert parse_text("-- asm\nexit\n-- result\n1\n0x2\n").result == 2


def test_ignored_sections():
    text = "-- c\nint main() { return 1; }\n-- asm\nexit\n-- no register offset\ncall instruction\n-- result\n0x1\n"
    assert parse_text(text).code == bytes.fromhex("9500000000000000")


def test_raw_replaces_asm_in_both_conventions():
    ints = parse_text("-- asm\nthis would not assemble\n-- raw\n0x00000001000000b7 149\n-- result\n1\n")
    assert ints.code.hex() == "b700000001000000" + "9500000000000000"  # 149 == 0x95, decimal token
    rows = parse_text("-- raw\nb7 00 00 00 01 00 00 00\n95 00 00 00 00 00 00 00\n-- result\n1\n")
    assert rows.code == ints.code


def test_error_section():
    assert parse_text("-- asm\nexit\n-- error\nBad thing\n").error == "Bad thing"
    empty = parse_text("-- asm\nexit\n-- error\n")
    assert empty.error == "" and empty.expects_failure


def test_skips():
    assert parse_text("-- asm\nexit\n").skip_reason == "no expected result or error"
    assert parse_text("-- result\n0\n").skip_reason == "no instructions"
    assert parse_text("-- asm\n-- result\n0\n").skip_reason == "no instructions"
    skipped = parse_text("-- asm\nexit\n-- no jit\n-- result\n0\n")
    assert skipped.code is None and "'-- no jit' at line 3" in skipped.skip_reason


def test_asm_error_line_is_the_file_line():
    with pytest.raises(AsmError) as exc:
        parse_text("# one\n# two\n-- asm\nmov %r0, 1\n\nmov %r0, %r99\nexit\n-- result\n0\n")
    assert exc.value.line == 6


@pytest.mark.parametrize(
    "text,line,words",
    [
        ("-- asm\nexit\n-- mem\n0g\n-- result\n0\n", 4, "invalid memory byte '0g'"),
        ("-- asm\nexit\n-- mem\n001\n-- result\n0\n", 4, "two hex digits"),
        ("-- asm\nexit\n-- result\nzero\n", 4, "invalid result"),
        ("-- asm\nexit\n-- result\n0x10000000000000000\n", 4, "64"),
        ("-- raw\n0xzz\n-- result\n0\n", 2, "invalid raw instruction"),
        ("-- raw\n0x10000000000000000\n-- result\n0\n", 2, "64 bits"),
    ],
)
def test_format_errors(text, line, words):
    with pytest.raises(FormatError) as exc:
        parse_text(text, name="f")
    assert exc.value.line == line and words in str(exc.value)
