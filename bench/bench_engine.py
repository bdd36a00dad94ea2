#!/usr/bin/env python3
"""The standard programs B0-B5 (shared/bench/) on the bpfmc engine and on the host kernel, side by side.

    python bench/bench_engine.py [--quick] [--json] [--programs B1,B2] [--skip-compile]

Builds each program with clang-19 into an object, runs it in the engine in batch mode
(``Engine.from_object``, one call into compiled code per batch) and -- in the same run, where
``bpf()`` is permitted -- loads the same object into the host kernel with libbpf and times it with
BPF_PROG_TEST_RUN. Every result is checked first (return value, executed instructions, map
counters); then it prints per-run time for both, the engine's speed as a fraction of the kernel's,
the issue's targets (B2/B3/B4 per-packet time, B1 at 1/10 of the kernel's instructions/s or
better) met or missed, and the engine's one-time compile cost with a cold and a warm Numba cache.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent

XDP_PASS = 2
B1_R0 = 0x11B36D483594AB6D  # shared/bench/README.md: B1's full 64-bit r0
B1_INSNS = 992_013

PKT_LEN = 64
SPORT, DPORT = 40000, 80
B5_PORTS = 256  # B5's engine batches cycle through source ports 40000 .. 40255
B5_KEYS = 64  # B5 counts per (source port & 63)

CLANG = os.environ.get("BPFMC_CLANG", "clang-19")
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]


@dataclass(frozen=True)
class Bench:
    id: str
    source: str  # file in shared/bench/
    program: str  # function name = libbpf program name
    what: str
    r0: int = XDP_PASS  # the engine's full r0; the kernel reports its low 32 bits
    insns: int | None = None  # executed instructions per run in steady state (shared/bench/README.md)
    max_ns: float | None = None  # issue target: engine time per packet at most this
    min_ratio: float | None = None  # issue target: engine speed at least this fraction of the kernel's
    heavy: bool = False  # long runs: small batches, few kernel repeats

    @property
    def label(self) -> str:
        return f"{self.id} {self.program}"


PROGRAMS = [
    Bench("B0", "b0_empty.c", "empty", "return XDP_PASS: per-call overhead", insns=2),
    Bench("B1", "b1_alu.c", "alu_loop", "62,000-iteration ALU loop", r0=B1_R0, insns=B1_INSNS, min_ratio=0.1,
          heavy=True),
    Bench("B2", "b2_parse.c", "packet_parse", "Ethernet/IPv4/TCP parse", insns=62, max_ns=100),
    Bench("B3", "b3_hash.c", "map_count", "HASH lookup + increment", insns=15, max_ns=150),
    Bench("B4", "b4_percpu.c", "percpu_count", "PERCPU_ARRAY lookup + increment", insns=16, max_ns=100),
    Bench("B5", "b5_atomic_hash.c", "atomic_hash", "HASH over 64 keys, atomic add"),
]
BY_ID = {b.id: b for b in PROGRAMS}


@dataclass(frozen=True)
class Sizes:
    batch: int  # engine: runs per batch (packet programs)
    batches: int
    b1_batch: int  # engine: runs per batch of B1
    b1_batches: int
    repeat: int  # kernel: BPF_PROG_TEST_RUN repeat (packet programs)
    b1_repeat: int
    samples: int  # kernel: test runs, the fastest reported

    @staticmethod
    def of(quick: bool) -> Sizes:
        if quick:
            return Sizes(batch=20_000, batches=3, b1_batch=20, b1_batches=3, repeat=10_000, b1_repeat=50, samples=3)
        return Sizes(batch=200_000, batches=7, b1_batch=100, b1_batches=11, repeat=100_000, b1_repeat=200,
                     samples=11)


class BenchError(Exception):
    """A precondition of the benchmark is missing (tool, shared folder, wrong result)."""


def shared_dir() -> Path:
    env = os.environ.get("BPFMC_SHARED")
    candidates = ([Path(env)] if env else []) + [REPO.parent / "shared"]
    for c in candidates:
        if all((c / "bench" / b.source).is_file() for b in PROGRAMS):
            return c
    raise BenchError(f"shared/bench/b0_empty.c .. b5_atomic_hash.c not found in "
                     f"{', '.join(map(str, candidates))} (set BPFMC_SHARED)")


# --- input -----------------------------------------------------------------------------------


def _csum16(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def syn_packet(sport: int = SPORT) -> bytes:
    """shared/bench/README.md's input: a 64-byte Ethernet/IPv4/TCP SYN, 10.0.0.1:<sport> -> 10.0.0.2:80,
    TTL 64, no IP options, TCP data offset 5, both checksums correct, padded to 64 bytes."""
    src, dst = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
    tcp = struct.pack("!HHIIBBHHH", sport, DPORT, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", _csum16(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0, src, dst)
    ip = ip[:10] + struct.pack("!H", _csum16(ip)) + ip[12:]
    frame = bytes.fromhex("020000000002" "020000000001") + struct.pack("!H", 0x0800) + ip + tcp
    assert _csum16(ip) == 0 and _csum16(pseudo + tcp) == 0
    return frame.ljust(PKT_LEN, b"\0")


def packet_batch(bench: Bench, n: int, start: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n packets packed for ``Engine.run_batch``: (blob, lengths) and each run's TCP source port.
    B5 cycles source ports 40000 + i % 256 (64 port classes); the others all get the standard SYN."""
    if bench.id == "B5":
        ports = SPORT + (np.arange(start, start + n) % B5_PORTS)
        table = np.frombuffer(b"".join(syn_packet(SPORT + i) for i in range(B5_PORTS)), np.uint8)
        blob = table.reshape(B5_PORTS, PKT_LEN)[ports - SPORT].reshape(-1)
    else:
        ports = np.full(n, SPORT)
        blob = np.tile(np.frombuffer(syn_packet(), np.uint8), n)
    return np.ascontiguousarray(blob), np.full(n, PKT_LEN, np.int64), ports


def _tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found on PATH; it is needed to {purpose} "
                         f"(install LLVM 19, or point BPFMC_CLANG at another build)")
    return path


def build(bench: Bench, shared: Path, workdir: Path) -> Path:
    src = shared / "bench" / bench.source
    obj = workdir / (Path(bench.source).stem + ".o")
    cmd = [_tool(CLANG, "compile the benchmark programs"), *BPF_CFLAGS, f"-I{shared / 'bench'}", "-c", str(src),
           "-o", str(obj)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        raise BenchError(f"{CLANG} failed on {src}:\n{proc.stderr}")
    return obj


# --- map checks (the same rules for both sides) ---------------------------------------------


def _u64(raw: bytes) -> int:
    return int.from_bytes(raw[:8], "little")


class Counts:
    """What the maps must hold after the runs so far: B3/B4 count runs under key 64 (the packet
    length), B5 counts runs per source-port class."""

    def __init__(self) -> None:
        self.runs = 0
        self.per_key = np.zeros(B5_KEYS, np.int64)

    def add(self, ports: np.ndarray, times: int = 1) -> None:
        """Runs of a batch with these source ports, ``times`` over."""
        self.runs += len(ports) * times
        self.per_key += times * np.bincount(np.asarray(ports) & (B5_KEYS - 1), minlength=B5_KEYS)


def check_maps(bench: Bench, side: str, counts: Counts, lookup, per_cpu_sum, items) -> None:
    """``lookup(map, key) -> bytes|None``; ``per_cpu_sum(map, key) -> (total, rows)``; ``items(map)``."""
    if bench.id == "B3":
        got = lookup("counts", PKT_LEN)
        if got is None or _u64(got) != counts.runs:
            raise BenchError(f"{side} {bench.label}: counts[{PKT_LEN}] = {None if got is None else _u64(got)}, "
                             f"want {counts.runs} (one per run)")
    elif bench.id == "B4":
        total, rows = per_cpu_sum("counts", PKT_LEN)
        if total != counts.runs:
            raise BenchError(f"{side} {bench.label}: per-CPU counts[{PKT_LEN}] = {rows} (sum {total}), "
                             f"want a sum of {counts.runs} (one per run)")
    elif bench.id == "B5":
        got = {int.from_bytes(k, "little"): _u64(v) for k, v in items("hits")}
        want = {k: int(c) for k, c in enumerate(counts.per_key) if c}
        if got != want:
            bad = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))[:5]
            raise BenchError(f"{side} {bench.label}: per-key counts differ at keys {bad}: "
                             f"got {[got.get(k) for k in bad]}, want {[want.get(k) for k in bad]}")


# --- the engine ------------------------------------------------------------------------------


def bench_engine(bench: Bench, obj: Path, batch_size: int, batches: int) -> dict:
    from bpfmc.worker.engine import Engine

    engine = Engine.from_object(obj, program=bench.program)  # XDP: from the section, like libbpf
    try:
        if engine.prog_type != "xdp":
            raise BenchError(f"engine loaded {bench.label} as {engine.prog_type!r}, want xdp")
        counts = Counts()
        # Warm-up: compiles (or loads the compiled engine from cache) and, for the map programs,
        # inserts the keys, so that the timed batches measure the steady state (hits).
        warm_n = B5_PORTS if bench.id == "B5" else 1
        blob, lengths, ports = packet_batch(bench, warm_n)
        res = engine.run_batch((blob, lengths))
        counts.add(ports)
        if res.faulted.any() or (res.r0 != bench.r0).any():
            raise BenchError(f"engine {bench.label}: first run gave {res.run(int(np.argmax(res.r0 != bench.r0)))}, "
                             f"want r0 = {bench.r0:#x}")
        blob, lengths, ports = packet_batch(bench, batch_size, start=warm_n)
        times, insns = [], None
        for _ in range(batches):
            t0 = time.perf_counter()
            res = engine.run_batch((blob, lengths))
            times.append(time.perf_counter() - t0)
            counts.add(ports)
            if res.faulted.any():
                i = int(np.argmax(res.faulted))
                raise BenchError(f"engine {bench.label}: run {i} of a batch faulted: {res.error(i)}")
            if (res.r0 != bench.r0).any():
                raise BenchError(f"engine {bench.label}: r0 {sorted({int(x) for x in res.r0})[:4]} in a batch, "
                                 f"want {bench.r0:#x}")
            if bench.insns is not None and (res.insns != bench.insns).any():
                raise BenchError(f"engine {bench.label}: executed instructions {sorted(set(res.insns.tolist()))[:4]} "
                                 f"in a batch, want {bench.insns}")
            insns = float(res.insns.mean())
        m = engine.maps
        check_maps(bench, "engine", counts,
                   lookup=lambda name, key: m[name].lookup(key),
                   per_cpu_sum=lambda name, key: _engine_per_cpu(m[name], key),
                   items=lambda name: m[name].items())
    finally:
        engine.close()
    per_run = min(times) / batch_size
    return {"per_run_s": per_run, "median_per_run_s": sorted(times)[len(times) // 2] / batch_size,
            "insns_per_run": insns, "insn_per_s": insns / per_run, "batch_size": batch_size, "batches": batches,
            "runs": counts.runs}


def _engine_per_cpu(mp, key: int) -> tuple[int, list[int]]:
    raw = mp.lookup(key)
    rows = [] if raw is None else [_u64(v) for v in mp.per_cpu(raw)]
    return sum(rows), rows


_COMPILE_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from bpfmc.worker.engine import Engine
t1 = time.perf_counter()
run = Engine.from_object(sys.argv[1], program=sys.argv[2]).run(bytes.fromhex(sys.argv[3]))
t2 = time.perf_counter()
from bpfmc.worker.jitcache import CACHE_DIR
print(json.dumps({"import_s": t1 - t0, "construct_and_first_run_s": t2 - t1, "r0": run["r0"],
                  "cache_dir": str(CACHE_DIR)}))
"""


def bench_compile(b1_obj: Path, attempts: int = 3) -> dict:
    """Engine construction + first run of B1 in a fresh process with an empty Numba cache (cold),
    then again with the cache the first process left (warm).

    The cache folder is named after a hash of the engine's sources (worker/jitcache.py), so an
    edit to worker/ between the two processes sends the warm one to a new, empty folder and it
    compiles again. The pair is then measured again rather than reported as a warm start."""
    for _ in range(attempts):
        out = {}
        with tempfile.TemporaryDirectory(prefix="bpfmc-cache-") as cache:
            env = dict(os.environ, BPFMC_CACHE_DIR=cache)
            for label in ("cold", "warm"):
                t0 = time.perf_counter()
                proc = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(b1_obj), BY_ID["B1"].program,
                                       syn_packet().hex()], capture_output=True, text=True, env=env)
                wall = time.perf_counter() - t0
                if proc.returncode:
                    raise BenchError(f"{label} compile run failed:\n{proc.stderr}")
                res = json.loads(proc.stdout.strip().splitlines()[-1])
                if res.pop("r0") != B1_R0:
                    raise BenchError(f"{label} compile run gave the wrong r0")
                out[label] = {**res, "process_s": wall}
        if out["cold"].pop("cache_dir") == out["warm"].pop("cache_dir"):
            return out
    raise BenchError(f"the engine's sources changed during each of {attempts} cold/warm compile measurements")


# --- the host kernel -------------------------------------------------------------------------


def kernel_status() -> tuple[bool, str]:
    from bpfmc.ebpf import kernel

    ok, reason = kernel.available()
    if not ok:
        return False, f"bpf() unavailable: {reason}"
    ok, reason = kernel.libbpf_available()
    if not ok:
        return False, f"libbpf unavailable: {reason}"
    return True, ""


def bench_kernel(bench: Bench, obj: Path, repeat: int, samples: int) -> dict:
    """BPF_PROG_TEST_RUN ``repeat`` times per call; the kernel reports its average per run (ns,
    including its own loop). B5 gets one call per source-port class (64 packets) with
    ``repeat // 64`` each, so that the 64 keys are hit as in the engine's batches."""
    from bpfmc.ebpf import kernel

    t0 = time.perf_counter()
    with kernel.load_object(obj) as loaded:  # libbpf, never our own loader (DESIGN)
        load_s = time.perf_counter() - t0
        prog = loaded.programs[bench.program]
        pkts = [syn_packet(SPORT + k) for k in range(B5_KEYS)] if bench.id == "B5" else [syn_packet()]
        each = max(1, repeat // len(pkts))
        counts = Counts()
        for p in pkts:
            retval = prog.test_run(p).retval
            counts.add(np.array([struct.unpack_from("!H", p, 34)[0]]))
            if retval != bench.r0 & 0xFFFFFFFF:
                raise BenchError(f"kernel {bench.label}: retval {retval:#x}, want {bench.r0 & 0xFFFFFFFF:#x}")
        durations = []
        for _ in range(samples):
            ns = []
            for p in pkts:
                r = prog.test_run(p, repeat=each)
                counts.add(np.full(each, struct.unpack_from("!H", p, 34)[0]))
                if r.retval != bench.r0 & 0xFFFFFFFF:
                    raise BenchError(f"kernel {bench.label}: retval {r.retval:#x} in a timed run")
                ns.append(r.duration_ns)
            durations.append(sum(ns) / len(ns))
        check_maps(bench, "kernel", counts,
                   lookup=lambda name, key: loaded.map(name).lookup(key),
                   per_cpu_sum=lambda name, key: _kernel_per_cpu(loaded.map(name), key),
                   items=lambda name: loaded.map(name).items())
    per_run = min(durations) * 1e-9
    out = {"available": True, "per_run_s": per_run, "median_per_run_s": sorted(durations)[len(durations) // 2] * 1e-9,
           "repeat": each, "packets": len(pkts), "samples": samples, "load_s": load_s, "runs": counts.runs}
    if bench.insns is not None:
        out["insn_per_s"] = bench.insns / per_run
    return out


def _kernel_per_cpu(mp, key: int) -> tuple[int, list[int]]:
    rows = mp.lookup_percpu(key)
    rows = [] if rows is None else [_u64(v) for v in rows]
    return sum(rows), rows


# --- report ----------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _target(bench: Bench, engine: dict, ratio: float | None) -> dict | None:
    if bench.max_ns is not None:
        ns = engine["per_run_s"] * 1e9
        return {"kind": "max_ns_per_run", "value": bench.max_ns, "measured": ns, "met": ns <= bench.max_ns}
    if bench.min_ratio is not None:
        return {"kind": "min_ratio_vs_kernel", "value": bench.min_ratio, "measured": ratio,
                "met": None if ratio is None else ratio >= bench.min_ratio}
    return None


def run(quick: bool, ids: list[str], compile_: bool) -> dict:
    shared = shared_dir()
    sizes = Sizes.of(quick)
    k_ok, k_reason = kernel_status()
    programs: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="bpfmc-bench-") as tmp:
        objs = {b.id: build(b, shared, Path(tmp)) for b in PROGRAMS if b.id in ids or (compile_ and b.id == "B1")}
        for b in PROGRAMS:
            if b.id not in ids:
                continue
            engine = bench_engine(b, objs[b.id], sizes.b1_batch if b.heavy else sizes.batch,
                                  sizes.b1_batches if b.heavy else sizes.batches)
            kern = (bench_kernel(b, objs[b.id], sizes.b1_repeat if b.heavy else sizes.repeat, sizes.samples)
                    if k_ok else {"available": False, "reason": k_reason})
            ratio = kern["per_run_s"] / engine["per_run_s"] if k_ok else None  # engine speed / kernel speed
            programs[b.id] = {"file": b.source, "program": b.program, "what": b.what, "r0": f"{b.r0:#x}",
                              "insns_per_run": engine["insns_per_run"], "engine": engine, "kernel": kern,
                              "ratio_engine_vs_kernel": ratio, "target": _target(b, engine, ratio)}
        compiled = bench_compile(objs["B1"]) if compile_ else None
    import numba

    return {
        "benchmark": "B0-B5 (shared/bench)", "quick": quick,
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "numba": numba.__version__},
        "kernel": {"available": k_ok, "reason": k_reason},
        "programs": programs, "compile": compiled,
    }


def _t(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def _target_text(t: dict | None) -> str:
    if t is None:
        return ""
    verdict = "not measured" if t["met"] is None else ("met" if t["met"] else "missed")
    if t["kind"] == "max_ns_per_run":
        return f"<= {t['value']:g} ns: {verdict}"
    return f">= 1/{1 / t['value']:g} of kernel: {verdict}"


def render(r: dict) -> str:
    m, progs = r["machine"], r["programs"]
    lines = [f"machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
             f"Numba {m['numba']}" + ("  [--quick]" if r["quick"] else ""), ""]
    header = ("program", "insns/run", "engine/run", "kernel/run", "engine/kernel", "target")
    rows = []
    for pid, p in progs.items():
        e, k, ratio = p["engine"], p["kernel"], p["ratio_engine_vs_kernel"]
        insns = p["insns_per_run"]
        rows.append((f"{pid} {p['program']}", f"{insns:,.0f}" if insns == int(insns) else f"{insns:,.1f}",
                     _t(e["per_run_s"]), _t(k["per_run_s"]) if k.get("available") else "-",
                     f"{ratio:.3f} (1/{1 / ratio:.1f})" if ratio else "-", _target_text(p["target"])))
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i in (0, 5) else '>'}{w}}}" for i, w in enumerate(widths))
    lines += [fmt.format(*row).rstrip() for row in [header, tuple("-" * w for w in widths), *rows]]
    lines.append("")
    if not r["kernel"]["available"]:
        lines.append(f"host kernel: not measured ({r['kernel']['reason']})")
    else:
        lines.append("engine/kernel: the engine's speed as a fraction of the kernel's (kernel time / engine time); "
                     "kernel times include its test-run loop (see B0).")
    if "B1" in progs:
        e, k = progs["B1"]["engine"], progs["B1"]["kernel"]
        b1 = f"B1 instructions/s: engine {e['insn_per_s'] / 1e9:.3f} G"
        if k.get("available"):
            b1 += f", kernel {k['insn_per_s'] / 1e9:.3f} G"
        lines.append(b1)
    pkt_p = next((p for pid, p in progs.items() if pid != "B1"), None)
    how = []
    for label, p in (("", pkt_p), ("B1: ", progs.get("B1"))):
        if p is None:
            continue
        e, k = p["engine"], p["kernel"]
        text = f"{label}engine fastest of {e['batches']} batches of {e['batch_size']:,} runs"
        if k.get("available"):
            text += (f", kernel fastest of {k['samples']} BPF_PROG_TEST_RUN averages over "
                     f"{k['repeat'] * k['packets']:,} runs")
        how.append(text)
    if how:
        lines.append("; ".join(how))
    c = r["compile"]
    if c:
        lines.append("")
        lines.append("engine one-time cost (fresh process; Engine.from_object(B1) + first run, after imports):")
        for label in ("cold", "warm"):
            x = c[label]
            lines.append(f"  {label:4} cache: {_t(x['construct_and_first_run_s']):>9}   "
                         f"(imports {_t(x['import_s'])}, whole process {_t(x['process_s'])})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and smaller batches (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    ap.add_argument("--programs", default=",".join(BY_ID), metavar="B0,B1,...",
                    help="which programs to run (default: all)")
    ap.add_argument("--skip-compile", action="store_true",
                    help="skip the cold/warm compile measurement (two fresh processes, one compiling the engine)")
    args = ap.parse_args(argv)
    ids = [x.strip().upper() for x in args.programs.split(",") if x.strip()]
    unknown = [x for x in ids if x not in BY_ID]
    if unknown:
        ap.error(f"unknown program(s) {', '.join(unknown)}; choose from {', '.join(BY_ID)}")
    try:
        result = run(args.quick, ids, not args.skip_compile)
    except BenchError as e:
        print(f"bench_engine: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
