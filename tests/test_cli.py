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
    # Bounded (r2 <= 64), so the verifier sees the loop end, as the kernel's would need to.
    f.write_text("mov %r0, 0\njgt %r2, 64, out\nloop:\nadd %r0, 1\njlt %r0, %r2, loop\nout:\nexit\n")
    return f


def test_exec_json_shape(loop_s):
    out = json.loads(bpfctl("exec", loop_s, "--data", "00" * 5, "--mem", "0102", "--json", check=0).stdout)
    assert out["program"] == "loop" and out["type"] == "raw" and out["model"] == "generic"
    assert out["runs"] == [{"r0": 5, "insns": 13, "cycles": 13}, {"r0": 2, "insns": 7, "cycles": 7}]
    assert out["totals"] == {"runs": 2, "faults": 0, "insns": 20, "cycles": 20}


def test_exec_plain_prints_r0_and_repeat(loop_s, tmp_path):
    data = tmp_path / "in.bin"
    data.write_bytes(bytes(3))
    proc = bpfctl("exec", loop_s, "--data-file", data, "--repeat", "2", check=0)
    assert proc.stdout.split("\n")[:2] == ["run 0: 0x3", "run 1: 0x3"]


def test_exec_model_changes_cycles(loop_s):
    out = json.loads(bpfctl("exec", loop_s, "--data", "0000", "--model", "hbpf", "--json", check=0).stdout)
    assert out["runs"][0]["cycles"] == 1 + 2 + 2 * 3 + 2  # mov, the bound check, 2 x (add, jlt), exit


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
    assert len(out.read_bytes()) == 40
    text = bpfctl("disasm", out, check=0).stdout
    assert text.splitlines() == ["mov %r0, 0", "jgt %r2, 64, +2", "add %r0, 1", "jlt %r0, %r2, -2", "exit"]
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


# -- ELF objects --------------------------------------------------------------------------------

ICMP = bytes.fromhex("ffffffffffff020000000001" "0800" "45000054000040004001" "0000" "0a0000010a000002") + bytes(64)
TCP = bytes.fromhex("ffffffffffff020000000001" "0800" "45000028000040004006" "0000" "0a0000010a000002") + bytes(20)


@pytest.fixture
def xdp_count(bpf_cc):
    from conftest import REPO

    return bpf_cc(REPO / "examples" / "xdp_count.c")


def test_exec_elf_object_with_per_cpu_map(xdp_count):
    out = json.loads(bpfctl("exec", xdp_count, "--data", ICMP.hex(), "--data", TCP.hex(), "--data", TCP.hex(),
                            "--cores", "2", "--cpu", "1", "--json", "--dump-maps", check=0).stdout)
    assert out["program"] == "count_protocols" and out["type"] == "xdp"
    assert [r["r0"] for r in out["runs"]] == [1, 2, 2]  # XDP_DROP for ICMP, XDP_PASS for TCP
    counts = {e["key"]: e for e in out["maps"]["proto_count"]["entries"]}
    assert counts["06000000"]["per_cpu"] == ["0000000000000000", "0200000000000000"]  # one row per core
    assert counts["06000000"]["sum"] == "0200000000000000"
    assert counts["01000000"]["sum"] == "0100000000000000"
    assert out["maps"]["proto_count"]["type"] == "percpu_array"


def test_exec_map_update_before_the_first_input(xdp_count):
    key, value = "06000000", "0a00000000000000"
    out = json.loads(bpfctl("exec", xdp_count, "--data", TCP.hex(), "--map-update",
                            f"proto_count:{key}:{value}", "--json", "--dump-maps", check=0).stdout)
    entry = next(e for e in out["maps"]["proto_count"]["entries"] if e["key"] == key)
    assert entry["sum"] == "0b00000000000000"  # 10 set before the run, +1 by it


@pytest.mark.parametrize("args, message", [
    (["--program", "nope"], "no program or section 'nope'"),
    (["--map-update", "nope:00:00"], "no map 'nope'"),
    (["--map-update", "proto_count:00:0000000000000000"], "key must be 4 bytes"),
    (["--map-update", "proto_count:00000000:00"], "per-CPU value must be"),
    (["--data", "0000"], "needs an Ethernet frame of at least 14 bytes"),
])
def test_exec_elf_user_errors(xdp_count, args, message):
    proc = bpfctl("exec", xdp_count, *args, check=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_exec_broken_objects_exit_2(xdp_count, tmp_path):
    data = xdp_count.read_bytes()
    for name, blob in [("truncated.o", data[: len(data) // 3]), ("flipped.o", data[:40] + b"\xff" * 8 + data[48:])]:
        f = tmp_path / name
        f.write_bytes(blob)
        proc = bpfctl("exec", f, "--data", TCP.hex())
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.startswith("bpfctl: error:") and "Traceback" not in proc.stderr
