"""Every program of the bpf_conformance suite runs through the engine and ends with its r0."""

from __future__ import annotations

import pytest
from conftest import conformance_files

from bpfmc.ebpf.conformance import parse_file
from bpfmc.ebpf.program import Program
from bpfmc.worker.engine import Engine

CASES = conformance_files("tests")


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_conformance_program(path):
    case = parse_file(path)
    assert case.skip_reason is None, case.skip_reason
    run = Engine(Program(case.code, name=path.stem)).run(case.mem)
    assert "error" not in run, run["error"]
    assert run["r0"] == case.result, f"r0 = {run['r0']:#x}, expected {case.result:#x}"
    assert run["insns"] >= 1


def test_suite_is_complete():
    if CASES:
        assert len(CASES) == 313
