"""bpfctl's offline commands, driven as a user would: a subprocess, exit codes, JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import CONFORMANCE


def bpfctl(*args, check=None):
    proc = subprocess.run([sys.executable, "-m", "bpfmc.client.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


@pytest.fixture
def loop_s(tmp_path):
    f = tmp_path / "loop.s"
    f.write_text("mov %r0, 0\nloop:\nadd %r0, 1\njlt %r0, %r2, loop\nexit\n")
    return f


def test_exec_json_shape(loop_s):
    out = json.loads(bpfctl("exec", loop_s, "--data", "00" * 5, "--mem", "0102", "--json", check=0).stdout)
    assert out["program"] == "loop" and out["type"] == "raw" and out["model"] == "generic"
    assert out["runs"] == [{"r0": 5, "insns": 12, "cycles": 12}, {"r0": 2, "insns": 6, "cycles": 6}]
    assert out["totals"] == {"runs": 2, "faults": 0, "insns": 18, "cycles": 18}


def test_exec_plain_prints_r0_and_repeat(loop_s, tmp_path):
    data = tmp_path / "in.bin"
    data.write_bytes(bytes(3))
    proc = bpfctl("exec", loop_s, "--data-file", data, "--repeat", "2", check=0)
    assert proc.stdout.split("\n")[:2] == ["run 0: 0x3", "run 1: 0x3"]


def test_exec_model_changes_cycles(loop_s):
    out = json.loads(bpfctl("exec", loop_s, "--data", "0000", "--model", "hbpf", "--json", check=0).stdout)
    assert out["runs"][0]["cycles"] == 1 + 2 * 3 + 2


def test_exec_fault_exit_3_still_prints_json(tmp_path):
    f = tmp_path / "oob.s"
    f.write_text("ldxdw %r0, [%r1+8]\nexit\n")
    proc = bpfctl("exec", f, "--data", "00", "--json", check=3)
    err = json.loads(proc.stdout)["runs"][0]["error"]
    assert err["pc"] == 0 and err["kind"] == "out_of_bounds_load" and "input+8" in err["message"]


@pytest.mark.parametrize("content, args, message", [
    ("mov %r50, 1\nexit\n", [], "line 1: invalid register"),
    ("mov %r0, 1\n", [], "program refused: pc 0"),
    ("mov %r0, 1\nexit\n", ["--data", "xyz"], "not a hex byte string"),
    ("mov %r0, 1\nexit\n", ["--model", "nope"], "unknown model preset"),
    ("mov %r0, 1\nexit\n", ["--frobnicate"], "unrecognized arguments"),
])
def test_exec_user_errors_exit_2_without_traceback(tmp_path, content, args, message):
    f = tmp_path / "p.s"
    f.write_text(content)
    proc = bpfctl("exec", f, *args, check=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_exec_missing_file_and_elf(tmp_path):
    assert "No such file" in bpfctl("exec", tmp_path / "none.s", check=2).stderr
    elf = tmp_path / "x.o"
    elf.write_bytes(b"\x7fELF" + bytes(60))
    assert "ELF" in bpfctl("exec", elf, check=2).stderr


def test_asm_then_disasm_round_trip(loop_s, tmp_path):
    out = tmp_path / "loop.bin"
    bpfctl("asm", loop_s, "-o", out, check=0)
    assert len(out.read_bytes()) == 32
    text = bpfctl("disasm", out, check=0).stdout
    assert text.splitlines() == ["mov %r0, 0", "add %r0, 1", "jlt %r0, %r2, -2", "exit"]
    listing = bpfctl("disasm", out, "--style", "llvm", check=0).stdout
    assert "if r0 < r2 goto -0x2" in listing


@pytest.mark.skipif(CONFORMANCE is None, reason="shared conformance data not found")
def test_conformance_command_passes_the_suite():
    proc = bpfctl("conformance", CONFORMANCE / "tests", check=0)
    assert proc.stdout.strip().splitlines()[-1] == "313 passed, 0 failed"


@pytest.mark.skipif(CONFORMANCE is None, reason="shared conformance data not found")
def test_conformance_command_reports_failures(tmp_path):
    for name in ("incorrect_return_value_high_bits.data", "unused-add_imm-src.data", "empty.data"):
        (tmp_path / name).write_bytes((CONFORMANCE / "negative" / name).read_bytes())
    proc = bpfctl("conformance", tmp_path, "--json", check=3)
    out = json.loads(proc.stdout)
    assert (out["passed"], out["failed"], out["skipped"]) == (1, 1, 1)
    assert out["failures"][0]["name"] == "incorrect_return_value_high_bits"
