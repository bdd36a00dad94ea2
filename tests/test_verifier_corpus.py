"""Our verifier against the labelled corpus: every case of a type we run gets the verdict the
host kernel gave it (``labelled_by: kernel``, checked by test_verifier_corpus_kernel.py) or
the one we state with a reason (``ours``)."""

from __future__ import annotations

import pytest
from verifier_corpus_lib import load_corpus

from bpfmc.ebpf.verifier import verify

# Loops the kernel explores to (or past) its 1,000,000-instruction limit: without the kernel's
# precision tracking our walk prunes less and takes 2-20 s on them (see docs/ARCHITECTURE.md).
CASES = [c for c in load_corpus() if not c.kernel_only]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_verdict_matches_label(case):
    v = verify(case.program, maps=case.maps, prog_type=case.prog_type, privileged=case.privileged)
    got = "accept" if v.accepted else "reject"
    assert got == case.expected, f"{case.rule}: {v.log}"
    if not v.accepted:
        first = v.log.splitlines()[0]
        assert first.startswith(f"{v.error.pc}:"), first  # the cause first, at its pc


def test_corpus_covers_every_rule_both_ways():
    rules: dict[str, set[str]] = {}
    for c in CASES:
        rules.setdefault(c.rule, set()).add(c.expected)
    one_sided = sorted(r for r, seen in rules.items() if seen != {"accept", "reject"} and r != "return-range")
    assert not one_sided, one_sided


# Real programs the host kernel loads (tests/progs is checked against it in test_progs_kernel.py;
# the bench programs are loaded by bench_engine.py): our verifier must accept every one of them.
def _real_programs():
    from conftest import REPO, SHARED

    out = [(p, None) for p in sorted((REPO / "tests" / "progs").glob("*.c"))]
    out += [(p, None) for p in sorted((SHARED / "bench").glob("b*.c"))]
    out.append((REPO / "examples" / "xdp_count.c", None))
    return [pytest.param(p, id=p.stem, marks=[pytest.mark.slow] if mark else []) for p, mark in out]


@pytest.mark.parametrize("source", _real_programs())
def test_kernel_loadable_programs_are_accepted(bpf_cc, source):
    from bpfmc.ebpf.elf import load_object

    obj = load_object(bpf_cc(source, f"-I{source.parent}").read_bytes())
    for program in obj.programs.values():
        v = verify(program, maps=obj.maps)
        assert v.accepted, f"{program.name}: {v.log}"


def test_verdict_cache_remembers_exactly_what_was_verified(tmp_path):
    from bpfmc.ebpf.asm import assemble
    from bpfmc.ebpf.maps import MapSpec
    from bpfmc.ebpf.program import Program
    from bpfmc.ebpf.verifier.cache import VerdictCache

    cache = VerdictCache(tmp_path)
    bad = Program(assemble("mov %r0, %r3\nexit"), name="bad")  # r3 is never written
    first = cache.verify(bad)
    again = cache.verify(bad)
    assert not first.accepted and not again.accepted and again.stats.get("cached")
    assert again.error.line == first.error.line and again.log == first.log
    good = Program(assemble("mov %r0, 0\nexit"), name="good")
    assert cache.verify(good).accepted and not cache.verify(good, privileged=False).stats.get("cached")
    # The key covers the maps' definitions and the type, not just the code.
    m1 = [MapSpec("m", 1, 4, 8, 4)]
    m2 = [MapSpec("m", 1, 4, 8, 8)]
    assert cache.key(good, m1, "raw", True, 1) != cache.key(good, m2, "raw", True, 1)
    assert cache.key(good, m1, "raw", True, 1) != cache.key(good, m1, "xdp", True, 1)
    assert len(list(tmp_path.glob("*.json"))) == 3
