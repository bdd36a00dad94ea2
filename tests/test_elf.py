"""The ELF object loader (ebpf/elf.py): small C programs compiled at test time, checked for
what the loader makes of them, against libbpf where the host kernel allows, and fuzzed.

Expected values come from outside the loader wherever possible: map shapes from libbpf's
view of the same object, struct layouts for CO-RE from bpftool's dump of the kernel's BTF,
call targets from the symbol layout the loader reports (and, for calls, the engine's result).
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import BPF_CFLAGS, CLANG, SHARED
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfmc.ebpf import maps as M
from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.btf import Btf, IntField
from bpfmc.ebpf.elf import ElfError, ObjectFile, load_object, program_type_for_section
from bpfmc.ebpf.insn import pcs
from bpfmc.ebpf.validate import validate

HEADERS = "#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n"
LICENSE = '\nchar LICENSE[] SEC("license") = "GPL";\n'
VMLINUX = Path("/sys/kernel/btf/vmlinux")


def lddws(prog) -> list[tuple[int, int, int, int]]:
    """``(pc, src, first imm, second imm)`` of every lddw with a pseudo source."""
    insns = prog.insns()
    return [(pc, i.src, i.imm & 0xFFFFFFFF, i.imm >> 32)
            for pc, i in zip(pcs(insns), insns, strict=True) if i.is_wide and i.src]


def calls(prog) -> list[tuple[int, int]]:
    """``(pc, target pc)`` of every bpf-to-bpf call."""
    insns = prog.insns()
    return [(pc, pc + i.imm + 1) for pc, i in zip(pcs(insns), insns, strict=True)
            if i.opcode == op.CALL and i.src == op.BPF_PSEUDO_CALL]


def check_programs(obj: ObjectFile) -> None:
    for prog in obj.programs.values():
        validate(prog.code, allow_pseudo=True)
        for _pc, src, lo, hi in lddws(prog):
            if src in (op.BPF_PSEUDO_MAP_IDX, op.BPF_PSEUDO_MAP_IDX_VALUE):
                assert lo < len(obj.maps)
            if src == op.BPF_PSEUDO_MAP_IDX_VALUE:
                assert hi <= obj.maps[lo].value_size
            if src == op.BPF_PSEUDO_MAP_IDX:
                assert hi == 0


# --- section names -> program types (pure) ----------------------------------------------------

@pytest.mark.parametrize("section, prog_type, kernel_type, attach", [
    ("xdp", "xdp", "xdp", ""),
    ("xdp/anything", "xdp", "xdp", "anything"),
    ("xdp.frags", "xdp", "xdp", ""),
    ("socket", "socket_filter", "socket_filter", ""),
    ("socket/1", "socket_filter", "socket_filter", "1"),
    ("tc", "sched_cls", "sched_cls", ""),
    ("tc/ingress", "sched_cls", "sched_cls", "ingress"),
    ("classifier", "sched_cls", "sched_cls", ""),
    ("classifier/egress", "sched_cls", "sched_cls", "egress"),
    ("tcx/ingress", "sched_cls", "sched_cls", ""),
    ("tcx/egress", "sched_cls", "sched_cls", ""),
    ("kprobe/do_sys_open", "raw", "kprobe", "do_sys_open"),
    ("kretprobe/do_sys_open", "raw", "kprobe", "do_sys_open"),
    ("uprobe//bin/sh:main", "raw", "kprobe", "/bin/sh:main"),
    ("usdt/libc:probe", "raw", "kprobe", "libc:probe"),
    ("tracepoint/syscalls/sys_enter_openat", "raw", "tracepoint", "syscalls/sys_enter_openat"),
    ("tp/sched/sched_switch", "raw", "tracepoint", "sched/sched_switch"),
    ("raw_tp/sys_enter", "raw", "raw_tracepoint", "sys_enter"),
    ("raw_tracepoint/sys_enter", "raw", "raw_tracepoint", "sys_enter"),
    ("raw_tp.w/sys_enter", "raw", "raw_tracepoint_writable", "sys_enter"),
    ("tp_btf/sched_switch", "raw", "tracing", "sched_switch"),
    ("fentry/do_unlinkat", "raw", "tracing", "do_unlinkat"),
    ("fexit/do_unlinkat", "raw", "tracing", "do_unlinkat"),
    ("fmod_ret/security_x", "raw", "tracing", "security_x"),
    ("perf_event", "raw", "perf_event", ""),
])
def test_section_types(section, prog_type, kernel_type, attach):
    st_ = program_type_for_section(section)
    assert (st_.prog_type, st_.kernel_type, st_.attach, st_.autoload) == (prog_type, kernel_type, attach, True)


def test_section_types_optional_and_overrides():
    assert not program_type_for_section("?xdp").autoload
    assert program_type_for_section("mysec", {"mysec": "tc"}).prog_type == "sched_cls"
    with pytest.raises(ElfError, match="'mysec'.*unknown program type 'bogus'"):
        program_type_for_section("mysec", {"mysec": "bogus"})


@pytest.mark.parametrize("section, message", [
    ("foo/bar", "section 'foo/bar': unknown program section name"),
    ("xdpx", "section 'xdpx': unknown"),
    ("lsm/file_open", "section 'lsm/file_open': program type 'lsm' is not supported"),
    ("cgroup/skb", "'cgroup' is not supported"),
    ("action", "'action' is not supported"),
    ("sk_msg", "'sk_msg' is not supported"),
    ("xdp/devmap", "'xdp/devmap' is not supported"),
])
def test_section_types_refused(section, message):
    with pytest.raises(ElfError, match=message):
        program_type_for_section(section)


# --- program sections --------------------------------------------------------------------------

# (section, kernel type, checked by libbpf 1.1 too)
SECTIONS = [
    ("xdp", "xdp", True), ("socket", "socket_filter", True), ("tc", "sched_cls", True),
    ("classifier/egress", "sched_cls", False), ("tcx/ingress", "sched_cls", False),
    ("kprobe/do_sys_openat2", "kprobe", True), ("kretprobe/do_sys_openat2", "kprobe", True),
    ("tracepoint/syscalls/sys_enter_openat", "tracepoint", True), ("tp/sched/sched_switch", "tracepoint", True),
    ("raw_tp/sys_enter", "raw_tracepoint", True), ("perf_event", "perf_event", True),
    ("fentry/do_unlinkat", "tracing", False),
]


def sections_source(kernel_only: bool = False) -> str:
    body = [HEADERS]
    for i, (sec, _k, in_kernel) in enumerate(SECTIONS):
        if in_kernel or not kernel_only:
            body.append(f'SEC("{sec}") int prog{i}(void *ctx) {{ return {i % 2}; }}\n')
    return "".join(body) + LICENSE


def test_program_sections(bpf_cc):
    obj = load_object(bpf_cc(sections_source()))
    assert list(obj.programs) == [f"prog{i}" for i in range(len(SECTIONS))]
    for i, (sec, ktype, _) in enumerate(SECTIONS):
        prog = obj.programs[f"prog{i}"]
        assert prog.name == f"prog{i}"
        assert prog.meta["section"] == sec
        assert prog.meta["kernel_type"] == ktype
        assert prog.prog_type == program_type_for_section(sec).prog_type
    assert obj.license == "GPL"
    check_programs(obj)


SHARED_C = HEADERS + r"""
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __type(key, __u32); __type(value, __u64); }
    counters SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 64); __type(key, __u32); __type(value, __u32); }
    seen SEC(".maps");

static __always_inline int bump(__u32 k)
{
    __u64 *v = bpf_map_lookup_elem(&counters, &k);
    if (v)
        __sync_fetch_and_add(v, 1);
    return 0;
}
SEC("xdp") int xdp_a(struct xdp_md *ctx) { bump(0); return XDP_PASS; }
SEC("xdp") int xdp_b(struct xdp_md *ctx)
{
    __u32 k = ctx->ingress_ifindex, one = 1;
    bpf_map_update_elem(&seen, &k, &one, BPF_ANY);
    bump(1);
    return XDP_DROP;
}
SEC("socket") int sock(struct __sk_buff *skb) { bump(2); return 0; }
""" + LICENSE


def test_programs_share_maps(bpf_cc):
    obj = load_object(bpf_cc(SHARED_C))
    assert list(obj.programs) == ["xdp_a", "xdp_b", "sock"]
    assert [p.meta["section"] for p in obj.programs.values()] == ["xdp", "xdp", "socket"]
    counters, seen = obj.map_index("counters"), obj.map_index("seen")
    for name, want in (("xdp_a", {counters}), ("xdp_b", {counters, seen}), ("sock", {counters})):
        refs = lddws(obj.programs[name])
        assert {src for _, src, _, _ in refs} == {op.BPF_PSEUDO_MAP_IDX}
        assert {lo for _, _, lo, _ in refs} == want
    check_programs(obj)


def test_program_lookup(bpf_cc):
    obj = load_object(bpf_cc(SHARED_C))
    assert obj.program("xdp_b").name == "xdp_b"
    assert obj.program("socket").name == "sock"  # the only program of its section
    with pytest.raises(KeyError, match=r"section 'xdp' .* several programs \(xdp_a, xdp_b\)"):
        obj.program("xdp")
    with pytest.raises(KeyError, match=r"no program or section 'nope'.*xdp_a \(xdp\), xdp_b \(xdp\), sock \(socket\)"):
        obj.program("nope")
    assert obj.map("seen").map_type == M.BPF_MAP_TYPE_HASH
    with pytest.raises(KeyError, match=r"no map 'nope' in .* \(maps: (seen, counters|counters, seen)\)$"):
        obj.map("nope")


# --- maps --------------------------------------------------------------------------------------

# (declaration body, expected (type, key_size, value_size, max_entries, flags), key_btf, value_btf)
BTF_MAPS = {
    "h": ("__uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 16); __type(key, __u32); __type(value, __u64);",
          (M.BPF_MAP_TYPE_HASH, 4, 8, 16, 0), [IntField(0, 4, False)], [IntField(0, 8, False)]),
    "a": ("__uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 4); __uint(key_size, 4); __uint(value_size, 12);",
          (M.BPF_MAP_TYPE_ARRAY, 4, 12, 4, 0), None, None),
    "pa": ("__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY); __uint(max_entries, 8); __type(key, __u32); "
           "__type(value, struct pair);",
           (M.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 8, 0), [IntField(0, 4, False)],
           [IntField(0, 4, True), IntField(4, 2, False), IntField(8, 8, True)]),
    "ph": ("__uint(type, BPF_MAP_TYPE_PERCPU_HASH); __uint(max_entries, 8); __type(key, struct pair); "
           "__type(value, long);",
           (M.BPF_MAP_TYPE_PERCPU_HASH, 16, 8, 8, 0),
           [IntField(0, 4, True), IntField(4, 2, False), IntField(8, 8, True)], [IntField(0, 8, True)]),
    "lru": ("__uint(type, BPF_MAP_TYPE_LRU_HASH); __uint(max_entries, 32); __type(key, __u64); "
            "__type(value, union both);",
            (M.BPF_MAP_TYPE_LRU_HASH, 8, 8, 32, 0), [IntField(0, 8, False)], None),
    "lpm": ("__uint(type, BPF_MAP_TYPE_LPM_TRIE); __uint(max_entries, 8); __type(key, struct lpm_key); "
            "__type(value, __u32); __uint(map_flags, BPF_F_NO_PREALLOC);",
            (M.BPF_MAP_TYPE_LPM_TRIE, 8, 4, 8, M.BPF_F_NO_PREALLOC),
            [IntField(0, 4, False), IntField(4, 1, False), IntField(5, 1, False), IntField(6, 1, False),
             IntField(7, 1, False)], [IntField(0, 4, False)]),
    "rb": ("__uint(type, BPF_MAP_TYPE_RINGBUF); __uint(max_entries, 4096);",
           (M.BPF_MAP_TYPE_RINGBUF, 0, 0, 4096, 0), None, None),
    "q": ("__uint(type, BPF_MAP_TYPE_QUEUE); __uint(max_entries, 8); __type(value, __u32);",
          (M.BPF_MAP_TYPE_QUEUE, 0, 4, 8, 0), None, [IntField(0, 4, False)]),
    "pe": ("__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY); __uint(key_size, 4); __uint(value_size, 4); "
           "__uint(max_entries, 2);",
           (M.BPF_MAP_TYPE_PERF_EVENT_ARRAY, 4, 4, 2, 0), None, None),
}

BTF_MAPS_C = HEADERS + r"""
struct pair { int lo; unsigned short hi; long long big; };
union both { __u64 u; double d; };
struct lpm_key { __u32 prefixlen; __u8 addr[4]; };
""" + "".join(f"struct {{ {decl} }} {name} SEC(\".maps\");\n" for name, (decl, *_rest) in BTF_MAPS.items()) + r"""
SEC("xdp") int use(struct xdp_md *ctx)
{
    __u32 k = 0;
    struct pair p = {};
    struct lpm_key lk = {32, {10, 0, 0, 1}};
    __u64 k64 = 0;
    int r = 0;
    if (bpf_map_lookup_elem(&h, &k)) r++;
    if (bpf_map_lookup_elem(&a, &k)) r++;
    if (bpf_map_lookup_elem(&pa, &k)) r++;
    if (bpf_map_lookup_elem(&ph, &p)) r++;
    if (bpf_map_lookup_elem(&lru, &k64)) r++;
    if (bpf_map_lookup_elem(&lpm, &lk)) r++;
    if (bpf_ringbuf_output(&rb, &k, 4, 0)) r++;
    if (bpf_map_push_elem(&q, &k, 0)) r++;
    if (bpf_perf_event_output(ctx, &pe, 0, &k, 4)) r++;
    return r ? XDP_PASS : XDP_DROP;
}
""" + LICENSE


def test_btf_maps(bpf_cc):
    obj = load_object(bpf_cc(BTF_MAPS_C))
    assert sorted(m.name for m in obj.maps) == sorted(BTF_MAPS)
    for name, (_decl, shape, key_btf, value_btf) in BTF_MAPS.items():
        spec = obj.map(name)
        assert (spec.map_type, spec.key_size, spec.value_size, spec.max_entries, spec.flags) == shape, name
        assert spec.key_btf == (tuple(key_btf) if key_btf is not None else None), name
        assert spec.value_btf == (tuple(value_btf) if value_btf is not None else None), name
        assert spec.section == ".maps" and spec.initial is None and not spec.frozen
    assert obj.map("pa").is_percpu and not obj.map("h").is_percpu
    assert obj.map("pa").type_name == "percpu_array"
    used = {lo for _, _, lo, _ in lddws(obj.programs["use"])}
    assert used == set(range(len(obj.maps)))
    check_programs(obj)


LEGACY_C = HEADERS + r"""
struct bpf_map_def { unsigned int type, key_size, value_size, max_entries, map_flags; };
struct bpf_map_def SEC("maps") legacy_hash = { .type = BPF_MAP_TYPE_HASH, .key_size = 4, .value_size = 8,
                                               .max_entries = 128 };
struct bpf_map_def SEC("maps") legacy_arr = { .type = BPF_MAP_TYPE_PERCPU_ARRAY, .key_size = 4,
                                              .value_size = 16, .max_entries = 2, .map_flags = 0 };
SEC("socket") int legacy(struct __sk_buff *skb)
{
    __u32 k = 0;
    void *a = bpf_map_lookup_elem(&legacy_hash, &k);
    void *b = bpf_map_lookup_elem(&legacy_arr, &k);
    return a && b;
}
""" + LICENSE


def test_legacy_maps(bpf_cc):
    obj = load_object(bpf_cc(LEGACY_C))
    shapes = {m.name: (m.map_type, m.key_size, m.value_size, m.max_entries, m.section) for m in obj.maps}
    assert shapes == {"legacy_hash": (M.BPF_MAP_TYPE_HASH, 4, 8, 128, "maps"),
                      "legacy_arr": (M.BPF_MAP_TYPE_PERCPU_ARRAY, 4, 16, 2, "maps")}
    refs = [(src, obj.maps[lo].name) for _, src, lo, _ in lddws(obj.programs["legacy"])]
    assert refs == [(op.BPF_PSEUDO_MAP_IDX, "legacy_hash"), (op.BPF_PSEUDO_MAP_IDX, "legacy_arr")]
    check_programs(obj)


GLOBALS_C = HEADERS + r"""
int counter = 0x11223344;
long long big = -2;
__u8 zeros[24];
static int hidden;
const volatile unsigned short limit = 7;
const char greeting[] = "hi";
SEC(".data.extra") __u32 extra = 9;

SEC("tc") int globals(struct __sk_buff *skb)
{
    hidden += limit;
    zeros[5] = greeting[1];
    const char *lit = "a string literal";
    zeros[6] = lit[skb->len & 7];
    extra++;
    bpf_printk("counter %d", counter);
    return counter + big + hidden + zeros[3];
}
""" + LICENSE


def _sym_offsets(path: Path) -> dict[str, int]:
    out = subprocess.run(["llvm-readelf-19", "-s", str(path)], capture_output=True, text=True, check=True).stdout
    offsets = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 8 and parts[3] == "OBJECT":
            offsets[parts[7]] = int(parts[1], 16)
    return offsets


def test_global_data(bpf_cc):
    path = bpf_cc(GLOBALS_C)
    obj = load_object(path)
    data, bss, rodata, extra = (obj.map(n) for n in (".data", ".bss", ".rodata", ".data.extra"))
    strings = obj.map(".rodata.str1.1")
    for spec in (data, bss, rodata, extra, strings):
        assert (spec.map_type, spec.key_size, spec.max_entries) == (M.BPF_MAP_TYPE_ARRAY, 4, 1)
        assert spec.is_global_data and spec.value_size == len(spec.initial)
        assert spec.key_btf == (IntField(0, 4, False),)
    offs = _sym_offsets(path)
    assert struct.unpack_from("<i", data.initial, offs["counter"])[0] == 0x11223344
    assert struct.unpack_from("<q", data.initial, offs["big"])[0] == -2
    assert bss.initial == bytes(bss.value_size) and bss.value_size >= 28  # zeros[24] + hidden
    assert struct.unpack_from("<H", rodata.initial, offs["limit"])[0] == 7
    assert rodata.initial[offs["greeting"]:offs["greeting"] + 3] == b"hi\0"
    assert extra.initial == struct.pack("<I", 9)
    assert b"counter %d\0" in rodata.initial
    assert b"a string literal\0" in strings.initial
    assert rodata.frozen and strings.frozen and not data.frozen and not bss.frozen
    assert rodata.flags & M.BPF_F_RDONLY_PROG and not data.flags & M.BPF_F_RDONLY_PROG
    # Field layout from the DATASEC: counter is a signed int, big a signed 64-bit.
    assert IntField(offs["counter"], 4, True) in data.value_btf
    assert IntField(offs["big"], 8, True) in data.value_btf
    # Every lddw into global data points at a variable's offset inside its map's value.
    refs = {(obj.maps[lo].name, hi) for _, src, lo, hi in lddws(obj.programs["globals"])
            if src == op.BPF_PSEUDO_MAP_IDX_VALUE}
    assert (".data", offs["counter"]) in refs
    assert (".bss", offs["hidden"]) in refs
    assert (".rodata", offs["limit"]) in refs
    assert (".data.extra", 0) in refs
    check_programs(obj)


PROG_ARRAY_C = HEADERS + r"""
int tail_a(struct xdp_md *ctx);
int tail_b(struct xdp_md *ctx);
struct { __uint(type, BPF_MAP_TYPE_PROG_ARRAY); __uint(max_entries, 4); __type(key, __u32);
         __array(values, int (void *)); } jumps SEC(".maps") = {
    .values = { [0] = (void *)&tail_a, [2] = (void *)&tail_b } };

struct inner { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u32); };
struct inner in1 SEC(".maps"), in2 SEC(".maps");
struct { __uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS); __uint(max_entries, 4); __type(key, __u32);
         __array(values, struct inner); } outer SEC(".maps") = { .values = { &in1, [3] = &in2 } };

SEC("xdp") int tail_a(struct xdp_md *ctx) { return XDP_PASS; }
SEC("xdp") int tail_b(struct xdp_md *ctx) { return XDP_DROP; }
SEC("xdp") int entry(struct xdp_md *ctx)
{
    __u32 k = 0;
    if (bpf_map_lookup_elem(&outer, &k))
        bpf_tail_call(ctx, &jumps, 2);
    return XDP_ABORTED;
}
""" + LICENSE


def test_initial_slots(bpf_cc):
    obj = load_object(bpf_cc(PROG_ARRAY_C))
    jumps, outer = obj.map("jumps"), obj.map("outer")
    assert (jumps.map_type, jumps.key_size, jumps.value_size, jumps.max_entries) == (M.BPF_MAP_TYPE_PROG_ARRAY, 4, 4, 4)
    assert jumps.slots == ((0, "tail_a"), (2, "tail_b"))
    assert all(name in obj.programs for _, name in jumps.slots)
    assert (outer.map_type, outer.value_size) == (M.BPF_MAP_TYPE_ARRAY_OF_MAPS, 4)
    assert outer.slots == ((0, "in1"), (3, "in2"))
    assert outer.inner is not None
    assert (outer.inner.map_type, outer.inner.key_size, outer.inner.value_size, outer.inner.max_entries) == (
        M.BPF_MAP_TYPE_ARRAY, 4, 4, 1)
    check_programs(obj)


# --- bpf-to-bpf calls and callbacks --------------------------------------------------------------

CALLS_C = HEADERS + r"""
static __attribute__((noinline)) int leaf(int x) { return x + 1; }
static __attribute__((noinline)) int twice(int x) { return leaf(x) * 2; }
__attribute__((noinline)) int global_fn(int x) { return twice(x) + leaf(100); }
static __attribute__((noinline)) int square(int x) { return x * x; }

static __always_inline __u32 first_word(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    if (data + 4 > end)
        return 0;
    return *(__u32 *)data;
}
SEC("xdp") int calls_a(struct xdp_md *ctx) { return global_fn(first_word(ctx)); }              /* 2(x+1)+101 */
SEC("xdp") int calls_b(struct xdp_md *ctx) { return leaf(first_word(ctx)) + square(5); }       /* x+1+25 */
SEC("xdp") int calls_c(struct xdp_md *ctx) { return twice(square(first_word(ctx) & 0xff)); }  /* 2(x^2+1) */
""" + LICENSE

CALLS_EXPECTED = {
    "calls_a": (lambda x: 2 * (x + 1) + 101, {"calls_a", "global_fn", "twice", "leaf"}),
    "calls_b": (lambda x: x + 1 + 25, {"calls_b", "leaf", "square"}),
    "calls_c": (lambda x: 2 * ((x & 0xFF) ** 2 + 1), {"calls_c", "square", "twice", "leaf"}),
}


def test_subprogram_calls(bpf_cc):
    obj = load_object(bpf_cc(CALLS_C))
    assert list(obj.programs) == list(CALLS_EXPECTED)  # .text functions are not programs
    for name, (_fn, functions) in CALLS_EXPECTED.items():
        prog = obj.programs[name]
        assert set(prog.meta["functions"]) == functions
        assert prog.meta["functions"][name] == 0
        starts = set(prog.meta["functions"].values())
        assert calls(prog) and all(target in starts for _, target in calls(prog))
        # Each subprogram is appended once, in the order first reached, right after the last.
        layout = sorted(prog.meta["functions"].values())
        assert layout[0] == 0 and len(set(layout)) == len(layout)
    check_programs(obj)


@pytest.mark.kernel
def test_subprogram_calls_run_in_kernel(kernel, bpf_cc):
    """Our linked code, loaded raw (not through libbpf), computes what the C says."""
    obj = load_object(bpf_cc(CALLS_C))
    for name, (fn, _functions) in CALLS_EXPECTED.items():
        with kernel.prog_load(obj.programs[name].code, "xdp") as prog:
            for x in (0, 7, 1000):
                packet = struct.pack("<I", x).ljust(64, b"\0")
                assert prog.test_run(packet).retval == fn(x) & 0xFFFFFFFF, (name, x)


LOOP_C = HEADERS + r"""
struct ctx_t { __u64 sum; };
static long add_idx(__u32 idx, void *data) { ((struct ctx_t *)data)->sum += idx; return 0; }
static long add_sq(__u32 idx, void *data) { ((struct ctx_t *)data)->sum += idx * idx; return 0; }
SEC("tc") int looper(struct __sk_buff *skb)
{
    struct ctx_t c = {0};
    bpf_loop(10, add_idx, &c, 0);
    bpf_loop(4, add_sq, &c, 0);
    return c.sum;
}
""" + LICENSE


def test_callbacks(bpf_cc):
    obj = load_object(bpf_cc(LOOP_C))
    prog = obj.programs["looper"]
    funcs = prog.meta["functions"]
    assert set(funcs) == {"looper", "add_idx", "add_sq"}
    refs = [(pc, pc + 1 + lo) for pc, src, lo, hi in lddws(prog) if src == op.BPF_PSEUDO_FUNC and hi == 0]
    assert sorted(t for _, t in refs) == sorted([funcs["add_idx"], funcs["add_sq"]])
    check_programs(obj)


# --- CO-RE -----------------------------------------------------------------------------------------

CORE_C = HEADERS + r"""
#include <bpf/bpf_core_read.h>
struct task_struct { int pid; int tgid; int no_such_field___x; struct task_struct *real_parent; }
    __attribute__((preserve_access_index));
struct task_struct___mine { int tgid; } __attribute__((preserve_access_index));
struct sk_buff { unsigned int len; } __attribute__((preserve_access_index));
struct no_such_type_anywhere { int x; } __attribute__((preserve_access_index));
enum bpf_map_type___local { BPF_MAP_TYPE_RINGBUF___local = 1, NO_SUCH_ENUMERATOR = 2 };

SEC("kprobe/do_exit") int core(struct task_struct *t)
{
    long r = 0;
    r += BPF_CORE_READ(t, real_parent, pid);                                    /* byte_off (x2) */
    r += bpf_core_field_exists(t->no_such_field___x);                          /* 0 */
    r += bpf_core_field_exists(((struct task_struct___mine *)t)->tgid) << 1;   /* 1 */
    r += bpf_core_field_size(t->tgid) << 2;                                    /* 4 */
    r += bpf_core_type_size(struct sk_buff) << 3;
    r += bpf_core_type_exists(struct no_such_type_anywhere) << 4;              /* 0 */
    r += bpf_core_enum_value(enum bpf_map_type___local, BPF_MAP_TYPE_RINGBUF___local) << 5;
    r += bpf_core_enum_value_exists(enum bpf_map_type___local, NO_SUCH_ENUMERATOR) << 6;
    r += __builtin_preserve_field_info(t->pid, BPF_FIELD_SIGNED) << 7;
    return r;
}
""" + LICENSE


def bpftool_struct(btf_file: Path, name: str) -> tuple[int, dict[str, int]]:
    """(size, {member: byte offset}) of a struct, read from bpftool's dump (not our parser)."""
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed")
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(btf_file)], capture_output=True, text=True,
                         check=True).stdout
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if f"STRUCT '{name}' size=" in line:
            size = int(line.split("size=")[1].split()[0])
            members = {}
            for m in lines[i + 1:]:
                if not m.startswith("\t"):
                    break
                members[m.split("'")[1]] = int(m.split("bits_offset=")[1].split()[0]) // 8
            return size, members
    raise AssertionError(f"struct {name} not in {btf_file}")


def imm_values(prog) -> list[int]:
    return [i.imm for i in prog.insns() if i.opcode in (0xB7, 0x18)]  # mov64 imm, lddw


def test_core_against_vmlinux(bpf_cc):
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    obj = load_object(bpf_cc(CORE_C))
    _, task = bpftool_struct(VMLINUX, "task_struct")
    skb_size, _ = bpftool_struct(VMLINUX, "sk_buff")
    # In source order: two offsets (each followed by bpf_probe_read's size argument), field
    # exists x2, field size, type size, type exists, enum value, enum value exists, signed.
    assert imm_values(obj.programs["core"]) == [task["real_parent"], 8, task["pid"], 4, 0, 1, 4, skb_size, 0, 27, 0, 1]
    check_programs(obj)


TARGET_C = r"""
struct task_struct { long pad[3]; struct task_struct *real_parent; char x; int tgid; unsigned int pid; };
struct sk_buff { char data[40]; };
enum bpf_map_type { BPF_MAP_TYPE_UNSPEC, BPF_MAP_TYPE_RINGBUF = 99 };
struct task_struct ts; struct sk_buff skb; enum bpf_map_type mt;
"""


def _btf_file(bpf_cc, source: str, tmp_path: Path) -> Path:
    obj = load_object(bpf_cc(source))
    assert obj.btf is not None
    out = tmp_path / "target.btf"
    out.write_bytes(obj.btf._data)
    return out


def test_core_against_given_target(bpf_cc, tmp_path):
    target = _btf_file(bpf_cc, TARGET_C, tmp_path)
    obj = load_object(bpf_cc(CORE_C), target_btf=target)
    # real_parent at 24, pid at 40 in the target; pid is unsigned there.
    assert imm_values(obj.programs["core"]) == [24, 8, 40, 4, 0, 1, 4, 40, 0, 99, 0, 0]
    # A parsed Btf works as the target too.
    again = load_object(bpf_cc(CORE_C), target_btf=Btf.load(target))
    assert again.programs["core"].code == obj.programs["core"].code


DIRECT_C = HEADERS + r"""
struct rec { unsigned int a; unsigned int b; int s; } __attribute__((preserve_access_index));
SEC("raw_tp/x") int direct(struct rec *p) { return p->%s; }
""" + LICENSE


@pytest.mark.parametrize("field, target, want", [
    # b moved and shrank to 2 bytes: offset and load size follow (unsigned, so zero-extension holds).
    ("b", "struct rec { unsigned long long a; unsigned short b; int s; };", (op.BPF_H, 8)),
    ("b", "struct rec { unsigned int b; };", (op.BPF_W, 0)),
    ("a", "struct rec { char pad[100]; unsigned long long a; };", (op.BPF_DW, 104)),
    # A signed field that changed size cannot be loaded with a different width.
    ("s", "struct rec { long long s; };", "changed size"),
    ("b", "struct rec { int a; };", "field does not exist"),
    ("b", "struct other { int b; };", "field does not exist"),
    ("b", "union rec { int b; };", "field does not exist"),  # a union is not a candidate for a struct
])
def test_core_direct_loads(bpf_cc, tmp_path, field, target, want):
    target_file = _btf_file(bpf_cc, target + " __typeof__(" + target.split("{")[0] + ") r;", tmp_path)
    path = bpf_cc(DIRECT_C % field)
    if isinstance(want, str):
        with pytest.raises(ElfError, match=r"program 'direct' \(section 'raw_tp/x'\), instruction 0: "
                                           rf"CO-RE relocation #0 <byte_off> of struct rec, access '0:\d': .*{want}"):
            load_object(path, target_btf=target_file)
        return
    obj = load_object(path, target_btf=target_file)
    ldx = obj.programs["direct"].insns()[0]
    assert (ldx.opcode, ldx.off) == (op.BPF_LDX | op.BPF_MEM | want[0], want[1])


def test_core_unresolvable(bpf_cc, tmp_path):
    target = _btf_file(bpf_cc, "struct task_struct { int tgid; }; struct task_struct t;", tmp_path)
    with pytest.raises(ElfError, match=r"program 'core' .*instruction \d+: CO-RE relocation #0 <byte_off> of "
                                       r"struct task_struct, access '0:3': the field does not exist"):
        load_object(bpf_cc(CORE_C), target_btf=target)
    with pytest.raises(ElfError, match="target BTF: cannot read"):
        load_object(bpf_cc(CORE_C), target_btf=tmp_path / "missing.btf")


# --- the benchmark objects and libbpf --------------------------------------------------------------

BENCH = sorted((SHARED / "bench").glob("b*.c")) if SHARED is not None else []


def compile_bench(src: Path, tmp_path: Path) -> Path:
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")
    out = tmp_path / (src.stem + ".o")
    subprocess.run([CLANG, *BPF_CFLAGS, f"-I{src.parent}", "-c", str(src), "-o", str(out)], check=True)
    return out


@pytest.mark.parametrize("src", BENCH, ids=[p.stem for p in BENCH])
def test_bench_objects(src, tmp_path):
    obj = load_object(compile_bench(src, tmp_path))
    assert len(obj.programs) == 1
    prog = next(iter(obj.programs.values()))
    assert prog.prog_type == "xdp" and obj.license == "GPL"
    check_programs(obj)


def _spec_shape(spec: M.MapSpec) -> tuple:
    return spec.map_type, spec.key_size, spec.value_size, spec.max_entries, spec.flags


KERNEL_OBJECTS = {
    "shared": SHARED_C,
    "btf_maps": BTF_MAPS_C,
    "globals": GLOBALS_C,
    "prog_array": PROG_ARRAY_C,
    "calls": CALLS_C,
    "loop": LOOP_C,
    "sections": sections_source(kernel_only=True),
}


def compare_with_libbpf(kernel, path: Path) -> None:
    ours = load_object(path)
    with kernel.load_object(path) as theirs:
        assert set(theirs.programs) == set(ours.programs)
        for name, kp in theirs.programs.items():
            assert kp.prog_type == kernel.PROG_TYPES[ours.programs[name].meta["kernel_type"]], name
        assert len(theirs.maps) == len(ours.maps)
        for spec in ours.maps:
            km = theirs.map(spec.name)
            assert (km.map_type, km.key_size, km.value_size, km.max_entries, km.flags) == _spec_shape(spec), spec.name


@pytest.mark.kernel
@pytest.mark.parametrize("name", list(KERNEL_OBJECTS))
def test_maps_match_libbpf(libbpf, bpf_cc, name):
    compare_with_libbpf(libbpf, bpf_cc(KERNEL_OBJECTS[name]))


@pytest.mark.kernel
@pytest.mark.parametrize("src", BENCH, ids=[p.stem for p in BENCH])
def test_bench_matches_libbpf(libbpf, src, tmp_path):
    compare_with_libbpf(libbpf, compile_bench(src, tmp_path))


# --- bad input -------------------------------------------------------------------------------------

def test_not_elf(tmp_path):
    (tmp_path / "t.o").write_text("hello")
    with pytest.raises(ElfError, match=r"t\.o: not an ELF file"):
        load_object(tmp_path / "t.o")
    with pytest.raises(ElfError, match="cannot read"):
        load_object(tmp_path / "missing.o")
    with pytest.raises(ElfError, match="not an ELF file"):
        load_object(b"")


def test_wrong_machine(tmp_path):
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")
    src = tmp_path / "host.c"
    src.write_text("int f(int x) { return x + 1; }\n")
    out = tmp_path / "host.o"
    subprocess.run([CLANG, "-c", str(src), "-o", str(out)], check=True)
    with pytest.raises(ElfError, match=r"ELF machine is \d+ \(.*\), not BPF \(247\)"):
        load_object(out)


def test_big_endian(bpf_cc):
    with pytest.raises(ElfError, match="big-endian"):
        load_object(bpf_cc("int x;", "-target", "bpfeb"))


@pytest.mark.parametrize("flip, message", [
    ((4, 1), "32-bit ELF"),
    ((16, 2), "not a relocatable object"),
    ((58, 32), "section header size is 32"),
])
def test_corrupt_header(bpf_cc, flip, message):
    blob = bytearray(bpf_cc(SHARED_C).read_bytes())
    blob[flip[0]] = flip[1]
    with pytest.raises(ElfError, match=message):
        load_object(bytes(blob))


def test_truncated(bpf_cc):
    blob = bpf_cc(SHARED_C).read_bytes()
    for cut in (10, 63, 64, len(blob) // 2, len(blob) - 1):
        with pytest.raises(ElfError, match="truncated|past the end"):
            load_object(blob[:cut])


@pytest.mark.parametrize("source, message", [
    ('SEC("foo/bar") int f(void *c) { return 0; }',
     "section 'foo/bar': unknown program section name"),
    ('SEC("lsm/file_open") int f(void *c) { return 0; }',
     "section 'lsm/file_open': program type 'lsm' is not supported"),
    ('extern int missing_var; SEC("xdp") int f(void *c) { return missing_var; }',
     r"section '.relxdp' relocation #0 \(R_BPF_64_64 at offset 0\) against symbol 'missing_var' "
     r"\(program 'f' \(section 'xdp'\), instruction 0\): symbol is undefined"),
    ('extern int bpf_kfunc_x(void) __ksym; SEC("xdp") int f(void *c) { return bpf_kfunc_x(); }',
     r"R_BPF_64_32 .* against symbol 'bpf_kfunc_x'.*undefined"),
    ('struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __uint(flavour, 1); } '
     'm SEC(".maps"); SEC("xdp") int f(void *c) { return 0; }',
     "section '.maps': map 'm': unknown attribute 'flavour'"),
    ('struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, int); __uint(key_size, 8); } '
     'm SEC(".maps"); SEC("xdp") int f(void *c) { return 0; }',
     "map 'm': key_size 8 conflicts with the 4-byte __type"),
    ('struct { __uint(max_entries, 1); } m SEC(".maps"); SEC("xdp") int f(void *c) { return 0; }',
     r"map 'm': no map type"),
])
def test_refused_objects(bpf_cc, source, message):
    with pytest.raises(ElfError, match=message):
        load_object(bpf_cc(HEADERS + source + LICENSE))


def test_maps_need_btf(bpf_cc):
    with pytest.raises(ElfError, match=r"section '.maps': BTF-defined maps need the object's BTF"):
        load_object(bpf_cc(SHARED_C, "-g0"))


def test_section_types_option(bpf_cc):
    path = bpf_cc(HEADERS + 'SEC("custom") int f(void *c) { return 0; }' + LICENSE)
    with pytest.raises(ElfError, match="section 'custom'"):
        load_object(path)
    obj = load_object(path, section_types={"custom": "raw"})
    assert obj.programs["f"].prog_type == "raw"
    # .text functions are subprograms, unless .text is given a type.
    text = bpf_cc(HEADERS + "__attribute__((noinline)) int plain(int x) { return x * 3; }\n"
                  'SEC("xdp") int entry(void *c) { return plain(2); }' + LICENSE)
    assert list(load_object(text).programs) == ["entry"]
    both = load_object(text, section_types={".text": "raw"})
    assert set(both.programs) == {"entry", "plain"} and both.programs["plain"].prog_type == "raw"


# --- fuzzing -------------------------------------------------------------------------------------

FUZZ_SOURCES = [SHARED_C, GLOBALS_C, PROG_ARRAY_C, CALLS_C, LOOP_C, LEGACY_C, CORE_C]


def _section_ranges(blob: bytes) -> list[tuple[int, int]]:
    """Byte ranges worth aiming at: the section header table and every section's contents."""
    (shoff,) = struct.unpack_from("<Q", blob, 40)
    (shnum,) = struct.unpack_from("<H", blob, 60)
    ranges = [(0, 64), (shoff, shoff + 64 * shnum)]
    for i in range(shnum):
        sh_type, = struct.unpack_from("<I", blob, shoff + 64 * i + 4)
        off, size = struct.unpack_from("<QQ", blob, shoff + 64 * i + 24)
        if sh_type != 8 and size:  # not NOBITS
            ranges.append((off, off + size))
    return ranges


def test_mutated_objects_fail_cleanly(bpf_cc):
    """Truncated and corrupted objects either load (into programs that validate) or raise
    ElfError: never another exception."""
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux (CORE_C is in the corpus)")
    corpus = [bpf_cc(src).read_bytes() for src in FUZZ_SOURCES]
    for blob in corpus:
        check_programs(load_object(blob))
    ranges = [_section_ranges(blob) for blob in corpus]

    @settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        which = data.draw(st.integers(0, len(corpus) - 1))
        buf = bytearray(corpus[which])
        for _ in range(data.draw(st.integers(0, 6))):
            lo, hi = data.draw(st.sampled_from(ranges[which]))
            pos = data.draw(st.integers(lo, max(lo, hi - 1)))
            value = data.draw(st.one_of(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]), st.integers(0, 255)))
            buf[pos] = value
        if data.draw(st.booleans()):
            buf = buf[:data.draw(st.integers(0, len(buf)))]
        try:
            obj = load_object(bytes(buf))
        except ElfError as e:
            assert str(e)
            return
        check_programs(obj)

    check()


# --- map types -------------------------------------------------------------------------------------

def test_map_type_numbers_match_uapi_header():
    header = Path("/usr/include/linux/bpf.h")
    if not header.exists():
        pytest.skip("linux/bpf.h not installed")
    text = header.read_text()
    body = text[text.index("enum bpf_map_type {"):]
    body = body[:body.index("};")]
    numbers: dict[str, int] = {}
    for line in body.splitlines()[1:]:
        cname, _, alias = (part.strip() for part in line.strip().rstrip(",").partition("="))
        if cname.startswith("BPF_MAP_TYPE_"):
            # Counting up from 0; newer headers add aliases ("X = Y") that take no number.
            numbers[cname] = numbers[alias] if alias else len(set(numbers.values()))
    assert len(numbers) > 30
    for cname, number in numbers.items():
        short = cname.removeprefix("BPF_MAP_TYPE_").lower()
        if short.endswith("_deprecated"):
            continue
        assert M.MAP_TYPES.get(short) == number, cname
        assert getattr(M, cname) == number
        assert M.map_type_id(cname) == number and M.map_type_name(number) == short
    assert M.map_type_name(999) == "unknown(999)"
    with pytest.raises(ValueError, match="unknown map type"):
        M.map_type_id("nope")
