"""One emulated core running one program: the Python face of the compiled interpreter.

An :class:`Engine` decodes and validates its program once, allocates registers, stack frames
and the region table once, and then runs whole batches of inputs in one call into compiled
code. Results come back as numpy columns (:class:`BatchResult`); the per-run dicts of DESIGN's
JSON result shape are built only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.program import Program
from bpfmc.ebpf.validate import validate

from . import interp
from .decode import REG_SLOTS, DecodedProgram, decode_program
from .helpers import HELPER_NAMES, SUPPORTED_HELPERS, new_core_state
from .memory import REGION_INPUT, REGION_STACK, RegionTable, split_address
from .model import HardwareModel

FAULT_KINDS = {
    interp.FAULT_LOAD: "out_of_bounds_load",
    interp.FAULT_STORE: "out_of_bounds_store",
    interp.FAULT_BUDGET: "budget_exceeded",
    interp.FAULT_CALL_DEPTH: "call_depth_exceeded",
    interp.FAULT_UNKNOWN_HELPER: "unknown_helper",
    interp.FAULT_MISALIGNED_ATOMIC: "misaligned_atomic",
    interp.FAULT_BAD_OPCODE: "invalid_opcode",
    interp.FAULT_FELL_OFF: "fell_off_end",
    interp.FAULT_HELPER: "helper_error",
}

MAX_INPUT_BYTES = 64 << 20


@dataclass
class BatchResult:
    """Columns of a batch's results, one row per run, in input order."""

    r0: np.ndarray  # uint64
    insns: np.ndarray  # int64
    cycles: np.ndarray  # int64
    status: np.ndarray  # int64, 0 = ok (interp.FAULT_* otherwise)
    pc: np.ndarray  # int64, pc of the exit or of the fault
    aux: np.ndarray  # uint64, fault detail (address, helper id, ...)
    data_out: np.ndarray  # uint8, every run's input memory as the program left it
    offsets: np.ndarray  # int64, run i's bytes are data_out[offsets[i]:offsets[i+1]]
    engine: Engine

    def __len__(self) -> int:
        return len(self.r0)

    @property
    def faulted(self) -> np.ndarray:
        return self.status != interp.OK

    def error(self, i: int) -> dict | None:
        status = int(self.status[i])
        if status == interp.OK:
            return None
        pc = int(self.pc[i])
        return {"pc": pc, "kind": FAULT_KINDS[status],
                "message": self.engine.describe_fault(status, pc, int(self.aux[i]),
                                                      input_len=int(self.offsets[i + 1] - self.offsets[i]))}

    def output(self, i: int) -> bytes:
        return self.data_out[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def run(self, i: int) -> dict:
        out = {"r0": int(self.r0[i]), "insns": int(self.insns[i]), "cycles": int(self.cycles[i])}
        err = self.error(i)
        if err is not None:
            out["error"] = err
        return out

    def runs(self) -> list[dict]:
        return [self.run(i) for i in range(len(self))]

    def totals(self) -> dict:
        return {"runs": len(self), "faults": int(np.count_nonzero(self.faulted)),
                "insns": int(self.insns.sum()), "cycles": int(self.cycles.sum())}


class Engine:
    """A program loaded on one emulated core of a hardware model."""

    def __init__(self, program: Program, model: HardwareModel | str = "generic", *, core_id: int = 0,
                 seed: int = 0, verify_structure: bool = True):
        self.program = program
        self.model = HardwareModel.load(model)
        if program.num_slots > self.model.max_insns:
            raise ValueError(f"program has {program.num_slots} instructions; model {self.model.name!r} "
                             f"allows at most {self.model.max_insns}")
        if verify_structure:
            validate(program.code, helpers=set(SUPPORTED_HELPERS))
        self.decoded: DecodedProgram = decode_program(program, self.model)
        m = self.model
        self._stack = np.zeros(m.stack_size * m.call_depth, np.uint8)
        self._regs = np.zeros(REG_SLOTS, np.uint64)  # any 4-bit register field, and the cache slot
        self._frames = np.zeros((m.call_depth, 6), np.uint64)
        self._core = new_core_state(core_id, m.clock_hz, seed)
        self.regions = RegionTable()
        self.regions.attach(REGION_STACK, self._stack, "stack")
        self._inbuf = np.zeros(0, np.uint8)
        self._ensure_input_capacity(256)

    def _ensure_input_capacity(self, nbytes: int) -> None:
        if nbytes > MAX_INPUT_BYTES:
            raise ValueError(f"input of {nbytes} bytes exceeds the {MAX_INPUT_BYTES}-byte limit")
        if len(self._inbuf) < nbytes:
            self._inbuf = np.zeros(max(nbytes, 2 * len(self._inbuf)), np.uint8)
            # Lengths are set per run inside the batch loop; zero until then.
            self.regions.attach(REGION_INPUT, self._inbuf, "input", readable_len=0)

    # -- running ------------------------------------------------------------------------------
    def run_batch(self, inputs: Sequence[bytes] | tuple[bytes, Iterable[int]], repeat: int = 1) -> BatchResult:
        """Run each input (``repeat`` times in a row); inputs are byte strings, or one blob plus
        a sequence of lengths."""
        blob, lengths = _pack(inputs)
        if repeat < 1:
            raise ValueError("repeat must be at least 1")
        if repeat > 1 and len(lengths):
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            pieces = [blob[s:s + n] for s, n in zip(starts, lengths, strict=True)]
            blob = np.concatenate([p for p in pieces for _ in range(repeat)])
            lengths = np.repeat(lengths, repeat)
        offsets = np.zeros(len(lengths) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        self._ensure_input_capacity(int(lengths.max()) if len(lengths) else 0)
        n = len(lengths)
        res = BatchResult(
            r0=np.zeros(n, np.uint64), insns=np.zeros(n, np.int64), cycles=np.zeros(n, np.int64),
            status=np.zeros(n, np.int64), pc=np.zeros(n, np.int64), aux=np.zeros(n, np.uint64),
            data_out=np.zeros(len(blob), np.uint8), offsets=offsets, engine=self,
        )
        d, m = self.decoded, self.model
        interp.run_batch(*d.columns(), np.int64(d.taken_extra), self.regions.table, self._regs, self._frames,
                         self._core, self._stack, self._inbuf, np.int64(m.insn_budget), np.int64(m.stack_size),
                         np.int64(m.call_depth), blob, offsets, res.r0, res.insns, res.cycles, res.status,
                         res.pc, res.aux, res.data_out)
        return res

    def run(self, data: bytes = b"") -> dict:
        """Run once on ``data``; the run's dict of DESIGN's result shape."""
        return self.run_batch([data]).run(0)

    # -- reporting ----------------------------------------------------------------------------
    def describe_fault(self, status: int, pc: int, aux: int, *, input_len: int = 0) -> str:
        if status in (interp.FAULT_LOAD, interp.FAULT_STORE, interp.FAULT_MISALIGNED_ATOMIC):
            return self._describe_access(status, pc, aux, input_len)
        if status == interp.FAULT_BUDGET:
            return f"instruction budget of {aux} exceeded (model {self.model.name!r})"
        if status == interp.FAULT_CALL_DEPTH:
            return f"call depth limit of {aux} frames exceeded"
        if status == interp.FAULT_UNKNOWN_HELPER:
            return f"call to unknown helper {aux}"
        if status == interp.FAULT_HELPER:
            return f"helper {HELPER_NAMES.get(aux, aux)} failed"
        if status == interp.FAULT_BAD_OPCODE:
            return f"invalid opcode 0x{aux:02x}"
        if status == interp.FAULT_FELL_OFF:
            return "execution ran past the last instruction"
        return f"fault {status}"

    def _describe_access(self, status: int, pc: int, addr: int, input_len: int) -> str:
        code = int(self.decoded.op[pc])
        size = 8 if code in (0xDB, 0x18) else op.SIZE_BYTES.get(code & 0x18, 8)
        if code == 0xC3:
            size = 4
        verb = "load" if status == interp.FAULT_LOAD else ("atomic" if code in (0xDB, 0xC3) else "store")
        region, offset = split_address(addr)
        table = self.regions.table
        if status == interp.FAULT_MISALIGNED_ATOMIC:
            return f"misaligned {size}-byte atomic at {self.regions.describe(addr)} (address 0x{addr:x})"
        if region == 0 or region >= len(table) or table[region, 0] == 0:
            return f"{verb} of {size} bytes at 0x{addr:x}: not a valid pointer (no memory region {region})"
        rlen, wlen = int(table[region, 1]), int(table[region, 2])
        if region == REGION_INPUT:  # sized per run; the table holds only the last run's size
            rlen = wlen = input_len
        name = self.regions.name(region)
        if verb != "load" and offset + size <= rlen:
            return f"{verb} of {size} bytes at {name}+{offset}: region {name!r} is read-only there"
        limit = rlen if verb == "load" else wlen
        return (f"{verb} of {size} bytes at {name}+{_signed_offset(offset)} is outside region {name!r} "
                f"({limit} bytes)")


def _signed_offset(offset: int) -> str:
    return str(offset - (1 << 32)) if offset & 0x80000000 else str(offset)


def _pack(inputs) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], (bytes, bytearray, np.ndarray)) \
            and not isinstance(inputs[1], (bytes, bytearray)):
        blob = np.frombuffer(bytes(inputs[0]), np.uint8) if not isinstance(inputs[0], np.ndarray) else inputs[0]
        lengths = np.asarray(list(inputs[1]) if not isinstance(inputs[1], np.ndarray) else inputs[1], np.int64)
        if lengths.sum() != len(blob) or (lengths < 0).any():
            raise ValueError("lengths must be non-negative and add up to the blob's size")
        return np.ascontiguousarray(blob, np.uint8), lengths
    items = [bytes(x) for x in inputs]
    lengths = np.fromiter((len(x) for x in items), np.int64, len(items))
    return np.frombuffer(b"".join(items), np.uint8).copy(), lengths

