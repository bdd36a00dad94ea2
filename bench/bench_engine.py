#!/usr/bin/env python3
"""B1 (shared/bench/b1_alu.c) on the bpfmc engine and on the host kernel, side by side.

    python bench/bench_engine.py [--quick] [--json]

Builds B1 with clang-19, takes its ``xdp`` section's bytes, runs them as a ``raw`` program in
the engine in batch mode, and -- in the same run, where ``bpf()`` is permitted -- loads the same
object into the host kernel with libbpf and times it with BPF_PROG_TEST_RUN. Prints per-run
time and instructions per second for both, their ratio, the ratio against the target (the
engine at 1/10 of the kernel or better), and the engine's one-time compile cost with a cold and
a warm Numba cache. See bench/README.md.
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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

B1_SECTION = "xdp"
B1_PROGRAM = "alu_loop"
B1_R0 = 0x11B36D483594AB6D  # shared/bench/README.md
B1_INSNS = 992_013
# The engine sees B1 as `raw`: B1 seeds from data_end - data, read as two u32 at offsets 0 and 4.
B1_RAW_INPUT = struct.pack("<II", 0, 64).ljust(64, b"\0")
TARGET_RATIO = 0.1  # the goal: at least 1/10 of the kernel's speed on B1

CLANG = os.environ.get("BPFMC_CLANG", "clang-19")
OBJCOPY = os.environ.get("BPFMC_OBJCOPY", "llvm-objcopy-19")
BPF_CFLAGS = ["-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu"]


class BenchError(Exception):
    """A precondition of the benchmark is missing (tool, shared folder, wrong result)."""


def shared_dir() -> Path:
    env = os.environ.get("BPFMC_SHARED")
    candidates = ([Path(env)] if env else []) + [REPO.parent / "shared"]
    for c in candidates:
        if (c / "bench" / "b1_alu.c").is_file():
            return c
    raise BenchError(f"shared/bench/b1_alu.c not found in {', '.join(map(str, candidates))} (set BPFMC_SHARED)")


def syn_packet() -> bytes:
    """shared/bench/README.md's input: 64-byte Ethernet/IPv4/TCP SYN, 10.0.0.1:40000 -> 10.0.0.2:80.
    B1 only looks at its length, but the kernel gets the real thing."""
    eth = bytes.fromhex("020000000002" "020000000001") + struct.pack("!H", 0x0800)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 40, 1, 0, 64, 6, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
    csum = sum(struct.unpack("!10H", ip))
    csum = (csum & 0xFFFF) + (csum >> 16)
    ip = ip[:10] + struct.pack("!H", ~csum & 0xFFFF) + ip[12:]
    tcp = struct.pack("!HHIIBBHHH", 40000, 80, 1, 0, 5 << 4, 0x02, 65535, 0, 0)
    return (eth + ip + tcp).ljust(64, b"\0")


def _tool(name: str, purpose: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BenchError(f"{name} not found on PATH; it is needed to {purpose} "
                         f"(install LLVM 19, or point BPFMC_CLANG / BPFMC_OBJCOPY at another build)")
    return path


def build_b1(shared: Path, workdir: Path) -> tuple[Path, bytes]:
    """Compile B1; return the object (for libbpf) and its xdp section's bytes (for the engine)."""
    src = shared / "bench" / "b1_alu.c"
    obj = workdir / "b1_alu.o"
    proc = subprocess.run([_tool(CLANG, "compile B1"), *BPF_CFLAGS, "-c", str(src), "-o", str(obj)],
                          capture_output=True, text=True)
    if proc.returncode:
        raise BenchError(f"{CLANG} failed on {src}:\n{proc.stderr}")
    # llvm-objcopy rather than an ELF library: pyelftools is not a dependency of bpfmc, and B1
    # has no relocations, so the section's raw bytes are the program.
    raw = workdir / "b1_alu.xdp.bin"
    proc = subprocess.run([_tool(OBJCOPY, "extract B1's program bytes"), "-O", "binary",
                           f"--only-section={B1_SECTION}", str(obj), str(raw)], capture_output=True, text=True)
    if proc.returncode:
        raise BenchError(f"{OBJCOPY} failed on {obj}:\n{proc.stderr}")
    code = raw.read_bytes()
    if not code or len(code) % 8:
        raise BenchError(f"section {B1_SECTION!r} of {obj} is {len(code)} bytes: not a program")
    return obj, code


# --- the engine ------------------------------------------------------------------------------


def bench_engine(code: bytes, batch_size: int, batches: int) -> dict:
    from bpfmc.ebpf.program import Program
    from bpfmc.worker.engine import Engine

    engine = Engine(Program(code, name=B1_PROGRAM, prog_type="raw"))
    first = engine.run(B1_RAW_INPUT)  # also compiles, or loads the compiled engine from cache
    if first.get("error") or first["r0"] != B1_R0 or first["insns"] != B1_INSNS:
        raise BenchError(f"engine result is wrong: {first} (want r0={B1_R0:#x}, insns={B1_INSNS})")
    blob = B1_RAW_INPUT * batch_size
    lengths = [len(B1_RAW_INPUT)] * batch_size
    times = []
    for _ in range(batches):
        t0 = time.perf_counter()
        res = engine.run_batch((blob, lengths))
        times.append(time.perf_counter() - t0)
        if (res.status != 0).any() or (res.r0 != B1_R0).any() or (res.insns != B1_INSNS).any():
            raise BenchError("engine result changed inside a batch")
    per_run = min(times) / batch_size
    return {"per_run_s": per_run, "insn_per_s": B1_INSNS / per_run, "batch_size": batch_size,
            "batches": batches, "median_per_run_s": sorted(times)[len(times) // 2] / batch_size}


_COMPILE_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from bpfmc.ebpf.program import Program
from bpfmc.worker.engine import Engine
t1 = time.perf_counter()
code = open(sys.argv[1], "rb").read()
run = Engine(Program(code, prog_type="raw")).run(bytes.fromhex(sys.argv[2]))
t2 = time.perf_counter()
from bpfmc.worker.jitcache import CACHE_DIR
print(json.dumps({"import_s": t1 - t0, "construct_and_first_run_s": t2 - t1, "r0": run["r0"],
                  "cache_dir": str(CACHE_DIR)}))
"""


def bench_compile(code_path: Path, attempts: int = 3) -> dict:
    """Engine construction + first run in a fresh process with an empty Numba cache (cold),
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
                proc = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(code_path), B1_RAW_INPUT.hex()],
                                      capture_output=True, text=True, env=env)
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


def bench_kernel(obj: Path, repeat: int, samples: int) -> dict:
    from bpfmc.ebpf import kernel

    ok, reason = kernel.available()
    if not ok:
        return {"available": False, "reason": f"bpf() unavailable: {reason}"}
    ok, reason = kernel.libbpf_available()
    if not ok:
        return {"available": False, "reason": f"libbpf unavailable: {reason}"}
    t0 = time.perf_counter()
    with kernel.load_object(obj) as loaded:  # libbpf, never our own loader (DESIGN)
        load_s = time.perf_counter() - t0
        prog = loaded.programs[B1_PROGRAM]
        pkt = syn_packet()
        retval = prog.test_run(pkt).retval
        if retval != B1_R0 & 0xFFFFFFFF:
            raise BenchError(f"kernel retval {retval:#x}, want {B1_R0 & 0xFFFFFFFF:#x} (low 32 bits of r0)")
        # duration is the kernel's own average per run over `repeat` runs, in ns.
        durations = [prog.test_run(pkt, repeat=repeat).duration_ns for _ in range(samples)]
    per_run = min(durations) * 1e-9
    return {"available": True, "per_run_s": per_run, "insn_per_s": B1_INSNS / per_run, "repeat": repeat,
            "samples": samples, "load_s": load_s, "median_per_run_s": sorted(durations)[len(durations) // 2] * 1e-9}


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


def run(quick: bool) -> dict:
    shared = shared_dir()
    with tempfile.TemporaryDirectory(prefix="bpfmc-bench-") as tmp:
        obj, code = build_b1(shared, Path(tmp))
        raw = Path(tmp) / "b1.bin"
        raw.write_bytes(code)
        engine = bench_engine(code, batch_size=20 if quick else 100, batches=3 if quick else 11)
        kern = bench_kernel(obj, repeat=50 if quick else 200, samples=3 if quick else 11)
        compile_ = bench_compile(raw)
    import numba

    result = {
        "benchmark": "B1 alu_loop", "quick": quick,
        "machine": {"cpu": _cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
                    "python": platform.python_version(), "numba": numba.__version__},
        "b1": {"slots": len(code) // 8, "insns": B1_INSNS, "r0": f"{B1_R0:#x}"},
        "engine": engine, "kernel": kern, "compile": compile_, "target_ratio": TARGET_RATIO,
    }
    if kern.get("available"):
        ratio = kern["per_run_s"] / engine["per_run_s"]  # engine speed as a fraction of the kernel's
        result["ratio_engine_vs_kernel"] = ratio
        result["ratio_vs_target"] = ratio / TARGET_RATIO
    return result


def _t(seconds: float) -> str:
    for unit, scale in (("s", 1), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 1e-9:.3g} ns"


def render(r: dict) -> str:
    m, e, k, c = r["machine"], r["engine"], r["kernel"], r["compile"]
    lines = [f"B1 alu_loop: {r['b1']['slots']} slots, {B1_INSNS:,} executed insns, r0 {r['b1']['r0']}",
             f"machine: {m['cpu']}, {m['cpus']} CPUs, Linux {m['kernel']}, Python {m['python']}, "
             f"Numba {m['numba']}", ""]
    rows = [("engine (bpfmc, batch)", _t(e["per_run_s"]), f"{e['insn_per_s'] / 1e9:.3f} G",
             f"min of {e['batches']} batches x {e['batch_size']} runs")]
    if k.get("available"):
        rows.append(("host kernel (JIT, test_run)", _t(k["per_run_s"]), f"{k['insn_per_s'] / 1e9:.3f} G",
                     f"min of {k['samples']} x repeat {k['repeat']}"))
    header = ("runner", "per run", "insn/s", "how")
    widths = [max(len(str(x[i])) for x in [header, *rows]) for i in range(4)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 3) else '>'}{w}}}" for i, w in enumerate(widths))
    table = [header, tuple("-" * w for w in widths), *rows]
    lines += [fmt.format(*row).rstrip() for row in table] + [""]
    if k.get("available"):
        verdict = "meets" if r["ratio_vs_target"] >= 1 else "misses"
        ratio = r["ratio_engine_vs_kernel"]
        lines.append(f"engine / kernel speed: {ratio:.4f} (1/{1 / ratio:.1f})")
        lines.append(f"against the target of {r['target_ratio']:g}: {r['ratio_vs_target']:.2f}x ({verdict} it)")
    else:
        lines.append(f"host kernel: not measured ({k['reason']})")
    lines.append("")
    lines.append("engine one-time cost (fresh process; Engine() + first run, after imports):")
    for label in ("cold", "warm"):
        x = c[label]
        lines.append(f"  {label:4} cache: {_t(x['construct_and_first_run_s']):>9}   "
                     f"(imports {_t(x['import_s'])}, whole process {_t(x['process_s'])})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer and smaller batches (a smoke run)")
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = ap.parse_args(argv)
    try:
        result = run(args.quick)
    except BenchError as e:
        print(f"bench_engine: {e}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2) if args.json else render(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
