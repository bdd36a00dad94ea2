"""Verify time: our verifier next to the host kernel's, side by side in one run.

    python bench/bench_verifier.py [--json] [--skip-b1]

For every program of the labelled corpus (tests/verifier_corpus, kernel program types) and for
B1-B4 of ../shared/bench: our verdict and time, the kernel's verdict and time (where bpf() is
permitted), whether they agree, and the targets of the verifier issue (each corpus program under
1 s; B1 accepted, after 992,013 processed instructions as the kernel counts them, in under 60 s).
The kernel's time is the wall time of its BPF_PROG_LOAD (C objects: libbpf's whole load), so it
includes map creation and, for C, libbpf's own work: an upper bound of its verifier time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "bench"))

from bench_engine import BY_ID, build, kernel_status, shared_dir  # noqa: E402
from verifier_corpus_lib import kernel_verdict, load_corpus  # noqa: E402

CORPUS_TARGET_S = 1.0
B1_TARGET_S = 60.0
B1_KERNEL_INSNS = 992_013


def _ours(program, maps, privileged=True):
    from bpfmc.ebpf.verifier import verify

    t0 = time.perf_counter()
    v = verify(program, maps=maps, privileged=privileged, log_level=1)
    return v, time.perf_counter() - t0


def corpus_rows(with_kernel: bool) -> list[dict]:
    rows = []
    for case in load_corpus():
        if case.kernel_only or case.kernel_type is None or not case.privileged:
            continue
        v, ours_s = _ours(case.program, case.maps)
        row = {"name": case.name, "rule": case.rule, "label": case.expected,
               "ours": "accept" if v.accepted else "reject", "ours_s": ours_s,
               "insns_processed": v.stats.get("insns_processed")}
        if with_kernel:
            k = kernel_verdict(case)
            row.update(kernel=k.verdict, kernel_s=k.seconds)
        rows.append(row)
    return rows


def bench_rows(with_kernel: bool, skip_b1: bool) -> list[dict]:
    from bpfmc.ebpf import kernel
    from bpfmc.ebpf.elf import load_object

    rows = []
    shared = shared_dir()
    with tempfile.TemporaryDirectory(prefix="bpfmc-bench-") as d:
        for bid in ("B1", "B2", "B3", "B4"):
            if bid == "B1" and skip_b1:
                continue
            bench = BY_ID[bid]
            obj_path = build(bench, shared, Path(d))
            obj = load_object(obj_path.read_bytes())
            program = obj.programs[bench.program]
            v, ours_s = _ours(program, obj.maps)
            row = {"name": bench.label, "ours": "accept" if v.accepted else "reject", "ours_s": ours_s,
                   "insns_processed": v.stats.get("insns_processed")}
            if with_kernel:
                t0 = time.perf_counter()
                try:
                    with kernel.load_object(obj_path):
                        row["kernel"] = "accept"
                except kernel.KernelVerifierError:
                    row["kernel"] = "reject"
                row["kernel_s"] = time.perf_counter() - t0
            rows.append(row)
    return rows


def render(corpus: list[dict], benches: list[dict], kernel_note: str) -> str:
    lines = [f"verify time, ours vs the host kernel ({kernel_note})", ""]
    agree = sum(r["ours"] == r.get("kernel", r["label"]) for r in corpus)
    slow = [r for r in corpus if r["ours_s"] >= CORPUS_TARGET_S]
    total = sum(r["ours_s"] for r in corpus)
    ktotal = sum(r.get("kernel_s", 0) for r in corpus)
    lines.append(f"corpus: {len(corpus)} programs, ours agrees with the kernel on {agree}; "
                 f"ours {total:.2f} s in all, kernel {ktotal:.2f} s; "
                 f"{len(slow)} over the {CORPUS_TARGET_S:g} s target")
    for r in sorted(corpus, key=lambda r: -r["ours_s"])[:8]:
        k = f"kernel {r['kernel']} {r['kernel_s'] * 1e3:9.2f} ms" if "kernel" in r else ""
        lines.append(f"  {r['name']:<40} ours {r['ours']} {r['ours_s'] * 1e3:10.2f} ms  {k}  "
                     f"({r['insns_processed']} insns)")
    lines.append("  ... (the slowest eight; --json lists every program)")
    lines.append("")
    for r in benches:
        k = f"kernel {r['kernel']} {r['kernel_s'] * 1e3:9.2f} ms" if "kernel" in r else ""
        target = ""
        if r["name"].startswith("B1"):
            ok = r["ours"] == "accept" and r["ours_s"] < B1_TARGET_S
            target = (f"  target: accepted in < {B1_TARGET_S:g} s after {B1_KERNEL_INSNS:,} insns: "
                      f"{'met' if ok and r['insns_processed'] == B1_KERNEL_INSNS else 'missed'}")
        lines.append(f"{r['name']:<22} ours {r['ours']} {r['ours_s'] * 1e3:10.2f} ms "
                     f"({r['insns_processed']:,} insns)  {k}{target}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--skip-b1", action="store_true", help="leave out B1 (ours takes tens of seconds)")
    args = ap.parse_args(argv)
    ok, why = kernel_status()
    corpus = corpus_rows(ok)
    benches = bench_rows(ok, args.skip_b1)
    if args.json:
        print(json.dumps({"kernel": ok, "kernel_note": why, "corpus": corpus, "bench": benches}, indent=2))
    else:
        print(render(corpus, benches, why if not ok else "bpf() permitted"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
