"""``bpfctl verify`` and the verification ``bpfctl exec`` does first, driven as a user would."""

from __future__ import annotations

import json

import pytest
from test_cli import bpfctl

NULL_DEREF = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
         __type(key, __u32); __type(value, __u64); } counts SEC(".maps");
SEC("xdp")
int count(struct xdp_md *ctx) {
    __u32 k = 1;
    __u64 *v = bpf_map_lookup_elem(&counts, &k);
    return *v ? XDP_PASS : XDP_DROP;   /* no NULL check: the kernel refuses this */
}
SEC("xdp")
int fine(struct xdp_md *ctx) { return XDP_PASS; }
char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture
def null_deref(bpf_cc):
    return bpf_cc(NULL_DEREF)


def test_verify_accepts_and_reports_statistics(tmp_path):
    prog = tmp_path / "ok.s"
    prog.write_text("mov %r0, 0\njgt %r2, 16, out\nloop:\nadd %r0, 1\njlt %r0, %r2, loop\nout:\nexit\n")
    proc = bpfctl("verify", prog, check=0)
    assert proc.stdout.startswith("ok (raw): accepted;") and "instructions processed" in proc.stdout
    doc = json.loads(bpfctl("verify", prog, "--json", check=0).stdout)
    assert doc["accepted"] and doc["programs"][0]["stats"]["insns_processed"] > 0
    assert doc["programs"][0]["error"] is None


def test_verify_rejects_with_the_cause_first(null_deref):
    proc = bpfctl("verify", null_deref, "--program", "count", check=1)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("count (xdp): rejected")
    assert "R0 may be NULL" in lines[1] and "bpf_map_lookup_elem" in lines[1] and "check it against 0" in lines[1]
    doc = json.loads(bpfctl("verify", null_deref, "--json", check=1).stdout)
    verdicts = {p["program"]: p["accepted"] for p in doc["programs"]}
    assert verdicts == {"count": False, "fine": True} and not doc["accepted"]
    err = next(p["error"] for p in doc["programs"] if p["program"] == "count")
    assert err["pc"] >= 0 and "NULL" in err["message"]


def test_verify_log_levels(null_deref):
    quiet = bpfctl("verify", null_deref, "--program", "count", "--log-level", "0", check=1).stdout
    loud = bpfctl("verify", null_deref, "--program", "count", "--log-level", "2", check=1).stdout
    assert len(loud.splitlines()) > len(quiet.splitlines())
    assert "R1=" in loud  # level 2: register states along the way


def test_exec_refuses_what_the_verifier_rejects_unless_told(null_deref):
    frame = "ff" * 14
    proc = bpfctl("exec", null_deref, "--program", "count", "--data", frame, check=1)
    assert "the verifier refused count" in proc.stderr and "R0 may be NULL" in proc.stderr
    # --no-verify runs it: the runtime bounds check turns the NULL dereference into a fault.
    ran = bpfctl("exec", null_deref, "--program", "count", "--data", frame, "--no-verify", "--json", check=3)
    assert json.loads(ran.stdout)["runs"][0]["error"]["kind"] == "out_of_bounds_load"


def test_unprivileged_rules_are_stricter(tmp_path):
    leak = tmp_path / "leak.s"
    leak.write_text("mov %r0, %r10\nexit\n")  # returns a stack pointer: root may, others may not
    bpfctl("verify", leak, "--type", "socket_filter", check=0)
    proc = bpfctl("verify", leak, "--type", "socket_filter", "--unprivileged", check=1)
    assert "leak" in proc.stdout.lower() or "pointer" in proc.stdout.lower()


@pytest.mark.parametrize(("name", "content", "extra", "message"), [
    ("prog.bin", b"\x95" + bytes(7), [], "a raw program needs --type"),
    ("bad.s", b"mov %r0, 1\n", [], "program refused"),       # falls off the end: structural
    ("junk.s", b"frobnicate %r0\n", [], "junk.s"),
])
def test_verify_input_errors_exit_2(tmp_path, name, content, extra, message):
    f = tmp_path / name
    f.write_bytes(content)
    assert message in bpfctl("verify", f, *extra, check=2).stderr


def test_verify_missing_file_and_unknown_program(null_deref, tmp_path):
    assert "cannot read" in bpfctl("verify", tmp_path / "none.o", check=2).stderr
    assert "no program or section 'nope'" in bpfctl("verify", null_deref, "--program", "nope", check=2).stderr


def test_exec_of_raw_slots_defaults_to_the_raw_type(tmp_path):
    prog = tmp_path / "two.bin"
    prog.write_bytes(bytes.fromhex("b700000002000000" "9500000000000000"))  # mov r0, 2; exit
    assert bpfctl("exec", prog, check=0).stdout.strip() == "0x2"
    assert "accepted" in bpfctl("verify", prog, "--type", "raw", check=0).stdout
