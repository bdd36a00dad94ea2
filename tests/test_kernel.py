"""The host kernel as reference engine (ebpf/kernel.py): bpf() wrapper, maps, libbpf loader."""

from __future__ import annotations

import ctypes
import errno
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from conftest import CLANG, SHARED

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.insn import Insn, encode

pytestmark = pytest.mark.kernel

ETH_HLEN = 14
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX = 0, 1, 2, 3


def mov64_imm(dst: int, imm: int) -> Insn:
    return Insn(op.BPF_ALU64 | op.BPF_MOV | op.BPF_K, dst, imm=imm)


def alu64_imm(operation: int, dst: int, imm: int) -> Insn:
    return Insn(op.BPF_ALU64 | operation | op.BPF_K, dst, imm=imm)


def ldx(size: int, dst: int, src: int, off: int) -> Insn:
    return Insn(op.BPF_LDX | op.BPF_MEM | size, dst, src, off)


def lddw(dst: int, imm: int, src: int = 0) -> Insn:
    return Insn(op.LDDW, dst, src, imm=imm & 0xFFFFFFFFFFFFFFFF)


EXIT = Insn(op.EXIT)


def syn_packet() -> bytes:
    """The benchmark input (shared/bench/README.md): 64-byte Ethernet/IPv4/TCP SYN,
    10.0.0.1:40000 -> 10.0.0.2:80, TTL 64, no options."""
    eth = bytes.fromhex("020000000002" "020000000001") + struct.pack("!H", 0x0800)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    csum = sum(struct.unpack("!10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    return (eth + ip + tcp).ljust(64, b"\0")


# --- raw bpf(): programs ---------------------------------------------------------------------


def test_available_is_cached(kernel):
    first = kernel.available()
    assert first == (True, "")
    assert kernel.available() is first


def test_bpf_attr_offsets_match_uapi_header(kernel, tmp_path):
    # Compile a host program that prints offsetof() for every field we lay out by hand.
    if shutil.which(CLANG) is None:
        pytest.skip(f"{CLANG} not installed")
    checks = {
        "union bpf_attr": [
            ("MapCreateAttr", "map_type"), ("MapCreateAttr", "map_flags"), ("MapCreateAttr", "map_name"),
            ("MapCreateAttr", "btf_fd"), ("MapCreateAttr", "map_extra"),
            ("MapElemAttr", "map_fd"), ("MapElemAttr", "key"), ("MapElemAttr", "value"), ("MapElemAttr", "flags"),
            ("ProgLoadAttr", "insns"), ("ProgLoadAttr", "license"), ("ProgLoadAttr", "log_level"),
            ("ProgLoadAttr", "log_buf"), ("ProgLoadAttr", "prog_flags"), ("ProgLoadAttr", "prog_name"),
            ("ProgLoadAttr", "expected_attach_type"), ("ProgLoadAttr", "fd_array"),
            ("ProgLoadAttr", "core_relo_rec_size"),
            ("ObjAttr", "pathname"), ("ObjAttr", "bpf_fd"), ("ObjAttr", "file_flags"),
            ("TestRunAttr", "test.retval"), ("TestRunAttr", "test.data_in"), ("TestRunAttr", "test.data_out"),
            ("TestRunAttr", "test.repeat"), ("TestRunAttr", "test.duration"), ("TestRunAttr", "test.ctx_in"),
            ("TestRunAttr", "test.ctx_out"), ("TestRunAttr", "test.flags"), ("TestRunAttr", "test.cpu"),
            ("TestRunAttr", "test.batch_size"),
            ("GetIdAttr", "prog_id"), ("GetIdAttr", "next_id"), ("GetIdAttr", "open_flags"),
            ("InfoAttr", "info.info_len"), ("InfoAttr", "info.info"),
        ],
        "struct bpf_prog_info": [
            ("BpfProgInfo", f) for f in ("tag", "nr_map_ids", "map_ids", "name", "ifindex", "netns_dev",
                                         "run_time_ns", "run_cnt", "verified_insns", "attach_btf_id")
        ],
        "struct bpf_map_info": [
            ("BpfMapInfo", f) for f in ("key_size", "max_entries", "name", "ifindex", "btf_id", "map_extra")
        ],
    }
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/bpf.h>", "int main(void) {"]
    lines.append('printf("size %zu\\n", sizeof(union bpf_attr));')
    for ctype, fields in checks.items():
        for cls, f in fields:
            lines.append(f'printf("{cls} {f} %zu\\n", offsetof({ctype}, {f}));')
    lines.append("return 0; }")
    src = tmp_path / "offsets.c"
    src.write_text("\n".join(lines))
    exe = tmp_path / "offsets"
    subprocess.run([CLANG, "-o", str(exe), str(src)], check=True, capture_output=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout.split("\n")
    assert out[0] == f"size {kernel.BPF_ATTR_SIZE}"
    for line in filter(None, out[1:]):
        cls, f, off = line.split()
        struct_cls = getattr(kernel, cls)
        attr = getattr(struct_cls, {"prog_id": "id"}.get(f, f.split(".")[-1]))
        assert attr.offset == int(off), f"{cls}.{f}: ctypes {attr.offset}, header {off}"
    for cls in ("MapCreateAttr", "MapElemAttr", "ProgLoadAttr", "ObjAttr", "TestRunAttr", "GetIdAttr", "InfoAttr"):
        assert ctypes.sizeof(getattr(kernel, cls)) == kernel.BPF_ATTR_SIZE


def test_socket_filter_returns_constant(kernel):
    code = encode([mov64_imm(op.R0, 42), EXIT])
    with kernel.prog_load(code, "socket_filter", name="const42") as prog:
        assert prog.fd >= 0 and prog.type_name == "socket_filter"
        assert "processed 2 insns" in prog.log
        res = kernel.prog_test_run(prog, bytes(range(64)), repeat=10)
    assert prog.closed
    assert res.retval == 42
    assert res.duration_ns >= 0
    assert res.ctx_out is None
    # The kernel pulls the Ethernet header before a socket filter runs and, for data_out, pushes
    # back 14 zero bytes in its place; the rest of the frame comes back unchanged.
    assert len(res.data_out) == 64
    assert res.data_out[:ETH_HLEN] == bytes(ETH_HLEN) and res.data_out[ETH_HLEN:] == bytes(range(ETH_HLEN, 64))


def test_socket_filter_computes_with_packet_length(kernel):
    # r0 = skb->len * 3 + 1; __sk_buff.len is at offset 0.
    code = encode([
        ldx(op.BPF_W, op.R0, op.R1, 0),
        alu64_imm(op.BPF_MUL, op.R0, 3),
        alu64_imm(op.BPF_ADD, op.R0, 1),
        EXIT,
    ])
    with kernel.prog_load(code) as prog:
        for n in (14, 64, 200):
            # skb->len excludes the Ethernet header the kernel pulled (eth_type_trans).
            assert prog.test_run(bytes(n)).retval == (n - ETH_HLEN) * 3 + 1


def test_retval_is_low_32_bits_of_r0(kernel):
    code = encode([lddw(op.R0, 0x1122334455667788), EXIT])
    with kernel.prog_load(code, "xdp") as prog:
        assert prog.test_run(bytes(64)).retval == 0x55667788


def test_socket_filter_ctx_out(kernel):
    with kernel.prog_load(encode([mov64_imm(op.R0, 0), EXIT])) as prog:
        res = prog.test_run(bytes(64), ctx_size_out=1024)
    # The kernel copies back only a few struct __sk_buff fields (not len): the test skb hangs off
    # the loopback device (ifindex 1, offset 40) and wire_len (offset 160) is the post-pull length.
    assert res.ctx_out is not None and len(res.ctx_out) == 192
    assert struct.unpack_from("<I", res.ctx_out, 0)[0] == 0
    assert struct.unpack_from("<I", res.ctx_out, 40)[0] == 1
    assert struct.unpack_from("<I", res.ctx_out, 160)[0] == 64 - ETH_HLEN


def test_refusal_carries_errno_and_log(kernel):
    # Exit without ever writing r0.
    with pytest.raises(kernel.KernelVerifierError) as ei:
        kernel.prog_load(encode([EXIT]))
    assert ei.value.errno == errno.EACCES
    assert "R0 !read_ok" in ei.value.log
    assert "R0 !read_ok" in str(ei.value)

    # Reading above the frame pointer. (Reading an unwritten slot below it is not refused: root
    # has CAP_PERFMON, which lets the verifier allow uninitialised stack reads.)
    code = encode([ldx(op.BPF_DW, op.R0, op.R10, 8), EXIT])
    with pytest.raises(kernel.KernelVerifierError) as ei:
        kernel.prog_load(code)
    assert ei.value.errno == errno.EACCES
    assert "invalid read from stack R10 off=8 size=8" in ei.value.log

    # A context offset past struct __sk_buff.
    with pytest.raises(kernel.KernelVerifierError) as ei:
        kernel.prog_load(encode([ldx(op.BPF_W, op.R0, op.R1, 4096), EXIT]))
    assert "invalid bpf_context access off=4096" in ei.value.log


def test_refusal_with_log_off_still_raises(kernel):
    with pytest.raises(kernel.KernelVerifierError) as ei:
        kernel.prog_load(encode([EXIT]), log_level=0)
    assert ei.value.errno == errno.EACCES and ei.value.log == ""


def test_log_overflow_falls_back_to_kernel_verdict(kernel):
    # A 128-byte log cannot hold a level-2 trace: the kernel says ENOSPC, and prog_load retries
    # without a log so the verdict is still the kernel's.
    ok = encode([mov64_imm(op.R0, 7)] * 40 + [EXIT])
    with kernel.prog_load(ok, log_level=2, log_size=128) as prog:
        assert prog.test_run(bytes(64)).retval == 7
        assert 0 < len(prog.log) < 128
    bad = encode([mov64_imm(op.R0, 7)] * 40 + [EXIT, ldx(op.BPF_DW, op.R0, op.R1, 0), EXIT])
    with pytest.raises(kernel.KernelVerifierError) as ei:
        kernel.prog_load(bad, log_level=2, log_size=128)
    assert ei.value.errno == errno.EINVAL  # unreachable insn, not ENOSPC


def test_unknown_program_type_name(kernel):
    with pytest.raises(ValueError, match="unknown program type"):
        kernel.prog_load(encode([mov64_imm(op.R0, 0), EXIT]), "nonesuch")
    assert kernel.prog_type_id("tc") == kernel.PROG_TYPES["sched_cls"] == 3
    assert kernel.prog_type_id(6) == 6


def _xdp_mark_first_byte() -> bytes:
    # if (data + 1 > data_end) return XDP_DROP; data[0] = 0xab; return XDP_TX;
    return encode([
        ldx(op.BPF_W, op.R2, op.R1, 0),  # data
        ldx(op.BPF_W, op.R3, op.R1, 4),  # data_end
        Insn(op.BPF_ALU64 | op.BPF_MOV | op.BPF_X, op.R4, op.R2),
        alu64_imm(op.BPF_ADD, op.R4, 1),
        Insn(op.BPF_JMP | op.BPF_JGT | op.BPF_X, op.R4, op.R3, off=3),
        Insn(op.BPF_ST | op.BPF_MEM | op.BPF_B, op.R2, off=0, imm=0xAB),
        mov64_imm(op.R0, XDP_TX),
        EXIT,
        mov64_imm(op.R0, XDP_DROP),
        EXIT,
    ])


def test_xdp_test_run_returns_data_out(kernel):
    pkt = syn_packet()
    with kernel.prog_load(_xdp_mark_first_byte(), "xdp", name="xdp_mark") as prog:
        res = prog.test_run(pkt, repeat=3)
        assert res.retval == XDP_TX
        assert res.data_out == b"\xab" + pkt[1:]
        # The kernel refuses XDP frames shorter than an Ethernet header.
        with pytest.raises(kernel.KernelError) as ei:
            prog.test_run(b"\x01")
        assert ei.value.errno == errno.EINVAL


def test_small_data_out_is_enospc(kernel):
    with kernel.prog_load(_xdp_mark_first_byte(), "xdp") as prog:
        with pytest.raises(kernel.KernelError, match="needs 64 bytes") as ei:
            prog.test_run(bytes(64), data_size_out=16)
    assert ei.value.errno == errno.ENOSPC


# --- raw bpf(): maps -------------------------------------------------------------------------


def test_hash_map_roundtrip(kernel):
    with kernel.map_create("hash", 4, 8, 16, name="h") as m:
        assert m.type_name == "hash" and m.value_buf_size == 8
        for i in range(5):
            kernel.map_update(m, struct.pack("<I", i), struct.pack("<Q", i * i))
        assert kernel.map_lookup(m, struct.pack("<I", 3)) == struct.pack("<Q", 9)
        assert kernel.map_lookup(m.fd, struct.pack("<I", 3)) == struct.pack("<Q", 9)  # bare fd
        assert kernel.map_lookup(m, struct.pack("<I", 99)) is None
        with pytest.raises(kernel.KernelError) as ei:
            kernel.map_update(m, struct.pack("<I", 1), bytes(8), kernel.BPF_NOEXIST)
        assert ei.value.errno == errno.EEXIST
        assert kernel.map_delete(m, struct.pack("<I", 0)) is True
        assert kernel.map_delete(m, struct.pack("<I", 0)) is False
        items = dict(m.items())
        assert items == {struct.pack("<I", i): struct.pack("<Q", i * i) for i in range(1, 5)}
        assert sorted(kernel.map_keys(m.fd)) == sorted(items)
        with pytest.raises(ValueError, match="8 bytes"):
            kernel.map_update(m, struct.pack("<I", 1), b"\x01")
        with pytest.raises(ValueError, match="key must be 4 bytes"):
            m.lookup(b"\x01")
        info = m.info()
        assert (info.type, info.key_size, info.value_size, info.max_entries, info.name) == (1, 4, 8, 16, "h")


def test_array_map_int_keys(kernel):
    with kernel.map_create("array", 4, 4, 3) as m:
        m.update(2, struct.pack("<I", 0xDEADBEEF))
        assert m.lookup(2) == struct.pack("<I", 0xDEADBEEF)
        assert m.lookup(0) == bytes(4)  # arrays are preallocated and zeroed
        assert m.lookup(3) is None
        assert [k for k, _ in m.items()] == [struct.pack("<I", i) for i in range(3)]


def test_percpu_array_roundtrip(kernel):
    ncpu = kernel.possible_cpus()
    assert ncpu >= 1
    with kernel.map_create("percpu_array", 4, 8, 2) as m:
        assert m.is_percpu and m.value_buf_size == ncpu * 8
        rows = [struct.pack("<Q", 100 + c) for c in range(ncpu)]
        m.update(1, b"".join(rows))
        assert m.lookup(1) == b"".join(rows)
        assert m.lookup_percpu(1) == rows
        assert m.lookup_percpu(0) == [bytes(8)] * ncpu
        with pytest.raises(ValueError, match="per-CPU"):
            m.update(1, struct.pack("<Q", 1))  # one CPU's worth is not enough


def test_percpu_hash_pads_rows_to_8_bytes(kernel):
    ncpu = kernel.possible_cpus()
    with kernel.map_create("percpu_hash", 4, 12, 4) as m:
        rows = [bytes([0x10 + c]) * 12 for c in range(ncpu)]
        m.update(7, rows)  # a list of rows is padded to the kernel's 16-byte stride
        raw = m.lookup(7)
        assert len(raw) == ncpu * 16
        assert m.lookup_percpu(7) == rows
        assert raw[12:16] == bytes(4)


def test_queue_map_push_peek_pop(kernel):
    with kernel.map_create("queue", 0, 8, 4) as q:
        for v in (5, 6):
            q.update(None, struct.pack("<Q", v))
        assert q.lookup(None) == struct.pack("<Q", 5)  # peek
        assert kernel.map_lookup_and_delete(q) == struct.pack("<Q", 5)
        assert kernel.map_lookup_and_delete(q) == struct.pack("<Q", 6)
        assert kernel.map_lookup_and_delete(q) is None


def test_map_type_names(kernel):
    for name in ("array", "hash", "percpu_array", "percpu_hash", "lru_hash", "lru_percpu_hash", "prog_array",
                 "ringbuf", "perf_event_array", "queue", "stack", "lpm_trie", "devmap", "cpumap", "xskmap"):
        assert name in kernel.MAP_TYPES
    with kernel.map_create("ringbuf", 0, 0, 4096) as rb:
        assert rb.info().type == kernel.MAP_TYPES["ringbuf"]
    with kernel.map_create("lpm_trie", 8, 4, 16, flags=1) as lpm:  # BPF_F_NO_PREALLOC is mandatory
        assert lpm.type_name == "lpm_trie"
    with pytest.raises(ValueError):
        kernel.map_create("nonesuch", 4, 4, 1)


def test_program_with_map_fd_and_info(kernel):
    # Hand-relocated: lddw r1, map_fd (BPF_PSEUDO_MAP_FD); lookup key 0; increment the u64 value.
    with kernel.map_create("array", 4, 8, 1, name="cnt") as m:
        code = encode([
            Insn(op.BPF_ST | op.BPF_MEM | op.BPF_W, op.R10, off=-4, imm=0),
            lddw(op.R1, m.fd, src=op.BPF_PSEUDO_MAP_FD),
            Insn(op.BPF_ALU64 | op.BPF_MOV | op.BPF_X, op.R2, op.R10),
            alu64_imm(op.BPF_ADD, op.R2, -4),
            Insn(op.CALL, imm=1),  # bpf_map_lookup_elem
            Insn(op.BPF_JMP | op.BPF_JEQ | op.BPF_K, op.R0, off=3, imm=0),
            mov64_imm(op.R1, 1),
            Insn(op.BPF_STX | op.BPF_ATOMIC | op.BPF_DW, op.R0, op.R1, imm=op.BPF_ADD),
            mov64_imm(op.R0, XDP_PASS),
            EXIT,
        ])
        with kernel.prog_load(code, "xdp", name="count") as prog:
            res = prog.test_run(bytes(64), repeat=7)
            assert res.retval == XDP_PASS
            assert m.lookup(0) == struct.pack("<Q", 7)

            pinfo = kernel.obj_get_info_by_fd(prog.fd)
            minfo = kernel.obj_get_info_by_fd(m.fd)
            assert isinstance(pinfo, kernel.ProgInfo) and isinstance(minfo, kernel.MapInfo)
            assert pinfo.type == kernel.PROG_TYPES["xdp"] and pinfo.name == "count"
            assert pinfo.map_ids == (minfo.id,)
            assert pinfo.verified_insns > 0 and len(pinfo.tag) == 8

            # Ids lead back to new fds for the same objects.
            with kernel.KernelProgram.from_fd(kernel.prog_get_fd_by_id(pinfo.id)) as again:
                assert again.info().id == pinfo.id and again.prog_type == pinfo.type
            with kernel.KernelMap.from_fd(kernel.map_get_fd_by_id(minfo.id)) as again_map:
                assert again_map.lookup(0) == struct.pack("<Q", 7) and again_map.name == "cnt"


@pytest.fixture
def bpffs(tmp_path):
    """A bpffs directory: /sys/fs/bpf when mounted, else a private mount under tmp_path."""
    if os.path.ismount("/sys/fs/bpf"):
        yield Path("/sys/fs/bpf")
        return
    mnt = tmp_path / "bpffs"
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "bpf", "bpf", str(mnt)], capture_output=True, text=True)
    if proc.returncode:
        pytest.skip(f"no bpffs at /sys/fs/bpf and cannot mount one: {proc.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=False)


def test_obj_pin_and_get(kernel, bpffs):
    path = bpffs / f"bpfmc_test_{os.getpid()}"
    with kernel.map_create("array", 4, 4, 1) as m:
        m.update(0, b"\x01\x02\x03\x04")
        kernel.obj_pin(m, str(path))
        try:
            with kernel.KernelMap.from_fd(kernel.obj_get(str(path))) as again:
                assert again.lookup(0) == b"\x01\x02\x03\x04"
        finally:
            path.unlink()


def test_pin_to_cpu_restores_affinity(kernel):
    before = os.sched_getaffinity(0)
    cpu = min(before)
    with kernel.pin_to_cpu(cpu) as c:
        assert c == cpu and os.sched_getaffinity(0) == {cpu}
    assert os.sched_getaffinity(0) == before
    with pytest.raises(ValueError):
        with kernel.pin_to_cpu(10_000):
            pass


# --- libbpf ----------------------------------------------------------------------------------

COUNTER_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} lens SEC(".maps");

__u64 runs = 0;

SEC("xdp")
int count_len(struct xdp_md *ctx)
{
    __u32 key = ctx->data_end - ctx->data;
    __u64 one = 1, *v = bpf_map_lookup_elem(&lens, &key);
    if (v)
        __sync_fetch_and_add(v, 1);
    else
        bpf_map_update_elem(&lens, &key, &one, BPF_NOEXIST);
    runs++;
    return XDP_PASS;
}

SEC("socket")
int sock_len(struct __sk_buff *skb)
{
    return skb->len + 1;
}

char LICENSE[] SEC("license") = "GPL";
"""

PERCPU_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} hits SEC(".maps");

SEC("xdp")
int percpu_hit(struct xdp_md *ctx)
{
    __u32 key = 0;
    __u64 *v = bpf_map_lookup_elem(&hits, &key);
    if (v)
        *v += 1;
    return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
"""

BAD_C = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int no_bounds(struct xdp_md *ctx)
{
    unsigned char *data = (void *)(long)ctx->data;
    return data[10];
}

char LICENSE[] SEC("license") = "GPL";
"""


def test_libbpf_load_run_and_read_map(libbpf, bpf_cc):
    obj_path = bpf_cc(COUNTER_C)
    with libbpf.load_object(obj_path) as obj:
        assert set(obj.programs) == {"count_len", "sock_len"}
        xdp, sock = obj.programs["count_len"], obj.programs["sock_len"]
        assert xdp.prog_type == libbpf.PROG_TYPES["xdp"] and xdp.section == "xdp"
        assert sock.type_name == "socket_filter" and sock.section == "socket"

        for size, times in ((64, 3), (100, 2)):
            assert xdp.test_run(bytes(size), repeat=times).retval == XDP_PASS
        lens = obj.maps["lens"]
        assert (lens.type_name, lens.key_size, lens.value_size, lens.max_entries) == ("hash", 4, 8, 16)
        got = {struct.unpack("<I", k)[0]: struct.unpack("<Q", v)[0] for k, v in lens.items()}
        assert got == {64: 3, 100: 2}

        # Global data: libbpf names the .bss map after the object, found here by section.
        bss = obj.map(".bss")
        assert bss.name.endswith(".bss")
        assert struct.unpack("<Q", bss.lookup(0))[0] == 5

        assert sock.test_run(bytes(64)).retval == 64 - ETH_HLEN + 1

        # The maps the kernel says the program uses are the ones libbpf reported.
        ids = set(xdp.info().map_ids)
        assert {lens.info().id, bss.info().id} <= ids
    assert xdp.closed and lens.closed


def test_libbpf_refusal_has_verifier_log(libbpf, bpf_cc):
    obj_path = bpf_cc(BAD_C)
    with pytest.raises(libbpf.KernelVerifierError) as ei:
        libbpf.load_object(obj_path)
    e = ei.value
    assert e.errno == errno.EACCES
    assert "no_bounds" in e.log  # libbpf names the program
    assert "outside of the packet" in e.verifier_log
    assert "BEGIN PROG LOAD LOG" not in e.verifier_log


def test_libbpf_open_failure(libbpf, tmp_path):
    junk = tmp_path / "junk.o"
    junk.write_bytes(b"not an elf file")
    with pytest.raises(libbpf.KernelError) as ei:
        libbpf.load_object(junk)
    assert "not a proper ELF" in ei.value.log or "ELF" in str(ei.value)
    with pytest.raises(libbpf.KernelError) as ei:
        libbpf.load_object(tmp_path / "missing.o")
    assert ei.value.errno == errno.ENOENT


def test_percpu_row_of_pinned_cpu(libbpf, bpf_cc):
    obj_path = bpf_cc(PERCPU_C)
    cpus = sorted(os.sched_getaffinity(0))
    with libbpf.load_object(obj_path) as obj:
        prog, hits = obj.programs["percpu_hit"], obj.maps["hits"]
        expected = [0] * libbpf.possible_cpus()
        for n, cpu in enumerate(cpus[:4], start=1):
            with libbpf.pin_to_cpu(cpu):
                prog.test_run(bytes(64), repeat=10 * n)
            expected[cpu] += 10 * n
            rows = [struct.unpack("<Q", r)[0] for r in hits.lookup_percpu(0)]
            assert rows == expected


def test_bench_b1_alu_matches_readme(libbpf, bpf_cc):
    src = SHARED / "bench" / "b1_alu.c" if SHARED is not None else None
    if src is None or not src.exists():
        pytest.skip("shared/bench/b1_alu.c not present (set BPFMC_SHARED)")
    obj_path = bpf_cc(src)
    with libbpf.load_object(obj_path) as obj:
        res = obj.programs["alu_loop"].test_run(syn_packet())
    # README: r0 = 0x11b36d483594ab6d; BPF_PROG_TEST_RUN reports only its low 32 bits.
    assert res.retval == 0x11B36D483594AB6D & 0xFFFFFFFF == 0x3594AB6D
    assert res.data_out == syn_packet()
