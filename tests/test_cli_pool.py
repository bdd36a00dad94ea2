"""``bpfctl exec`` on the worker pool: many emulated cores, steering, merged per-CPU maps,
statistics, determinism and record/replay, driven as a user would."""

from __future__ import annotations

import json

import pytest
from test_cli import bpfctl
from test_pool import DET_PROG, frames

from bpfmc.worker.steering import Steering


@pytest.fixture
def xdp_count(bpf_cc):
    from conftest import REPO

    return bpf_cc(REPO / "examples" / "xdp_count.c")


def _frame_args(n: int, seed: int = 1) -> tuple[list[str], list[bytes]]:
    blob, lengths, _ = frames(n, seed)
    out, off = [], 0
    for ln in lengths.tolist():
        out.append(bytes(blob[off:off + ln]))
        off += ln
    return [a for f in out for a in ("--data", f.hex())], out


def test_pool_exec_rss_per_cpu_rows_sum_and_stats(xdp_count):
    import numpy as np

    args, frames_ = _frame_args(24)
    doc = json.loads(bpfctl("exec", xdp_count, *args, "--cores", "4", "--workers", "2", "--steer", "rss",
                            "--json", "--dump-maps", "--stats", check=0).stdout)
    blob = np.frombuffer(b"".join(frames_), np.uint8)
    offsets = np.concatenate(([0], np.cumsum([len(f) for f in frames_])))
    expect = Steering(4, "rss").steer(blob, offsets).tolist()
    assert [r["core"] for r in doc["runs"]] == expect
    assert all(r["r0"] == 2 for r in doc["runs"])  # UDP: XDP_PASS
    udp = {e["key"]: e for e in doc["maps"]["proto_count"]["entries"]}["11000000"]
    assert [int.from_bytes(bytes.fromhex(r), "little") for r in udp["per_cpu"]] == \
        [expect.count(c) for c in range(4)]
    assert int.from_bytes(bytes.fromhex(udp["sum"]), "little") == 24
    st = doc["stats"]
    assert st["cores"] == 4 and st["workers"] == 2
    assert [c["events"] for c in st["per_core"]] == [expect.count(c) for c in range(4)]
    prog = st["programs"][0]
    assert prog["events"] == 24 and prog["cycles"]["p50"] > 0 and prog["model_events_per_s"] > 0


def test_pool_exec_plain_text_shows_cores_and_stats(xdp_count):
    args, _ = _frame_args(4)
    proc = bpfctl("exec", xdp_count, *args, "--cores", "2", "--stats", check=0)
    assert proc.stdout.splitlines()[:2] == ["run 0: [core 0] 0x2", "run 1: [core 1] 0x2"]
    assert "model sustains" in proc.stderr and "core 1 (worker" in proc.stderr


def test_record_on_two_workers_replays_identically_on_one(bpf_cc, tmp_path):
    obj = bpf_cc(DET_PROG)
    rec = tmp_path / "run.rec"
    args, _ = _frame_args(40, seed=3)
    first = json.loads(bpfctl("exec", obj, *args, "--cores", "4", "--workers", "2", "--steer", "rss",
                              "--deterministic", "--seed", "5", "--record", rec, "--json", "--dump-maps",
                              check=0).stdout)
    again = json.loads(bpfctl("exec", obj, "--replay", rec, "--workers", "1", "--json", "--dump-maps",
                              check=0).stdout)
    assert again["runs"] == first["runs"] and again["maps"] == first["maps"]
    other = json.loads(bpfctl("exec", obj, *args, "--cores", "4", "--workers", "1", "--steer", "rss",
                              "--deterministic", "--seed", "6", "--json", "--dump-maps", check=0).stdout)
    assert other["maps"] != first["maps"]  # the seed matters, so the equality above means something


@pytest.mark.parametrize(("extra", "message"), [
    (["--cpu", "1", "--steer", "rss"], "cannot be combined with --steer"),
    (["--cores", "2", "--cpu", "5", "--workers", "1"], "--cpu 5 does not exist"),
    (["--workers", "0"], "--workers must be at least 1"),
    (["--replay", "/nonexistent.rec"], "give no --data"),
])
def test_pool_user_errors_exit_2(xdp_count, extra, message):
    args, _ = _frame_args(1)
    proc = bpfctl("exec", xdp_count, *args, *extra, check=2)
    assert message in proc.stderr


def test_replay_refuses_another_program_and_junk(xdp_count, bpf_cc, tmp_path):
    rec = tmp_path / "run.rec"
    args, _ = _frame_args(2)
    bpfctl("exec", xdp_count, *args, "--cores", "2", "--record", rec, check=0)
    proc = bpfctl("exec", bpf_cc(DET_PROG), "--replay", rec, check=2)
    assert "recorded with another program" in proc.stderr
    assert "cannot read /nonexistent.rec" in bpfctl("exec", xdp_count, "--replay", "/nonexistent.rec",
                                                    check=2).stderr
    junk = tmp_path / "junk.rec"
    junk.write_bytes(b"hello")
    assert "not a bpfmc recording" in bpfctl("exec", xdp_count, "--replay", junk, check=2).stderr


def test_assembly_runs_on_the_pool(tmp_path):
    prog = tmp_path / "cpu.s"
    prog.write_text("call 8\nexit\n")  # bpf_get_smp_processor_id
    doc = json.loads(bpfctl("exec", prog, "--data", "00", "--repeat", "6", "--cores", "3", "--json",
                            check=0).stdout)
    assert [r["r0"] for r in doc["runs"]] == [0, 1, 2, 0, 1, 2]
    assert [r["core"] for r in doc["runs"]] == [0, 1, 2, 0, 1, 2]
