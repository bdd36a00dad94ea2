"""Real programs: the C corpus in tests/progs/ through the host kernel and through bpfmc.

DESIGN: "The kernel is the reference". Each row of :data:`CASES` names a program of the corpus,
the frames (or raw contexts) it runs on in order, the map entries a control plane would write
first, and what is compared: the 32-bit return value, the packet as the program left it, the
writable context fields, records, trace lines, and the final contents of maps. What is *not*
compared is listed in the row with the reason, and where the kernel's answer comes from how a
test run models the world (loopback device, pulled Ethernet header, ...) the row says so.

The kernel loads every object with libbpf (never with bpfmc's loader, so that a bug the two
share cannot hide), runs each input with ``BPF_PROG_TEST_RUN`` while the process is pinned to
CPU 0, and reads per-CPU maps at CPU 0's row; bpfmc runs the same object on emulated core 0 with
all inputs in one batch (maps persist across a batch as they do across the kernel's runs).

Results of both sides are put in one normalized shape (``Result``: runs + maps + derived values)
and compared by :func:`differences`, which lists every mismatch. The kernel's results are kept
in ``tests/progs/expected.json`` so that ``test_progs_engine.py`` checks bpfmc where ``bpf()`` is
not available; ``BPFMC_RECORD_PROGS=1 pytest -m kernel tests/test_progs_kernel.py`` rewrites it,
and ``test_kernel_reference`` fails when the kernel no longer gives what the file says.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import mmap
import os
import re
import struct
import threading
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packets import PACKETS

from bpfmc.ebpf import kernel

PROGS = Path(__file__).resolve().parent / "progs"
EXPECTED = PROGS / "expected.json"
RECORD = os.environ.get("BPFMC_RECORD_PROGS") == "1"
CPU = 0  # host CPU the kernel runs on, and the emulated core bpfmc runs on
U32 = (1 << 32) - 1

SKB_CTX_SIZE = 192  # sizeof(struct __sk_buff) in the 6.1 UAPI header
SKB_MARK, SKB_PRIORITY, SKB_CB = 8, 32, 48  # offsets of the fields a test run's ctx_out reports

Result = dict[str, Any]


# --- the table -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    id: str
    source: str  # file in tests/progs/
    program: str  # function name (the libbpf program name)
    kind: str  # xdp | tc | socket | raw_tp | kprobe
    inputs: tuple[str | bytes, ...]  # PACKETS names, or raw context bytes (raw_tp, kprobe)
    maps: tuple[str, ...] = ()  # maps whose final contents are compared (".bss" &c. by suffix)
    compare: tuple[str, ...] = ("r0", "data_out")  # per-run fields: r0 data_out ctx records trace
    setup: tuple[tuple[str, bytes, bytes], ...] = ()  # (map, key, value) written before the runs
    masks: tuple[tuple[str, int, int], ...] = ()  # (map, offset, length): value bytes not compared
    # (map, summary): compared instead of the map's entries; the map is read under that name.
    derived: tuple[tuple[str, Callable[[Result], Any]], ...] = ()
    skip: tuple[tuple[str, str], ...] = ()  # (what, why): deliberately not compared
    notes: tuple[str, ...] = ()  # where the kernel's answer reflects how a test run models things
    checks: tuple[Callable[[str, Result], None], ...] = ()  # plausibility, per side ("kernel"/"bpfmc")
    kernel: str = "run"  # run | verify (loads, cannot test-run) | refuses (libbpf cannot load it)
    expect: Result | None = field(default=None, compare=False)  # hand-written, when kernel != run

    def frames(self) -> list[bytes]:
        return [PACKETS[x] if isinstance(x, str) else x for x in self.inputs]

    def labels(self) -> list[str]:
        return [x if isinstance(x, str) else f"ctx#{i}" for i, x in enumerate(self.inputs)]

    def __str__(self) -> str:
        return self.id


def u32(v: int) -> bytes:
    return struct.pack("<I", v & U32)


def lpm4(prefixlen: int, addr: str) -> bytes:
    return struct.pack("<I", prefixlen) + bytes(int(x) for x in addr.split("."))


def raw_args(*args: int) -> bytes:
    """A raw tracepoint context: the u64 argument array."""
    return struct.pack(f"<{len(args)}Q", *(a & ((1 << 64) - 1) for a in args))


PT_REGS_FIELDS = ("r15 r14 r13 r12 bp bx r11 r10 r9 r8 ax cx dx si di orig_ax ip cs flags sp ss").split()


def pt_regs(**regs: int) -> bytes:
    """An x86-64 struct pt_regs (168 bytes) with the named registers set, the rest zero."""
    return struct.pack("<21Q", *((regs.get(n, 0) & ((1 << 64) - 1)) for n in PT_REGS_FIELDS))


# Frames every packet program sees; skb programs get runt_l2 instead of runt (see packets.py).
XDP_FRAMES = ("tcp4", "tcp4_syn", "tcp4_ack", "tcp4_fin", "tcp4_telnet", "tcp4_blocked", "udp4", "udp4_host",
              "udp6", "udp6_mcast", "arp", "vlan_udp4", "bcast_udp4", "runt", "tcp4")
SKB_FRAMES = tuple("runt_l2" if f == "runt" else f for f in XDP_FRAMES)

NOTE_XDP_RXQ = ("an XDP test run receives on the loopback device: ingress_ifindex 1, rx_queue_index 0 "
                "(visible in .data / metadata)")
NOTE_SKB_DEV = ("a tc/socket test run passes the frame through eth_type_trans on loopback: ifindex 1, "
                "ingress_ifindex 0, hash 0, vlan_present 0 (the tag stays in the bytes), pkt_type HOST only for "
                "dst 00:00:00:00:00:00, OTHERHOST for other unicast, MULTICAST for group addresses and also for "
                "ff:ff:ff:ff:ff:ff (loopback's broadcast address is zero)")
NOTE_RUNT_SKB = ("skb test runs refuse (EINVAL) a frame whose EtherType promises IPv4/IPv6 without a full L3 "
                 "header, so skb cases use the 14-byte runt_l2 (type 0x88b5)")
SKIP_XDP_CTX = ("ctx", "XDP has no writable context field; the kernel's ctx_out (xdp_md) only restates the "
                       "data/data_meta offsets, which data_out (from data_meta) already shows")
SKIP_RAW_DATA = ("data_out", "a raw tracepoint's context is read-only and there is no packet")
SKIP_TC_CLASSID = ("ctx tc_classid", "the kernel's ctx_out carries mark, priority and cb only "
                   "(convert_skb_to___skb); the program reads tc_classid back into map 'seen' (compared), and "
                   "bpfmc's ctx report is checked against the value written")


# -- plausibility checks and derived values ----------------------------------------------------

TRACE_RESULT = struct.Struct("<8q3Q3QQII4Q16s")  # struct result in trace_ring.c
TRACE_FIELDS = ("rc_output rc_perf rc_printk rc_loop rc_probe_ctx rc_probe_bad rc_probe_user rc_comm probe_ctx_val "
                "probe_bad_val probe_user_val ring_size avail_data big_reserve_null loop_sum cpu prandom t_mono1 "
                "t_boot t_mono2 pid_tgid comm").split()
TRACE_VOLATILE_AT = 124  # prandom and everything after it differ on every run


def trace_results(result: Result) -> list[dict[str, Any]]:
    """The trace_ring ``results`` slots the runs filled, decoded (unmasked values)."""
    rows = result["maps_raw"]["results"]
    out = []
    for i in range(len(result["runs"])):
        raw = bytes.fromhex(rows[u32(i % 8).hex()])
        out.append(dict(zip(TRACE_FIELDS, TRACE_RESULT.unpack(raw), strict=True)))
    return out


def check_trace_clocks(side: str, result: Result) -> None:
    rows = trace_results(result)
    for i, r in enumerate(rows):
        assert 0 < r["t_mono1"] <= r["t_mono2"], f"{side} run {i}: ktime_get_ns not monotonic: {r}"
        assert r["t_boot"] >= r["t_mono1"], f"{side} run {i}: boot time {r['t_boot']} < monotonic {r['t_mono1']}"
        if i:
            assert rows[i - 1]["t_mono2"] <= r["t_mono1"], f"{side}: clock went back between runs {i - 1} and {i}"
    assert len({r["prandom"] for r in rows}) > 1, f"{side}: bpf_get_prandom_u32 gave the same value every run"


def check_trace_task(side: str, result: Result) -> None:
    """pid/tgid and comm: the kernel must report this very process; bpfmc has no task to report, so
    it is only held to a well-formed answer (comm NUL-terminated, the helper succeeded)."""
    for i, r in enumerate(trace_results(result)):
        assert r["rc_comm"] == 0, f"{side} run {i}: bpf_get_current_comm returned {r['rc_comm']}"
        assert b"\0" in r["comm"], f"{side} run {i}: comm not NUL-terminated: {r['comm']!r}"
        if side == "kernel":
            tid = threading.get_native_id()
            assert r["pid_tgid"] == (os.getpid() << 32 | tid), f"run {i}: pid_tgid {r['pid_tgid']:#x}"
            comm = Path(f"/proc/self/task/{tid}/comm").read_bytes().strip()
            assert r["comm"].split(b"\0")[0] == comm[:15], f"run {i}: comm {r['comm']!r} vs {comm!r}"


def lru_summary(name: str, newest: bytes) -> Callable[[Result], Any]:
    """For an LRU map that must evict: how full it is and whether the newest key survived --
    which older keys were evicted is the kernel's business."""
    def summary(result: Result) -> dict[str, Any]:
        entries = result["maps_raw"][name]
        return {"count": len(entries), "newest_present": newest.hex() in entries}
    return summary


def check_tc_classid(side: str, result: Result) -> None:
    if side != "bpfmc":
        return  # the kernel's side is compared through map 'seen'
    for i, run in enumerate(result["runs"]):
        got = (run.get("ctx_raw") or {}).get("tc_classid")
        assert got == 0x10020, f"run {i}: bpfmc reports tc_classid {got!r}, the program wrote 0x10020"


# -- the rows ---------------------------------------------------------------------------------

CASES: list[Case] = [
    Case(
        "xdp_fw", "xdp_fw.c", "xdp_fw", "xdp", XDP_FRAMES,
        maps=("flows", "proto_stats", "blocklist", ".bss", ".data", ".rodata"),
        skip=(SKIP_XDP_CTX,),
        setup=(("blocklist", lpm4(24, "198.51.100.0"), u32(1)),),
        notes=(NOTE_XDP_RXQ,),
    ),
    Case(
        "xdp_lb", "xdp_lb.c", "xdp_lb", "xdp", XDP_FRAMES,
        maps=(".bss", ".rodata"),
        setup=(("tx_ports", u32(0), u32(1)), ("cpu_map", u32(0), u32(192) + u32(0))),
        skip=(SKIP_XDP_CTX,
              ("xsks entries", "an XSKMAP slot needs a bound AF_XDP socket; left empty, so bpf_redirect_map "
                               "falls back to its flags (XDP_PASS) on both sides"),
              ("redirect delivery", "a test run only reports XDP_REDIRECT; neither side transmits the frame")),
        notes=(NOTE_XDP_RXQ + "; the metadata tag includes rx_queue_index",),
    ),
    Case(
        "xdp_lb_empty_maps", "xdp_lb.c", "xdp_lb", "xdp", ("tcp4", "udp6", "arp", "udp4"),
        maps=(".bss",),
        skip=(SKIP_XDP_CTX,),
        notes=("no DEVMAP/CPUMAP entries: bpf_redirect_map returns the flags' action (XDP_ABORTED)",),
    ),
    Case(
        "xdp_ipip", "xdp_encap.c", "xdp_ipip", "xdp",
        ("tcp4", "udp4", "tcp4_telnet", "runt", "vlan_udp4", "tcp4_blocked"),
        maps=(".bss", ".data"),
        skip=(SKIP_XDP_CTX,),
    ),
    Case(
        "xdp_snap", "xdp_encap.c", "xdp_snap", "xdp",
        ("tcp4", "udp4", "arp", "runt", "tcp4_blocked", "bcast_udp4", "udp6", "vlan_udp4"),
        maps=(".bss",),
        skip=(SKIP_XDP_CTX,),
        notes=("a test run gives XDP 4096-byte frames, so the tail can grow; grown bytes read as zero",),
    ),
    Case(
        "xdp_conntrack", "xdp_conntrack.c", "xdp_conntrack", "xdp",
        ("tcp4_ack", "tcp4_syn", "tcp4_ack", "tcp4_ack", "tcp4_fin", "tcp4_ack", "udp4", "arp", "runt", "tcp4",
         "tcp4_telnet", "tcp4_blocked", "udp4_host", "bcast_udp4"),
        maps=("rc_log", "conntrack", "recent_src", "src_bytes", ".bss", ".rodata.cst16"),
        derived=(("recent_ports", lru_summary("recent_ports", struct.pack("!H", 68))),),
        skip=(SKIP_XDP_CTX,
              ("recent_ports entries", "a 4-entry LRU fed 6 ports must evict, and the kernel's eviction order "
                                       "is not deterministic (per-CPU LRU lists, batch shrinking): only its "
                                       "size and the newest key are compared")),
        notes=(".rodata.cst16 is a constant pool clang emitted for a struct initializer; libbpf maps it like "
               ".rodata",),
    ),
    Case(
        "xdp_tailcall", "xdp_tailcall.c", "xdp_dispatch", "xdp",
        ("tcp4", "udp6", "vlan_udp4", "arp", "runt", "bcast_udp4", "udp4"),
        maps=(".bss",),
        skip=(SKIP_XDP_CTX,),
        notes=("the chain limit is the kernel's MAX_TAIL_CALL_CNT (33): stage_loop runs 33 times per frame",),
    ),
    Case(
        "tc_nat", "tc_nat.c", "tc_nat", "tc", SKB_FRAMES,
        maps=("seen", "per_source", ".bss"),
        compare=("r0", "data_out", "ctx"),
        skip=(SKIP_TC_CLASSID,),
        notes=(NOTE_SKB_DEV, NOTE_RUNT_SKB),
        checks=(check_tc_classid,),
    ),
    Case(
        "sock_filter", "sock_filter.c", "sock_filter", "socket", SKB_FRAMES,
        maps=("verdicts", "seen", ".bss"),
        compare=("r0", "data_out", "ctx"),
        skip=(("data_out bytes 0-13", "a socket-filter test run pulls the Ethernet header and returns it "
                                      "zeroed; the program cannot write the packet anyway"),),
        notes=(NOTE_SKB_DEV, NOTE_RUNT_SKB,
               "socket filters see the packet from the network header (len = frame - 14; ld_abs 0 is the IP "
               "version byte); an ld_abs/ld_ind past the end ends the program with 0"),
    ),
    Case(
        "trace_ring", "trace_ring.c", "trace_enter", "raw_tp",
        (raw_args(0xFFFF888012345678, 0), raw_args(0xFFFF888012345678, 257), raw_args(0, 15),
         raw_args(0x1234, 3)),
        maps=("results", ".bss"),
        compare=("r0", "records", "trace"),
        masks=(("results", TRACE_VOLATILE_AT, TRACE_RESULT.size - TRACE_VOLATILE_AT),),
        skip=(SKIP_RAW_DATA,
              ("results: prandom, ktime_get_ns, ktime_get_boot_ns, pid_tgid, comm",
               "differ on every run and machine: checked for plausibility instead (clocks non-zero and "
               "monotonic, boot >= monotonic, prandom varies; the kernel's pid/comm are this process's)")),
        notes=("the kernel side consumes the ring buffer after every run (so BPF_RB_AVAIL_DATA counts only "
               "that run's records, discarded ones included) and has a perf event open on CPU 0 in "
               "perf_events; its raw samples are cut back to the 32 bytes written (the kernel pads them)",
               "bpf_probe_read_kernel of address 16 is -ERANGE (-34) on x86-64: a user-space address is "
               "refused before any access; bpf_probe_read_user of NULL is -EFAULT"),
        checks=(check_trace_clocks, check_trace_task),
    ),
    Case(
        "queue_stack", "queue_stack.c", "sched_work", "raw_tp",
        (raw_args(2, 0), raw_args(1, 10), raw_args(1, 11), raw_args(3, 0), raw_args(1, 12), raw_args(1, 13),
         raw_args(1, 14), raw_args(1, (1 << 63) | 15), raw_args(2, 0), raw_args(2, 0), raw_args(3, 0),
         raw_args(9, 0)),
        maps=("oplog", "op_count", "jobs", "free_bufs", ".bss"),
        skip=(SKIP_RAW_DATA,),
        compare=("r0",),
        notes=("queue/stack contents are compared by peeking (a lookup without key)",
               "bpf_map_lookup_percpu_elem for CPU 4096 is NULL on both sides; CPU 0 is the kernel's pinned "
               "CPU and bpfmc's core 0"),
    ),
    Case(
        "kprobe_openat2", "kprobe_open.c", "kprobe_openat2", "kprobe",
        (pt_regs(di=-100, si=0x7FFD12345678, dx=0xFFFFC90000A3FD58, ip=0xFFFFFFFF81234567),
         pt_regs(di=3, si=0x7FFD12340000, dx=0xFFFFC90000A3FE00, ip=0xFFFFFFFF81234567),
         pt_regs(di=-100, si=0x55555555A000, dx=0xFFFFC90000A3FF00, ip=0xFFFFFFFF81234568)),
        maps=("opens_by_dfd", "last_open"),
        compare=("r0",),
        kernel="verify",
        skip=(("kernel run", "the kernel has no BPF_PROG_TEST_RUN for kprobe programs; it only verifies "
                             "the object, and bpfmc is held to the hand-computed result below"),),
        notes=("rc_read_how expects -EFAULT (-14): what the kernel returns for an unmapped kernel address, "
               "which is every address outside bpfmc's regions",),
        expect={
            "runs": [{"r0": 0}, {"r0": 0}, {"r0": 0}],
            "maps": {
                "opens_by_dfd": {struct.pack("<i", -100).hex(): struct.pack("<Q", 2).hex(),
                                 struct.pack("<i", 3).hex(): struct.pack("<Q", 1).hex()},
                "last_open": {u32(0).hex(): struct.pack("<qQQQqQ", -100, 0x55555555A000, 0xFFFFC90000A3FF00,
                                                        0xFFFFFFFF81234568, -14, 0).hex()},
            },
            "derived": {},
        },
    ),
    Case(
        "legacy_maps", "legacy_maps.c", "legacy_count", "socket", ("udp4", "udp6", "arp", "tcp4", "runt_l2"),
        maps=("type_counts",),
        compare=("r0",),
        kernel="refuses",
        skip=(("kernel run", "libbpf 1.x refuses legacy SEC(\"maps\") definitions and the kernel's copy must "
                             "be loaded by libbpf; bpfmc is held to the hand-computed result"),),
        expect={
            "runs": [{"r0": len(PACKETS[f]) - 14} for f in ("udp4", "udp6", "arp", "tcp4", "runt_l2")],
            "maps": {"type_counts": {u32(k).hex(): struct.pack("<Q", n).hex()
                                     for k, n in ((0, 2), (1, 1), (2, 1), (3, 1))}},
            "derived": {},
        },
    ),
]
CASE_IDS = [c.id for c in CASES]


def case_by_id(case_id: str) -> Case:
    return next(c for c in CASES if c.id == case_id)


# --- normalizing and comparing -----------------------------------------------------------------


def _mask(case: Case, name: str, value_hex: str) -> str:
    raw = bytearray(bytes.fromhex(value_hex))
    for m, off, n in case.masks:
        if m == name:
            raw[off:off + n] = bytes(min(n, max(0, len(raw) - off)))
    return raw.hex()


def masked_maps(case: Case, maps_raw: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, entries in maps_raw.items():
        if name not in case.maps:
            continue
        # Queue and stack maps are {"peek": hex or None}; masks never name them.
        out[name] = {k: _mask(case, name, v) if isinstance(v, str) else v for k, v in entries.items()}
    return out


def finish(case: Case, runs: list[dict], maps_raw: dict[str, Any]) -> Result:
    """A side's complete result: compared runs and (masked) maps, derived values, and the raw
    values the plausibility checks look at."""
    result: Result = {"runs": runs, "maps_raw": maps_raw}
    result["maps"] = masked_maps(case, maps_raw)
    result["derived"] = {name: fn(result) for name, fn in case.derived}
    return result


def differences(case: Case, ours: Result, ref: Result, ref_name: str = "kernel") -> list[str]:
    """Every mismatch between bpfmc's result and the reference's, one line each."""
    out: list[str] = []
    labels = case.labels()
    if len(ours["runs"]) != len(ref["runs"]):
        out.append(f"{case.id}: {len(ours['runs'])} runs vs {len(ref['runs'])}")
    for i, (a, b) in enumerate(zip(ours["runs"], ref["runs"], strict=False)):
        if a.get("error"):
            out.append(f"{case.id} input {i} ({labels[i]}): bpfmc faulted: {a['error']}")
        for what in case.compare:
            if what not in b or (what == "trace" and (a.get(what) is None or b[what] is None)):
                continue  # the kernel could not observe it (trace: tracefs not mounted)
            if a.get(what) != b.get(what):
                out.append(f"{case.id} input {i} ({labels[i]}): {what}: ours {_show(a.get(what))} vs "
                           f"{ref_name} {_show(b.get(what))}")
    for name in case.maps:
        a, b = ours["maps"].get(name), ref["maps"].get(name)
        if a is None or b is None:
            out.append(f"{case.id}: map {name}: {'missing in bpfmc' if a is None else f'no {ref_name} value'}")
            continue
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                out.append(f"{case.id}: map {name} key {key}: ours {a.get(key)} vs {ref_name} {b.get(key)}")
    for name in sorted(set(ours.get("derived", {})) | set(ref.get("derived", {}))):
        if ours["derived"].get(name) != ref["derived"].get(name):
            out.append(f"{case.id}: {name}: ours {ours['derived'].get(name)} vs {ref_name} "
                       f"{ref['derived'].get(name)}")
    return out


def _show(v: Any) -> str:
    return repr(v) if not isinstance(v, int) else f"{v} ({v:#x})"


def ctx_fields(skb: bytes) -> dict[str, Any]:
    """The writable __sk_buff fields a test run's ctx_out reports, from a raw struct."""
    return {"mark": struct.unpack_from("<I", skb, SKB_MARK)[0],
            "priority": struct.unpack_from("<I", skb, SKB_PRIORITY)[0],
            "cb": list(struct.unpack_from("<5I", skb, SKB_CB))}


# --- the kernel side --------------------------------------------------------------------------

PAGE = mmap.PAGESIZE


class RingConsumer:
    """A user-space consumer of a BPF ring buffer map, as libbpf's ring_buffer reads one: a
    read-write consumer page, then the read-only producer page and the data area mapped twice
    (so a record that wraps reads contiguously)."""

    BUSY, DISCARD = 1 << 31, 1 << 30

    def __init__(self, m: kernel.KernelMap):
        self.size = m.max_entries
        self.cons = mmap.mmap(m.fd, PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        self.prod = mmap.mmap(m.fd, PAGE + 2 * self.size, mmap.MAP_SHARED, mmap.PROT_READ, offset=PAGE)

    def drain(self) -> list[bytes]:
        (cons,) = struct.unpack_from("<Q", self.cons, 0)
        (prod,) = struct.unpack_from("<Q", self.prod, 0)
        out = []
        while cons < prod:
            at = PAGE + (cons & (self.size - 1))
            (hdr,) = struct.unpack_from("<I", self.prod, at)
            if hdr & self.BUSY:
                break
            n = hdr & ~(self.BUSY | self.DISCARD)
            if not hdr & self.DISCARD:
                out.append(bytes(self.prod[at + 8:at + 8 + n]))
            cons += (n + 8 + 7) & ~7
        struct.pack_into("<Q", self.cons, 0, cons)
        return out

    def close(self) -> None:
        self.cons.close()
        self.prod.close()


class PerfReader:
    """A PERF_COUNT_SW_BPF_OUTPUT event on one CPU, installed in a PERF_EVENT_ARRAY slot, and
    the reader of its mmap'ed ring (PERF_SAMPLE_RAW records)."""

    PAGES = 4
    SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}
    PERF_TYPE_SOFTWARE, PERF_COUNT_SW_BPF_OUTPUT, PERF_SAMPLE_RAW, PERF_RECORD_SAMPLE = 1, 10, 1 << 10, 9
    PERF_FLAG_FD_CLOEXEC = 8

    def __init__(self, m: kernel.KernelMap, cpu: int):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        # struct perf_event_attr, PERF_ATTR_SIZE_VER0 (64 bytes): type, size, config, sample_period,
        # sample_type, read_format, flags (all clear: enabled), wakeup_events, bp_type, config1.
        attr = struct.pack("<IIQQQQQIIQ", self.PERF_TYPE_SOFTWARE, 64, self.PERF_COUNT_SW_BPF_OUTPUT, 1,
                           self.PERF_SAMPLE_RAW, 0, 0, 1, 0, 0)
        buf = ctypes.create_string_buffer(attr, len(attr))
        nr = self.SYS_PERF_EVENT_OPEN[os.uname().machine]
        fd = libc.syscall(ctypes.c_long(nr), buf, ctypes.c_int(-1), ctypes.c_int(cpu), ctypes.c_int(-1),
                          ctypes.c_ulong(self.PERF_FLAG_FD_CLOEXEC))
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"perf_event_open: {os.strerror(err)}")
        self.fd = fd
        self.ring = mmap.mmap(fd, PAGE * (1 + self.PAGES), mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        m.update(cpu, u32(fd))

    def drain(self) -> list[bytes]:
        head, tail = struct.unpack_from("<QQ", self.ring, 1024)  # data_head, data_tail
        size = PAGE * self.PAGES
        data = bytes(self.ring[PAGE:]) * 2  # records may wrap
        out = []
        while tail < head:
            off = tail % size
            typ, _misc, n = struct.unpack_from("<IHH", data, off)
            if typ == self.PERF_RECORD_SAMPLE:
                (raw_n,) = struct.unpack_from("<I", data, off + 8)
                raw = data[off + 12:off + 12 + raw_n]
                # The kernel pads a raw sample so that its u32 size plus data is 8-byte aligned. The
                # corpus writes multiples of 8, so the last 4 bytes are always that padding.
                out.append(raw[:-4] if raw_n % 8 == 4 else raw)
            tail += n
        struct.pack_into("<Q", self.ring, 1032, tail)
        return out

    def close(self) -> None:
        self.ring.close()
        os.close(self.fd)


TRACE = Path("/sys/kernel/tracing/trace")
_TRACE_LINE = re.compile(r"^\s*.+?-(\d+)\s+\[\d+\].*?bpf_trace_printk: (.*)$")


class TraceReader:
    """bpf_printk output from tracefs, this thread's lines only. ``None`` from :meth:`drain` when
    tracefs is not mounted (then trace lines are not compared)."""

    def __init__(self) -> None:
        self.ok = TRACE.exists()
        self.tid = threading.get_native_id()
        self.clear()

    def clear(self) -> None:
        if self.ok:
            with open(TRACE, "w"):  # O_TRUNC empties the buffer
                pass

    def drain(self) -> list[str] | None:
        if not self.ok:
            return None
        lines = []
        for line in TRACE.read_text(errors="replace").splitlines():
            m = _TRACE_LINE.match(line)
            if m and int(m.group(1)) == self.tid:
                lines.append(m.group(2))
        self.clear()
        return lines


def raw_tp_test_run(prog: kernel.KernelProgram, ctx: bytes) -> int:
    """BPF_PROG_TEST_RUN of a raw tracepoint program. Done by hand because the kernel refuses
    (EINVAL) any data_in/data_out pointer or repeat for this type, and kernel.prog_test_run always
    passes a data buffer."""
    buf = ctypes.create_string_buffer(ctx, len(ctx))
    attr = kernel.TestRunAttr()
    attr.prog_fd = prog.fd
    attr.ctx_size_in = len(ctx)
    attr.ctx_in = ctypes.addressof(buf)
    kernel._sys_bpf(kernel.BPF_PROG_TEST_RUN, attr)
    return attr.retval


def _percpu_row(value: bytes, value_size: int, cpu: int) -> bytes:
    stride = (value_size + 7) & ~7
    return value[cpu * stride:cpu * stride + value_size]


def read_kernel_map(m: kernel.KernelMap) -> dict[str, Any]:
    if m.type_name in ("queue", "stack"):
        v = m.lookup(None)
        return {"peek": v.hex() if v is not None else None}
    out = {}
    for k, v in m.items():
        out[k.hex()] = (_percpu_row(v, m.value_size, CPU) if m.is_percpu else v).hex()
    return out


@contextlib.contextmanager
def kernel_object(path: Path) -> Iterator[kernel.KernelObject]:
    obj = kernel.load_object(path)
    try:
        yield obj
    finally:
        obj.close()


def kernel_result(case: Case, path: Path) -> Result:
    """Load ``path`` with libbpf, apply the setup, run every input on CPU 0, read the maps."""
    with contextlib.ExitStack() as stack:
        obj = stack.enter_context(kernel_object(path))
        prog = obj.programs[case.program]
        for name, key, value in case.setup:
            obj.map(name).update(key, value)
        ring = perf = None
        for m in obj.maps.values():
            if m.type_name == "ringbuf":
                ring = RingConsumer(m)
                stack.callback(ring.close)
            elif m.type_name == "perf_event_array" and "records" in case.compare:
                perf = PerfReader(m, CPU)
                stack.callback(perf.close)
        trace = TraceReader() if "trace" in case.compare else None
        runs = []
        with kernel.pin_to_cpu(CPU):
            for frame in case.frames():
                run: dict[str, Any] = {}
                if case.kind == "raw_tp":
                    run["r0"] = raw_tp_test_run(prog, frame)
                else:
                    ctx_in = bytes(SKB_CTX_SIZE) if case.kind in ("tc", "socket") else None
                    res = kernel.prog_test_run(prog, frame, ctx_in=ctx_in)
                    run["r0"] = res.retval & U32
                    run["data_out"] = _changed(case, frame, res.data_out)
                    if ctx_in is not None:
                        assert res.ctx_out is not None
                        run["ctx"] = ctx_fields(res.ctx_out)
                if "records" in case.compare:
                    recs = (ring.drain() if ring else []) + (perf.drain() if perf else [])
                    run["records"] = [r.hex() for r in recs]
                elif ring:
                    ring.drain()
                if trace is not None:
                    run["trace"] = trace.drain()
                runs.append(run)
        maps_raw = {}
        for name in case.maps + tuple(n for n, _ in case.derived):
            maps_raw[name] = read_kernel_map(obj.map(name))
    return finish(case, runs, maps_raw)


def _changed(case: Case, frame: bytes, out: bytes) -> str | None:
    """The output packet as hex, or None when the program left it as it came. Socket filters:
    from byte 14 on (the kernel hands back the pulled Ethernet header zeroed)."""
    if case.kind == "socket":
        frame, out = frame[14:], out[14:]
    return None if out == frame else out.hex()


# --- the bpfmc side ---------------------------------------------------------------------------


def engine_class() -> tuple[Any, str]:
    """bpfmc's Engine when it can load objects, else (None, why)."""
    try:
        from bpfmc.worker.engine import Engine
    except ImportError as e:  # pragma: no cover - the package is broken, not absent
        return None, f"bpfmc.worker.engine does not import: {e}"
    if not hasattr(Engine, "from_object"):
        return None, "bpfmc's Engine.from_object (ELF objects, maps, contexts) has not landed yet"
    return Engine, ""


def _engine_map(eng: Any, name: str) -> Any:
    maps = eng.maps
    if name in maps:
        return maps[name]
    hits = [n for n in maps if name.startswith(".") and n.endswith(name)]
    if len(hits) != 1:
        raise KeyError(f"bpfmc has {'several' if hits else 'no'} map {name!r} (maps: {', '.join(maps)})")
    return maps[hits[0]]


def _map_type_name(m: Any) -> str:
    mdef = m.mdef
    name = getattr(mdef, "type_name", None)
    if name is None:
        name = {v: k for k, v in kernel.MAP_TYPES.items()}.get(mdef.map_type, str(mdef.map_type))
    return str(name).lower()


def read_engine_map(m: Any, core: int) -> dict[str, Any]:
    """Map contents in read_kernel_map's shape: hex key -> hex value (per-CPU maps: ``core``'s
    row), or the head element of a queue or stack."""
    if _map_type_name(m) in ("queue", "stack"):
        v = m.peek()
        return {"peek": v.hex() if v is not None else None}
    vs = m.mdef.value_size
    out = {}
    for k, v in m.items():
        out[bytes(k).hex()] = (bytes(m.per_cpu(v)[core])[:vs] if m.mdef.per_cpu else bytes(v)).hex()
    return out


def _engine_ctx(raw: dict[str, Any] | None) -> dict[str, Any]:
    """bpfmc's changed-ctx report in the kernel ctx_out's terms (unreported fields are still 0,
    as the kernel's ctx_in was)."""
    raw = raw or {}
    cb = [0] * 5
    if isinstance(raw.get("cb"), list | tuple):
        cb = [int(x) for x in raw["cb"]] + [0] * (5 - len(raw["cb"]))
    for i in range(5):
        for name in (f"cb[{i}]", f"cb{i}", f"cb_{i}"):
            if name in raw:
                cb[i] = int(raw[name])
    return {"mark": int(raw.get("mark", 0)), "priority": int(raw.get("priority", 0)), "cb": cb}


def engine_result(case: Case, path: Path) -> Result:
    Engine, why = engine_class()
    if Engine is None:
        pytest.skip(why)
    eng = Engine.from_object(path, program=case.program, model="generic", cpu=CPU, seed=0)
    core = CPU
    for name, key, value in case.setup:
        _engine_map(eng, name).update(key, value, 0)
    frames = case.frames()
    batch = eng.run_batch(frames)
    runs = []
    for i, frame in enumerate(frames):
        raw = batch.run(i)
        run: dict[str, Any] = {"r0": int(batch.r0[i]) & U32}
        if "error" in raw:
            run["error"] = raw["error"]
        if case.kind not in ("raw_tp", "kprobe"):
            run["data_out"] = _changed(case, frame, batch.output(i))
        if case.kind in ("tc", "socket"):
            run["ctx"] = _engine_ctx(raw.get("ctx"))
            run["ctx_raw"] = raw.get("ctx") or {}
        run["records"] = [r.lower() for r in raw.get("records", [])]
        run["trace"] = list(raw.get("trace", []))
        runs.append(run)
    maps_raw = {name: read_engine_map(_engine_map(eng, name), core)
                for name in case.maps + tuple(n for n, _ in case.derived)}
    return finish(case, runs, maps_raw)


# --- expected results on disk -----------------------------------------------------------------


def load_expected() -> dict[str, Result]:
    if not EXPECTED.exists():
        return {}
    return json.loads(EXPECTED.read_text())


def stored(result: Result) -> Result:
    """The part of a result that goes to expected.json: compared fields only."""
    return {"runs": [{k: v for k, v in run.items() if k != "ctx_raw"} for run in result["runs"]],
            "maps": result["maps"], "derived": result["derived"]}


def save_expected(case: Case, result: Result) -> None:
    data = load_expected()
    data[case.id] = {"kernel": os.uname().release, **stored(result)}
    EXPECTED.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


# --- tests ------------------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_kernel_reference(case: Case, libbpf, bpf_cc) -> None:
    """The kernel loads (or, for the rows that say so, verifies or refuses) each program and gives
    the recorded results; plausibility checks hold for what is not compared."""
    path = bpf_cc(PROGS / case.source)
    if case.kernel == "refuses":
        with pytest.raises(kernel.KernelError) as err:
            kernel.load_object(path)
        assert "legacy map definitions" in err.value.log
        return
    if case.kernel == "verify":
        with kernel_object(path) as obj:
            assert case.program in obj.programs
        return
    result = kernel_result(case, path)
    if "trace" in case.compare and not TRACE.exists():
        warnings.warn(f"{TRACE} not found (mount tracefs): {case.id}'s trace lines are not compared", stacklevel=1)
    for check in case.checks:
        check("kernel", result)
    if RECORD:
        save_expected(case, result)
    expected = load_expected().get(case.id)
    assert expected is not None, f"no recorded result for {case.id}: run with BPFMC_RECORD_PROGS=1"
    problems = differences(case, stored(result), expected, ref_name="recorded")
    assert not problems, "the kernel no longer gives the recorded results:\n" + "\n".join(problems)


@pytest.mark.kernel
@pytest.mark.parametrize("case", [c for c in CASES if c.kernel == "run"], ids=[c.id for c in CASES
                                                                               if c.kernel == "run"])
def test_engine_matches_kernel(case: Case, libbpf, bpf_cc) -> None:
    """bpfmc against the kernel on the same object file: every mismatch is listed."""
    if engine_class()[0] is None:
        pytest.skip(engine_class()[1])
    path = bpf_cc(PROGS / case.source)
    ref = kernel_result(case, path)
    ours = engine_result(case, path)
    for check in case.checks:
        check("bpfmc", ours)
    problems = differences(case, ours, ref)
    assert not problems, f"{len(problems)} mismatches:\n" + "\n".join(problems)
