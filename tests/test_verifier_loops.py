"""Loop summaries (ebpf/verifier/loops.py) against the plain walk of every iteration.

A summary claims that skipped iterations repeat the walked one instruction for instruction, so
with summaries on, the verifier must say exactly what the plain walk says: the same verdict, the
same first log line (pc, instruction, cause) and the same count of processed instructions, up to
and including a rejection at the instruction limit. Random counting loops check that claim:
counters moved by add, sub, mul, shift and moves in 64 and 32 bits, mixed with operations the
summary refuses (and, or, xor, right shifts, stack round trips, comparisons the walk cannot
decide), closed by every conditional jump in both widths.

``python tests/test_verifier_loops.py N`` compares N programs and prints a summary.
"""

from __future__ import annotations

import random
import sys
import time

import pytest
from test_verifier import check

CORE_ALU = ("add", "sub", "mul", "lsh", "mov")
OTHER_ALU = ("and", "or", "xor", "rsh", "arsh", "neg")
JUMPS = ("jeq", "jne", "jgt", "jge", "jlt", "jle", "jsgt", "jsge", "jslt", "jsle")
COUNTERS = (0, 3, 4, 6, 7)


def _alu(rng: random.Random) -> str:
    name = rng.choice(CORE_ALU * 3 + OTHER_ALU)
    wide = "" if rng.random() < 0.7 else "32"
    dst = rng.choice(COUNTERS)
    if name == "neg":
        return f"neg{wide} %r{dst}"
    if rng.random() < 0.6:
        imm = rng.choice((1, 1, 2, 3, -1, -2, 7, 64)) if name not in ("lsh", "rsh", "arsh") else rng.randint(0, 3)
        return f"{name}{wide} %r{dst}, {imm}"
    return f"{name}{wide} %r{dst}, %r{rng.choice(COUNTERS + (5,))}"


def loop_program(rng: random.Random) -> str:
    """A socket filter: a few counters, one loop (maybe with a forward branch inside), exit."""
    lines = ["ldxw %r5, [%r1+0]"]  # an unknown value: branches on it fork
    for n in COUNTERS:
        lines.append(f"mov %r{n}, {rng.choice((0, 0, 1, 5, 100, -3, 0x7FFFFFF0))}")
    lines.append("loop:")
    for _ in range(rng.randint(1, 4)):
        roll = rng.random()
        if roll < 0.12:
            reg = rng.choice(COUNTERS)
            lines += [f"stxdw [%r10-8], %r{reg}", f"ldxdw %r{rng.choice(COUNTERS)}, [%r10-8]"]
        elif roll < 0.25:
            lines += [f"{rng.choice(JUMPS)} %r{rng.choice(COUNTERS + (5,))}, {rng.randint(-2, 50)}, +1",
                      _alu(rng)]
        else:
            lines.append(_alu(rng))
    counter = rng.choice(COUNTERS)
    if rng.random() < 0.8:
        lines.append(f"add{'' if rng.random() < 0.8 else '32'} %r{counter}, {rng.choice((1, 1, 2, 3, -1))}")
    wide = "" if rng.random() < 0.7 else "32"
    bound = rng.choice((3, 10, 100, 1000, 5000, 100000, -1, 0x7FFFFFFF))
    other = f"%r{rng.choice(COUNTERS)}" if rng.random() < 0.15 else str(bound)
    lines.append(f"{rng.choice(JUMPS)}{wide} %r{counter}, {other}, loop")
    lines += ["mov %r0, 0", "exit"]
    return "\n".join(lines)


def _verdict(text: str, limit: int, summaries: bool):
    v = check(text, "socket_filter", insn_limit=limit, loop_summaries=summaries)
    first = v.error.line if v.error is not None else ""
    return v.accepted, first, v.stats["insns_processed"], v.stats["iterations_summarised"]


def compare(seed: int, limit: int) -> tuple[bool, int]:
    """(summaries agree with the plain walk, iterations skipped) for the program of ``seed``."""
    text = loop_program(random.Random(seed))
    fast = _verdict(text, limit, True)
    plain = _verdict(text, limit, False)
    assert fast[:3] == plain[:3], f"seed {seed}:\n{text}\nsummarised {fast}\nwalked     {plain}"
    return True, fast[3]


@pytest.mark.parametrize("block", range(8))
def test_summaries_agree_with_the_plain_walk(block):
    skipped = 0
    for seed in range(block * 40, block * 40 + 40):
        skipped += compare(seed, limit=4000 if seed % 3 else 20_000)[1]
    assert skipped > 0  # the generator does make summarisable loops


LOOPS = {
    "up": ("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 100000, l\nexit", True, 200_003),
    "down": ("mov %r0, 0\nmov %r1, 100000\nl:\nsub %r1, 1\njne %r1, 0, l\nexit", True, 200_003),
    "w32": ("mov %r0, 0\nmov32 %r1, 0\nl:\nadd32 %r1, 3\njlt32 %r1, 300000, l\nexit", True, 200_003),
    "stride": ("mov %r0, 0\nmov %r1, 7\nmov %r2, 0\nl:\nmov %r3, %r1\nmul %r3, 3\nadd %r2, 2\n"
               "lsh %r1, 0\nadd %r1, 1\njsle %r3, 299999, l\nexit", True, None),
    "too_long": ("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 10000000, l\nexit", False, 1_000_001),
    "forever": ("ldxw %r1, [%r1+0]\nmov %r0, 0\nl:\njeq %r1, 0, d\nadd %r0, 1\nja l\nd:\nexit", False, 1_000_001),
}


@pytest.mark.parametrize("name", sorted(LOOPS))
def test_long_loops_are_summarised(name):
    text, accepted, processed = LOOPS[name]
    v = check(text, "socket_filter")
    assert v.accepted is accepted, v.log
    assert v.stats["iterations_summarised"] > 1000
    if processed is not None:
        assert v.stats["insns_processed"] == processed
    if not accepted:
        assert "too complex: 1000000 instructions processed" in v.log.splitlines()[0]


def test_summary_is_named_in_the_log():
    v = check("mov %r0, 0\nmov %r1, 0\nl:\nadd %r1, 1\njlt %r1, 50, l\nexit", "socket_filter", log_level=2)
    assert "loop iterations 1..48 repeat iteration 0 (2 instructions each)" in v.log
    assert "96 instructions counted, not traced" in v.log


def test_loops_the_summary_cannot_follow_are_walked():
    # The counter reaches memory (a stack address), and doubles: no summary, same verdicts as before.
    stack = ("mov %r0, 0\nmov %r1, -8\nl:\nmov %r2, %r10\nadd %r2, %r1\nstdw [%r2+0], 0\n"
             "sub %r1, 8\njsgt %r1, -512, l\nexit")
    v = check(stack, "socket_filter")
    assert v.accepted and v.stats["iterations_summarised"] == 0
    double = "mov %r0, 0\nmov %r1, 1\nl:\nlsh %r1, 1\njlt %r1, 1000000, l\nexit"
    v = check(double, "socket_filter")
    assert v.accepted and v.stats["iterations_summarised"] == 0


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    t0 = time.perf_counter()
    skipped = summarised = 0
    for seed in range(count):
        n = compare(seed, limit=4000 if seed % 3 else 20_000)[1]
        skipped += n
        summarised += n > 0
    print(f"{count} programs: summaries agree with the plain walk on all; {summarised} summarised "
          f"({skipped} iterations skipped); {time.perf_counter() - t0:.1f} s")
