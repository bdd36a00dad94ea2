"""The labelled verifier corpus (tests/verifier_corpus/) against the host kernel's verifier.

Two kinds of test:

* without the kernel: labels.json is well formed, names existing files, covers every corpus file,
  has an accept and a reject for every rule; every case compiles (C, clang-19) or assembles (our
  dialect plus the ``map:``/``func:`` lddw operands) into a :class:`Program`; every ``ours``
  label leans on a kernel-labelled twin that exists;
* marked ``kernel``: every ``labelled_by: kernel`` case is loaded by the kernel (C through libbpf,
  assembly through ``BPF_PROG_LOAD`` with its maps created) and must get its label -- and a
  refusal must name the recorded cause (``kernel_log`` is a substring of the kernel's log) -- so
  the labels never drift from what the kernel says.

The corpus is loaded through :mod:`verifier_corpus_lib`, which is also what a bpfmc verifier
test uses (``load_corpus()``).
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache

import pytest
from verifier_corpus_lib import (
    CORPUS,
    CorpusCase,
    CorpusError,
    compile_c,
    kernel_verdict,
    load_case,
    parse_asm,
    read_labels,
)

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.insn import decode
from bpfmc.ebpf.program import PROGRAM_TYPES

ENTRIES = read_labels()
BY_NAME = {e["name"]: e for e in ENTRIES}
KERNEL_ENTRIES = [e for e in ENTRIES if e["labelled_by"] == "kernel"]


@cache
def case(name: str) -> CorpusCase:
    return load_case(BY_NAME[name])


def _needs_clang(entry: dict) -> None:
    if entry["file"].endswith(".c"):
        try:
            from verifier_corpus_lib import _clang_version

            _clang_version()
        except CorpusError as e:
            pytest.skip(str(e))


# --- without the kernel ------------------------------------------------------------------------


def test_labels_name_existing_files_and_cover_the_corpus() -> None:
    files = {e["file"] for e in ENTRIES}
    missing = sorted(f for f in files if not (CORPUS / f).is_file())
    assert not missing, f"labels name files that do not exist: {missing}"
    on_disk = {p.name for p in CORPUS.iterdir() if p.suffix in (".c", ".s")}
    unlabelled = sorted(on_disk - files)
    assert not unlabelled, f"corpus files without a label: {unlabelled}"


def test_every_rule_has_an_accept_and_a_reject() -> None:
    verdicts: dict[str, set[str]] = defaultdict(set)
    for e in ENTRIES:
        verdicts[e["rule"]].add(e["expected"])
    lopsided = {rule: sorted(v) for rule, v in verdicts.items() if v != {"accept", "reject"}}
    assert not lopsided, f"rules with only one verdict: {lopsided}"


def test_ours_labels_lean_on_a_kernel_twin() -> None:
    """An ``ours`` label says why the kernel cannot give it and names a kernel-labelled case that
    checks the same rule (the same file loaded privileged, or the same pattern in a kernel type)."""
    for e in ENTRIES:
        if e["labelled_by"] != "ours":
            continue
        twin = BY_NAME.get(e["twin"])
        assert twin is not None, f"{e['name']}: twin {e['twin']!r} is not a case"
        assert twin["labelled_by"] == "kernel", f"{e['name']}: twin {twin['name']} is not kernel-labelled"
        assert twin["rule"] == e["rule"], f"{e['name']}: twin {twin['name']} exercises {twin['rule']}"
        if e.get("privileged", True):  # raw: the same rule, so the same verdict as the kernel type
            assert e["prog_type"] == "raw", f"{e['name']}: a privileged 'ours' label is only for raw"
            assert twin["expected"] == e["expected"], f"{e['name']}: verdict differs from twin {twin['name']}"
        else:  # unprivileged: the twin is the same program loaded privileged
            assert twin["file"] == e["file"], f"{e['name']}: unprivileged twin must be the same file"
            assert e["prog_type"] == "socket_filter", (
                f"{e['name']}: unprivileged loads are only possible for socket filters (and cgroup_skb)")


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_case_builds(entry: dict) -> None:
    """The file compiles or assembles; map references resolve to the case's maps."""
    _needs_clang(entry)
    c = case(entry["name"])
    assert c.program.code, c.name
    assert c.expected == entry["expected"]
    assert c.kernel_only == (entry["prog_type"] not in PROGRAM_TYPES)
    for insn in decode(c.program.code):
        if insn.is_wide and insn.src in (op.BPF_PSEUDO_MAP_IDX, op.BPF_PSEUDO_MAP_IDX_VALUE):
            assert 0 <= (insn.imm & 0xFFFFFFFF) < len(c.maps), f"{c.name}: lddw names map {insn.imm}"
    if c.kind == "c":
        from bpfmc.ebpf.elf import load_object

        programs = load_object(compile_c(c.file)).programs
        assert list(programs) == [entry["program"]], (
            f"{c.file.name}: a C corpus file holds exactly one program (libbpf loads them all together)")
    if c.labelled_by == "kernel":
        assert c.kernel_type is not None, f"{c.name}: kernel-labelled, but its type has no kernel twin"


def test_asm_header_format(tmp_path) -> None:
    src = tmp_path / "t.s"
    src.write_text("# type: xdp\n# map: m hash key=4 value=8 entries=2\nlddw %r1, map:m\n"
                   "lddw %r2, func:cb\nmov %r0, 0\nexit\ncb:\nmov %r0, 0\nexit\n")
    asm = parse_asm(src)
    first, second = decode(asm.code)[:2]
    assert (first.src, first.imm) == (op.BPF_PSEUDO_MAP_IDX, 0)
    # cb is at slot 6; the kernel counts from the slot after the lddw's first: 6 - (2 + 1)
    assert (second.src, second.imm) == (op.BPF_PSEUDO_FUNC, 3)
    assert asm.maps[0].key_size == 4 and asm.maps[0].max_entries == 2
    src.write_text("# type: xdp\nlddw %r1, map:nope\nexit\n")
    with pytest.raises(CorpusError, match="nope"):
        parse_asm(src)


# --- with the kernel ----------------------------------------------------------------------------


@pytest.mark.kernel
@pytest.mark.parametrize("entry", KERNEL_ENTRIES, ids=[e["name"] for e in KERNEL_ENTRIES])
def test_kernel_agrees_with_label(entry: dict, kernel, request) -> None:
    _needs_clang(entry)
    if entry["file"].endswith(".c"):
        request.getfixturevalue("libbpf")  # skips where libbpf cannot be loaded
    c = case(entry["name"])
    got = kernel_verdict(c)
    tail = "\n".join(got.log.strip().splitlines()[-6:])
    assert got.verdict == c.expected, (
        f"{c.name} ({c.file.name}, {c.kernel_type}): label says {c.expected}, the kernel says {got.verdict}"
        f"{f' (errno {got.errno})' if got.errno else ''}:\n{tail}")
    if c.expected == "reject":
        assert c.kernel_log in got.log, (
            f"{c.name}: rejected, but not for the recorded cause {c.kernel_log!r}; the kernel said:\n{tail}")
