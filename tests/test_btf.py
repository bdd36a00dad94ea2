"""The BTF reader (ebpf/btf.py), checked against bpftool's own dump of the same BTF.

bpftool's ``btf dump ... format raw`` prints every type with every field we decode; rendering
our parse in the same format and comparing line by line checks the parser on every kind,
on a compiled object (all 19 kinds appear in KINDS_C) and on the running kernel's vmlinux.
"""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bpfmc.ebpf import btf as B
from bpfmc.ebpf.btf import Btf, BtfError, IntField, essential_name

VMLINUX = Path("/sys/kernel/btf/vmlinux")

# One of every BTF kind: bitfields (kind_flag), anonymous struct and union members, ENUM64,
# FLOAT, FWD, FUNC_PROTO pointers, modifiers, decl and type tags, VAR and DATASEC.
KINDS_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
typedef unsigned long long u64t;
enum small { S_A = -1, S_B = 5 };
enum big { B_A = 0x100000000ULL, B_B = 1 };
struct fwd_only;
struct bits { unsigned int a:3, b:5; int c:10; unsigned long long d; };
union un { int i; float f; char c[3]; };
struct pair { int lo; unsigned short hi[3]; long long big; };
struct outer {
    int x;
    struct { short y; union { char z; long w; }; };
    struct bits bf[2];
    const volatile int cv;
    struct fwd_only *fp;
    int (*fn)(int, char);
    double dbl;
    _Bool flag;
    enum small es;
    enum big eb;
    int __attribute__((btf_type_tag("user"))) *tagged;
    int * restrict rp;
    u64t t;
} __attribute__((btf_decl_tag("outer_tag")));
struct outer g_outer;
struct pair g_pair;
union un g_un = { .i = 3 };
static volatile int s_counter __attribute__((btf_decl_tag("var_tag")));
SEC("xdp") int prog(struct xdp_md *ctx __attribute__((btf_decl_tag("arg_tag"))))
{
    s_counter++;
    return g_outer.x + g_un.i + g_pair.lo + sizeof(struct outer);
}
char LICENSE[] SEC("license") = "GPL";
"""

_ENC = {0: "(none)", B.INT_SIGNED: "SIGNED", B.INT_CHAR: "CHAR", B.INT_BOOL: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _q(name: str) -> str:
    return f"'{name or '(anon)'}'"


def render(btf: Btf, type_id: int) -> list[str]:
    """One type in ``bpftool btf dump format raw`` layout."""
    t = btf.type(type_id)
    head = f"[{t.id}] {t.kind_name} {_q(t.name)}"
    k = t.kind
    if k == B.KIND_INT:
        return [f"{head} size={t.size} bits_offset={t.int_offset} nr_bits={t.bits} "
                f"encoding={_ENC.get(t.encoding, 'UNKN')}"]
    if k in (B.KIND_PTR, B.KIND_TYPEDEF, B.KIND_VOLATILE, B.KIND_CONST, B.KIND_RESTRICT, B.KIND_TYPE_TAG):
        return [f"{head} type_id={t.type}"]
    if k == B.KIND_ARRAY:
        return [f"{head} type_id={t.elem_type} index_type_id={t.index_type} nr_elems={t.nelems}"]
    if k in (B.KIND_STRUCT, B.KIND_UNION):
        lines = [f"{head} size={t.size} vlen={t.vlen}"]
        for m in t.members:
            extra = f" bitfield_size={m.bitfield_size}" if m.bitfield_size else ""
            lines.append(f"\t{_q(m.name)} type_id={m.type} bits_offset={m.bit_offset}{extra}")
        return lines
    if k in (B.KIND_ENUM, B.KIND_ENUM64):
        sign = "SIGNED" if t.kind_flag else "UNSIGNED"
        lines = [f"{head} encoding={sign} size={t.size} vlen={t.vlen}"]
        suffix = ("LL" if t.kind_flag else "ULL") if k == B.KIND_ENUM64 else ""
        lines += [f"\t{_q(v.name)} val={v.value}{suffix}" for v in t.values]
        return lines
    if k == B.KIND_FWD:
        return [f"{head} fwd_kind={'union' if t.kind_flag else 'struct'}"]
    if k == B.KIND_FUNC:
        return [f"{head} type_id={t.type} linkage={_LINKAGE.get(t.linkage, t.linkage)}"]
    if k == B.KIND_FUNC_PROTO:
        return [f"{head} ret_type_id={t.type} vlen={t.vlen}"] + [
            f"\t{_q(p.name)} type_id={p.type}" for p in t.params]
    if k == B.KIND_VAR:
        return [f"{head} type_id={t.type}, linkage={_LINKAGE.get(t.linkage, t.linkage)}"]
    if k == B.KIND_DATASEC:
        return [f"{head} size={t.size} vlen={t.vlen}"] + [
            f"\ttype_id={v.type} offset={v.offset} size={v.size} (VAR {_q(btf.name(v.type))})" for v in t.vars]
    if k == B.KIND_FLOAT:
        return [f"{head} size={t.size}"]
    if k == B.KIND_DECL_TAG:
        return [f"{head} type_id={t.type} component_idx={t.component_idx}"]
    raise AssertionError(f"no rendering for kind {k}")


def bpftool_dump(path: Path) -> dict[int, list[str]]:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool not installed")
    out = subprocess.run(["bpftool", "btf", "dump", "file", str(path), "format", "raw"],
                         capture_output=True, text=True, check=True).stdout
    types: dict[int, list[str]] = {}
    current: list[str] = []
    for line in out.splitlines():
        if line.startswith("["):
            current = [line]
            types[int(line[1:line.index("]")])] = current
        elif line:
            current.append(line)
    return types


def btf_section(obj: Path) -> bytes:
    from bpfmc.ebpf.elf import load_object

    btf = load_object(obj).btf
    assert btf is not None
    return btf._data


@pytest.fixture
def kinds_obj(bpf_cc) -> Path:
    return bpf_cc(KINDS_C)


def test_object_btf_matches_bpftool(kinds_obj):
    btf = Btf.parse(btf_section(kinds_obj))
    expected = bpftool_dump(kinds_obj)
    assert len(btf) - 1 == len(expected)
    for type_id, lines in expected.items():
        assert render(btf, type_id) == lines
    kinds = {btf.type(i).kind for i in range(1, len(btf))}
    assert kinds == set(range(1, 20)), "KINDS_C should exercise every BTF kind"


def test_vmlinux_matches_bpftool():
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    btf = Btf.load(VMLINUX)
    expected = bpftool_dump(VMLINUX)
    assert len(btf) - 1 == len(expected)
    for type_id in expected:
        assert render(btf, type_id) == expected[type_id]


def test_vmlinux_lookups():
    if not VMLINUX.exists():
        pytest.skip("no /sys/kernel/btf/vmlinux")
    btf = Btf.load(VMLINUX)
    assert Btf.load(VMLINUX) is btf  # cached per path
    expected = bpftool_dump(VMLINUX)
    ts = btf.find_one("task_struct", B.KIND_STRUCT)
    assert expected[ts.id][0].startswith(f"[{ts.id}] STRUCT 'task_struct' size={ts.size} ")
    ringbuf = {v.name: v.value for v in btf.find_one("bpf_map_type", B.KIND_ENUM).values}
    assert ringbuf["BPF_MAP_TYPE_RINGBUF"] == 27
    # xdp_md is uapi: its layout is fixed.
    xdp = btf.find_one("xdp_md", B.KIND_STRUCT)
    assert [(m.name, m.bit_offset // 8) for m in xdp.members][:3] == [("data", 0), ("data_end", 4), ("data_meta", 8)]
    assert btf.int_fields(xdp.id)[:2] == [IntField(0, 4, False), IntField(4, 4, False)]


def test_layout_queries(kinds_obj):
    btf = Btf.parse(btf_section(kinds_obj))
    outer = btf.find_one("outer", B.KIND_STRUCT)
    assert btf.size(outer.id) == outer.size == 128
    # Through the anonymous struct and union, as C sees them.
    assert btf.member(outer.id, "y").bit_offset == 64
    assert btf.member(outer.id, "w").bit_offset == 128
    with pytest.raises(BtfError, match="no member 'nope'"):
        btf.member(outer.id, "nope")
    cv = btf.member(outer.id, "cv")
    assert btf.resolved(cv.type).name == "int"
    assert btf.skip_modifiers(cv.type) == btf.resolve(cv.type)
    t = btf.member(outer.id, "t")
    assert btf.type(t.type).kind == B.KIND_TYPEDEF and btf.resolved(t.type).name == "unsigned long long"
    bits = btf.find_one("bits", B.KIND_STRUCT)
    assert [(m.name, m.bit_offset, m.bitfield_size) for m in bits.members] == [
        ("a", 0, 3), ("b", 3, 5), ("c", 8, 10), ("d", 64, 0)]
    assert btf.size(btf.member(outer.id, "bf").type) == 32  # struct bits[2]
    assert btf.size(btf.member(outer.id, "fp").type) == 8
    with pytest.raises(BtfError, match="no size"):
        btf.size(btf.type(btf.member(outer.id, "fn").type).type)  # a FUNC_PROTO
    assert [(v.name, v.value) for v in btf.find_one("small").values] == [("S_A", -1), ("S_B", 5)]
    assert btf.find_one("big").values[0].value == 1 << 32
    assert btf.find("outer", B.KIND_UNION) == []


@pytest.mark.parametrize("type_name, fields", [
    ("pair", [IntField(0, 4, True), IntField(4, 2, False), IntField(6, 2, False), IntField(8, 2, False),
              IntField(16, 8, True)]),
    ("bits", None),  # bitfields: no whole-integer fields
    ("un", None),  # unions are ambiguous
    ("outer", None),  # contains a float and a union
    ("small", [IntField(0, 4, True)]),
    ("big", [IntField(0, 8, False)]),
    ("u64t", [IntField(0, 8, False)]),
])
def test_int_fields(kinds_obj, type_name, fields):
    btf = Btf.parse(btf_section(kinds_obj))
    assert btf.int_fields(btf.find(type_name)[0]) == fields


@pytest.mark.parametrize("name, essential", [
    ("task_struct", "task_struct"),
    ("task_struct___v2", "task_struct"),
    ("a___b___c", "a___b"),
    ("__x___y", "__x"),  # the flavor separator needs a non-underscore on its left ...
    ("x____y", "x____y"),  # ... and on its right
    ("___y", "___y"),
    ("abc___", "abc___"),
])
def test_essential_name(name, essential):
    assert essential_name(name) == essential


# --- malformed input -------------------------------------------------------------------------

def _btf(types: bytes, strings: bytes = b"\0int\0") -> bytes:
    return struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings)) + types + strings


INT32 = struct.pack("<IIII", 1, 1 << 24, 4, (1 << 24) | 32)  # [1] INT 'int' size=4 signed


def _typedef(name_off: int, target: int) -> bytes:
    return struct.pack("<III", name_off, 8 << 24, target)


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"\xeb\x9f" + bytes(22), "big-endian"),
    (b"\x00\x00" + bytes(22), "bad BTF magic"),
    (struct.pack("<HBBIIIII", 0xEB9F, 2, 0, 24, 0, 0, 0, 0), "version 2"),
    (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 100, 0, 0), "past the end"),
    (_btf(INT32[:10]), "truncated"),
    (_btf(struct.pack("<III", 0, 25 << 24, 0)), "unknown kind 25"),
    (_btf(INT32 + struct.pack("<III", 0, 4 << 24 | 1, 4)), "runs past the end"),
    (_btf(INT32, b"x"), "empty string"),
], ids=["empty", "big-endian", "magic", "version", "sections", "truncated-type", "unknown-kind",
        "truncated-members", "strings"])
def test_malformed_btf(data, message):
    with pytest.raises(BtfError, match=message):
        Btf.parse(data)


def test_bad_references_fail_when_used():
    btf = Btf.parse(_btf(INT32 + _typedef(1, 7)))
    with pytest.raises(BtfError, match="does not exist"):
        btf.type(2)
    with pytest.raises(BtfError, match="does not exist"):
        btf.type(3)
    bad_name = Btf.parse(_btf(struct.pack("<IIII", 99, 1 << 24, 4, 32)))
    with pytest.raises(BtfError, match="string offset 99"):
        bad_name.type(1)


def test_reference_cycles_are_errors():
    btf = Btf.parse(_btf(INT32 + _typedef(1, 3) + _typedef(1, 2)))
    with pytest.raises(BtfError, match="cycle"):
        btf.resolve(2)
    with pytest.raises(BtfError, match="cycle"):
        btf.size(3)
    assert btf.int_fields(2) is None
    assert btf.type_str(2)


def test_load_missing_file(tmp_path):
    with pytest.raises(BtfError, match="cannot read"):
        Btf.load(tmp_path / "nope")


def test_mutated_btf_only_raises_btf_error(kinds_obj):
    blob = btf_section(kinds_obj)

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def check(data):
        buf = bytearray(blob)
        for _ in range(data.draw(st.integers(1, 8))):
            pos = data.draw(st.integers(0, len(buf) - 1))
            buf[pos] = data.draw(st.sampled_from([0, 1, 0xFF, 0x7F, 0x80, data.draw(st.integers(0, 255))]))
        cut = data.draw(st.integers(0, len(buf)))
        try:
            btf = Btf.parse(bytes(buf[:cut]) if data.draw(st.booleans()) else bytes(buf))
        except BtfError:
            return
        for type_id in range(1, len(btf)):
            for query in (btf.type, btf.resolve, btf.size, btf.int_fields, btf.type_str, btf.members):
                try:
                    query(type_id)
                except BtfError:
                    pass
        try:
            btf.find("outer")
        except BtfError:
            pass

    check()
