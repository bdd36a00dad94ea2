"""The benchmarks still run and still check their results (no timing is asserted: a benchmark
that rots is found here, a slow one is not a test failure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, SHARED

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(SHARED is None, reason="../shared/bench not found")]


def _run(script: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, str(REPO / "bench" / script), *args, "--json"], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "BPFMC_SHARED": str(SHARED)})
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_pool_benchmark_runs_and_checks_its_maps(bpf_cc):  # bpf_cc: skips without clang
    r = _run("bench_pool.py", "--quick")
    assert set(r["scaling"]) == {"B4", "B5"} and r["scaling"]["B4"]["two"]["workers"] == 2
    cpu = r["scaling"]["B4"]["two"]["cpu_ns_per_event"]  # schedstat read: both sides ran some CPU
    assert cpu["parent"] > 0 and cpu["workers"] > 0
    paired = r["scaling"]["B4"]["paired_speedups"]  # one ratio per repetition, sorted
    assert len(paired) == len(r["scaling"]["B4"]["one"]["stream_rates"]) and paired == sorted(paired)
    assert set(r["sweep"]) == {"1", "2", "4", "64"}
    assert r["storage"]["hash"]["entries"] == 1_000_000 and r["memory"]


def test_engine_benchmark_runs(bpf_cc):
    r = _run("bench_engine.py", "--quick", "--programs", "B0,B2,B4", "--skip-compile")
    assert list(r["programs"]) == ["B0", "B2", "B4"]
    assert all(p["engine"]["runs"] > 0 for p in r["programs"].values())
