"""What a hardware model allows (map types, entry sizes, map count, helpers, program length), and
the refusals of programs that exceed it, driven through ``bpfctl exec --model``."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from bpfmc.worker.model import HardwareModel, ModelError


def bpfctl(*args, check=None):
    proc = subprocess.run([sys.executable, "-m", "bpfmc.client.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300)
    if check is not None:
        assert proc.returncode == check, (proc.returncode, proc.stdout, proc.stderr)
    return proc


# -- the model ------------------------------------------------------------------------------------

def test_nfp_like_preset_loads_with_its_limits():
    m = HardwareModel.preset("nfp-like")
    assert (m.cores, m.clock_hz, m.max_insns, m.stack_size) == (60, 800_000_000, 2800, 512)
    assert m.map_types == ("array", "hash") and m.max_map_entry_bytes == 64 and m.max_maps == 0
    assert 1 in m.helpers and 5 not in m.helpers  # map_lookup_elem yes, ktime_get_ns no
    assert m.cost("load") > 10 * m.cost("alu") and m.cost("store") > 10 * m.cost("alu")


def test_limits_default_to_none():
    m = HardwareModel.preset("generic")
    assert (m.map_types, m.max_map_entry_bytes, m.max_maps, m.helpers) == ((), 0, 0, None)


def test_toml_with_limits_round_trips(tmp_path):
    f = tmp_path / "nic.toml"
    f.write_text('name = "nic"\nmax_insns = 100\nmap_types = ["BPF_MAP_TYPE_HASH", "array", "hash"]\n'
                 'max_map_entry_bytes = 32\nmax_maps = 2\nhelpers = [3, 1]\n[cycles]\nload = 9\n')
    m = HardwareModel.load(f)
    # Names are canonical and deduplicated; helper ids sorted: the model compares as data.
    assert m.map_types == ("hash", "array") and m.helpers == (1, 3)
    d = m.to_dict()
    assert d["map_types"] == ["hash", "array"] and d["max_map_entry_bytes"] == 32
    assert d["max_maps"] == 2 and d["helpers"] == [1, 3]
    assert HardwareModel.from_dict(d) == m
    assert HardwareModel.from_dict(HardwareModel.preset("generic").to_dict()).helpers is None


@pytest.mark.parametrize("toml, message", [
    ('map_types = "array"', "map_types must be a list"),
    ('map_types = ["array", "nope"]', "unknown map type 'nope'"),
    ("map_types = [2]", "map_types entries must be names"),
    ("max_map_entry_bytes = -8", "max_map_entry_bytes must be a non-negative integer"),
    ('max_maps = "3"', "max_maps must be a non-negative integer"),
    ("max_maps = true", "max_maps must be a non-negative integer"),
    ("helpers = 1", "helpers must be a list"),
    ("helpers = [1, 0]", "helpers entries must be positive helper ids"),
    ('helpers = ["map_lookup_elem"]', "helpers entries must be positive helper ids"),
    ("max_map = 3", "unknown model keys ['max_map']"),
])
def test_bad_limit_values_are_refused(tmp_path, toml, message):
    f = tmp_path / "bad.toml"
    f.write_text(f'name = "bad"\n{toml}\n')
    with pytest.raises(ModelError, match=re.escape(message)):
        HardwareModel.load(f)
    # The CLI reports it as a user error, not a traceback.
    prog = tmp_path / "p.s"
    prog.write_text("mov %r0, 1\nexit\n")
    proc = bpfctl("exec", prog, "--model", f, "--data", "00", check=2)
    assert message in proc.stderr and "Traceback" not in proc.stderr


# -- refusals through bpfctl ----------------------------------------------------------------------

PROLOGUE = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"


def xdp_with_map(map_type: str, value_type: str = "__u64", body: str = "") -> str:
    return PROLOGUE + f"""
struct {{
	__uint(type, {map_type});
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, {value_type});
}} table SEC(".maps");

SEC("xdp")
int prog(struct xdp_md *ctx)
{{
	__u32 key = 1;
	{value_type} *v = bpf_map_lookup_elem(&table, &key);
	{body}
	return v ? XDP_DROP : XDP_PASS;
}}
char LICENSE[] SEC("license") = "GPL";
"""


def test_within_limits_runs_and_is_costed(bpf_cc):
    obj = bpf_cc(xdp_with_map("BPF_MAP_TYPE_HASH"))
    out = json.loads(bpfctl("exec", obj, "--model", "nfp-like", "--data", "00" * 64, "--json", check=0).stdout)
    run = out["runs"][0]
    assert out["model"] == "nfp-like" and run["r0"] == 2  # XDP_PASS: the hash map is empty
    assert run["cycles"] >= 150 + run["insns"]  # map_lookup_elem's cost on this target


def test_lru_map_is_refused_naming_the_limit(bpf_cc):
    obj = bpf_cc(xdp_with_map("BPF_MAP_TYPE_LRU_HASH"))
    proc = bpfctl("exec", obj, "--model", "nfp-like", "--data", "00" * 64, check=2)
    assert "model 'nfp-like' allows only array, hash maps: map 'table' is lru_hash" in proc.stderr
    assert "Traceback" not in proc.stderr
    bpfctl("exec", obj, "--data", "00" * 64, check=0)  # the generic model allows it


def test_entry_too_big_is_refused(bpf_cc):
    # round_up(4, 8) + round_up(60, 8) = 8 + 64 = 72 > 64, though 4 + 60 would fit.
    obj = bpf_cc(xdp_with_map("BPF_MAP_TYPE_ARRAY", "struct { char b[60]; }"))
    proc = bpfctl("exec", obj, "--model", "nfp-like", "--data", "00" * 64, check=2)
    assert ("model 'nfp-like' allows at most 64 bytes per entry (round_up(key, 8) + round_up(value, 8)); "
            "map 'table' needs 72") in proc.stderr


def test_entry_at_the_bound_is_allowed(bpf_cc):
    obj = bpf_cc(xdp_with_map("BPF_MAP_TYPE_ARRAY", "struct { char b[56]; }"))  # 8 + 56 = 64
    out = json.loads(bpfctl("exec", obj, "--model", "nfp-like", "--data", "00" * 64, "--json", check=0).stdout)
    assert out["runs"][0]["r0"] == 1  # an array always has the element: XDP_DROP


def test_global_data_counts_as_an_array_map(bpf_cc):
    src = PROLOGUE + """
static volatile __u64 small;
static volatile char big[128];

SEC("xdp")
int prog(struct xdp_md *ctx)
{
	small++;
	big[ctx->rx_queue_index & 127] = 1;
	return XDP_PASS;
}
char LICENSE[] SEC("license") = "GPL";
"""
    proc = bpfctl("exec", bpf_cc(src), "--model", "nfp-like", "--data", "00" * 64, check=2)
    # .bss is one array map whose single value holds every variable: 8 + 136 bytes.
    assert "allows at most 64 bytes per entry" in proc.stderr and "needs 144" in proc.stderr


def test_helper_outside_the_list_is_refused(bpf_cc):
    src = PROLOGUE + """
SEC("xdp")
int prog(struct xdp_md *ctx)
{
	return bpf_ktime_get_ns() & 1;
}
char LICENSE[] SEC("license") = "GPL";
"""
    proc = bpfctl("exec", bpf_cc(src), "--model", "nfp-like", "--data", "00" * 64, check=2)
    assert "model 'nfp-like' allows only helpers 1, 2, 3, 7, 44, 65" in proc.stderr
    assert "calls helper 5 (bpf_ktime_get_ns)" in proc.stderr


def test_too_many_maps_is_refused(bpf_cc, tmp_path):
    model = tmp_path / "one-map.toml"
    model.write_text('name = "one-map"\nmax_maps = 1\n')
    src = xdp_with_map("BPF_MAP_TYPE_ARRAY").replace(
        'SEC("xdp")', 'struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1);\n'
        '\t__type(key, __u32); __type(value, __u32); } other SEC(".maps");\n\nSEC("xdp")')
    src = src.replace("\t\n\treturn", "\t__u32 *o = bpf_map_lookup_elem(&other, &key);\n\tif (o) *o += 1;\n\treturn")
    proc = bpfctl("exec", bpf_cc(src), "--model", model, "--data", "00" * 64, check=2)
    assert "model 'one-map' allows at most 1 maps; the programs use 2" in proc.stderr


def test_program_over_2800_instructions_is_refused(tmp_path):
    long_s = tmp_path / "long.s"
    long_s.write_text("mov %r0, 0\n" + "add %r0, 1\n" * 2799 + "exit\n")  # 2,801 instructions
    proc = bpfctl("exec", long_s, "--model", "nfp-like", "--data", "00", check=2)
    assert "programs have 2801 instructions; model 'nfp-like' allows at most 2800" in proc.stderr
    ok_s = tmp_path / "ok.s"
    ok_s.write_text("mov %r0, 0\n" + "add %r0, 1\n" * 2798 + "exit\n")  # exactly 2,800
    out = json.loads(bpfctl("exec", ok_s, "--model", "nfp-like", "--data", "00", "--json", check=0).stdout)
    assert out["runs"][0]["r0"] == 2798
