"""One emulated core running a program: the Python face of the compiled engine.

An :class:`Engine` links its programs and maps once (``image.link``), decodes the image once,
allocates registers, frames, the stack, the packet and context buffers and the region table
once, and then runs whole batches of events in one call into compiled code (``batch.run_batch``).
Results come back as numpy columns (:class:`BatchResult`); the per-run dicts of DESIGN's JSON
result shape are built only when asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bpfmc.ebpf import maps as mt
from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.program import Program, canonical_type

from . import batch as batchmod
from . import interp
from . import mapops as mo
from .contexts import (
    CTX_MAX,
    KIND_RAW,
    KIND_SKB,
    KIND_SOCKET,
    PKT_KIND,
    PKT_STATE_SIZE,
    TAILROOM,
    context_for,
    headroom,
)
from .decode import REG_SLOTS, DecodedProgram, decode_program
from .helpers import (
    CORE_CLOCK_HZ,
    CORE_CYCLES,
    CORE_ID,
    CORE_TIME_BASE_NS,
    HELPER_BAD_MAP,
    HELPER_BAD_POINTER,
    HELPER_NAMES,
    LI_KIND,
    LI_LENGTH,
    LI_MAP,
    LI_OFFSET,
    LI_RUN,
    LOG_RECORD,
    LOG_TRACE,
    LOGIDX_COLS,
    LOGSTATE_SIZE,
    LS_ENTRIES,
    LS_LOST,
    map_handle_region,
    map_value_region,
    new_core_table,
)
from .image import Image, LinkError, MapSetup, link
from .maps import MAP_TYPE_NAMES, Map, MapDef, MapStore, merge_values
from .memory import (
    REGION_CODE,
    REGION_CTX,
    REGION_INPUT,
    REGION_PACKET,
    REGION_STACK,
    RegionTable,
    split_address,
)
from .model import HardwareModel
from .recycle import Recycler
from .tracefmt import format_trace

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
ETH_HLEN = 14
LOG_BYTES = 1 << 20
LOG_ENTRIES = 1 << 14


class EventError(ValueError):
    """An event the program type cannot be given (a frame shorter than an Ethernet header)."""


@dataclass
class BatchResult:
    """Columns of a batch's results, one row per run, in input order."""

    r0: np.ndarray  # uint64
    insns: np.ndarray  # int64
    cycles: np.ndarray  # int64
    status: np.ndarray  # int64, 0 = ok (interp.FAULT_* otherwise)
    pc: np.ndarray  # int64, pc (in the image) of the exit or of the fault
    aux: np.ndarray  # uint64, fault detail (address, helper id, ...)
    meta: np.ndarray  # int64 [n, batch.OM_COLS]: where a changed packet is, redirects
    out_data: np.ndarray  # uint8 arena of changed packets / inputs
    out_ctx: np.ndarray  # uint8 [n, ctx bytes] for __sk_buff programs
    blob: np.ndarray  # the inputs
    offsets: np.ndarray  # int64: run i's input is blob[offsets[i]:offsets[i+1]]
    engine: Engine
    logs: dict[int, list[tuple[int, bytes, int]]] = field(default_factory=dict)  # run -> (kind, bytes, map)
    lost_records: int = 0

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
        return {"pc": pc - self.engine.entry.pc, "kind": FAULT_KINDS.get(status, f"fault_{status}"),
                "message": self.engine.describe_fault(status, pc, int(self.aux[i]),
                                                      input_len=int(self.offsets[i + 1] - self.offsets[i]))}

    def input(self, i: int) -> bytes:
        return self.blob[self.offsets[i]:self.offsets[i + 1]].tobytes()

    def changed(self, i: int) -> bool:
        return int(self.meta[i, batchmod.OM_DATA_OFF]) >= 0

    def output(self, i: int) -> bytes:
        """The packet (raw programs: the input) as the program left it; XDP: from data_meta."""
        off = int(self.meta[i, batchmod.OM_DATA_OFF])
        if off < 0:
            return self.input(i)
        return self.out_data[off:off + int(self.meta[i, batchmod.OM_DATA_LEN])].tobytes()

    def ctx(self, i: int) -> dict[str, int]:
        """Writable context fields the program changed (all start at zero)."""
        spec = self.engine.context
        if not self.out_ctx.shape[1]:
            return {}
        raw = self.out_ctx[i].tobytes()
        out = {}
        for f in spec.fields:
            if f.name in spec.writable:
                v = int.from_bytes(raw[f.offset:f.offset + f.size], "little")
                if v:
                    out[f.name] = v
        return out

    def trace(self, i: int) -> list[str]:
        return [format_trace(b) for kind, b, _ in self.logs.get(i, []) if kind == LOG_TRACE]

    def records(self, i: int) -> list[bytes]:
        return [b for kind, b, _ in self.logs.get(i, []) if kind == LOG_RECORD]

    def redirect(self, i: int) -> dict | None:
        kind = int(self.meta[i, batchmod.OM_REDIRECT_KIND])
        if kind == 0:
            return None
        target = int(self.meta[i, batchmod.OM_REDIRECT_TARGET])
        flags = int(self.meta[i, batchmod.OM_REDIRECT_FLAGS])
        if kind == 1:
            return {"ifindex": target, "flags": flags}
        m = self.engine.image.maps[target >> 32]
        return {"map": m.name, "key": target & 0xFFFFFFFF, "flags": flags}

    def run(self, i: int) -> dict:
        out: dict = {"r0": int(self.r0[i]), "insns": int(self.insns[i]), "cycles": int(self.cycles[i])}
        if self.changed(i):
            out["data_out"] = self.output(i).hex()
        ctx = self.ctx(i)
        if ctx:
            out["ctx"] = ctx
        trace = self.trace(i)
        if trace:
            out["trace"] = trace
        records = self.records(i)
        if records:
            out["records"] = [r.hex() for r in records]
        redirect = self.redirect(i)
        if redirect:
            out["redirect"] = redirect
        err = self.error(i)
        if err is not None:
            out["error"] = err
        return out

    def runs(self) -> list[dict]:
        return [self.run(i) for i in range(len(self))]

    def totals(self) -> dict:
        t = {"runs": len(self), "faults": int(np.count_nonzero(self.faulted)),
             "insns": int(self.insns.sum()), "cycles": int(self.cycles.sum())}
        if self.lost_records:
            t["lost_records"] = self.lost_records
        return t


class Engine:
    """Programs loaded on one emulated core of a hardware model, or on several.

    ``Engine(program)`` runs a single program; ``Engine.from_object(path)`` loads every program
    and map of a clang-built object and runs the one chosen with ``program=``. ``cores=``
    (instead of ``core_id``/``cpu``) hosts several emulated cores: each has its own state (id,
    clock, random stream, counters: one row of a core table), everything else is scratch that
    their events share, one after another; ``run_in_place`` and ``run_batch(cores=)`` say which
    core runs which events.
    """

    def __init__(self, program: Program, model: HardwareModel | str = "generic", *, core_id: int = 0,
                 seed: int = 0, store: MapStore | None = None, cores: Sequence[int] | None = None):
        self._setup(HardwareModel.load(model), [program], [], None, core_id if cores is None else cores, seed, store)

    @classmethod
    def from_object(cls, source: str | Path | bytes | object, program: str | None = None,
                    model: HardwareModel | str = "generic", *, prog_type: str | None = None, cpu: int = 0,
                    seed: int = 0, btf: str | Path | None = None, store: MapStore | None = None,
                    cores: Sequence[int] | None = None) -> Engine:
        """Load an ELF object (a path, its bytes, or an ``ebpf.elf.ObjectFile``)."""
        from bpfmc.ebpf import elf

        obj = source if hasattr(source, "programs") else elf.load_object(source, target_btf=btf)
        programs = list(obj.programs.values())
        if prog_type is not None:
            chosen = program
            programs = [Program(p.code, name=p.name, prog_type=prog_type if (chosen in (None, p.name)
                                                                             or p.meta.get("section") == chosen)
                                else p.prog_type, meta=p.meta) for p in programs]
        setups = [_setup_from_spec(s, HardwareModel.load(model).cores) for s in obj.maps]
        self = cls.__new__(cls)
        self._setup(HardwareModel.load(model), programs, setups, program, cpu if cores is None else cores, seed,
                    store)
        return self

    def _setup(self, model: HardwareModel, programs: list[Program], setups: list[MapSetup], choice: str | None,
               core_ids: int | Sequence[int], seed: int, store: MapStore | None) -> None:
        self.model = m = model
        self.core_ids = (core_ids,) if isinstance(core_ids, int | np.integer) else tuple(int(c) for c in core_ids)
        if not self.core_ids or len(set(self.core_ids)) != len(self.core_ids):
            raise ValueError(f"an engine hosts one or more distinct cores, not {list(self.core_ids)}")
        for core_id in self.core_ids:
            if not 0 <= core_id < m.cores:
                raise ValueError(f"core {core_id} does not exist: model {m.name!r} has {m.cores} cores")
        total = sum(p.num_slots for p in programs)
        if total > m.max_insns:
            raise ValueError(f"programs have {total} instructions; model {m.name!r} allows at most {m.max_insns}")
        self.ncpu = m.cores
        self._own_store = store is None
        self.store = store if store is not None else MapStore(ncpu=m.cores)
        try:
            self.image: Image = link(programs, setups, self.store)
            # What the target allows, checked on what was linked (every map, global data too;
            # every helper call of every program), so the refusal names the map or call.
            m.check_limits([mp.mdef for mp in self.image.maps], self.image.code, HELPER_NAMES)
        except Exception:
            if self._own_store:
                self.store.close()
            raise
        self.entry = self.image.entry(choice)
        self.program = programs[self.entry.id - 1]
        self.prog_type = canonical_type(self.entry.prog_type)
        if self.prog_type == "seccomp":
            raise LinkError("seccomp (classic BPF) programs are not supported yet")
        self.context = context_for(self.prog_type)
        self.maps: dict[str, Map] = {mp.name: mp for mp in self.image.maps}
        landings = tuple(e.pc for e in self.image.entries) + tuple(self.image.callbacks)
        self.decoded: DecodedProgram = decode_program(Program(self.image.code, name=self.program.name), m,
                                                      landings)
        self._stack = np.zeros(m.stack_size * m.call_depth, np.uint8)
        # Code that never names r10 cannot reach the stack (helpers get stack pointers only from
        # r10 too), so there is nothing to clear between its runs.
        d = self.decoded
        uses_stack = bool(np.any((d.dst == 10) | (d.src == 10)))
        self._stack_zero = m.stack_size if uses_stack else 0
        self._regs = np.zeros(REG_SLOTS, np.uint64)
        self._frames = np.zeros((m.call_depth, interp.FRAME_COLS), np.uint64)
        # One row per hosted core (id, clocks, random state, counters); run_events switches rows.
        self.cores = new_core_table(self.core_ids, m.clock_hz, seed, len(self.image.maps))
        self._one_segment = np.zeros((3, 1), np.int64)  # row 0, from event 0 to [2, 0]: run_batch
        # "virtual": ktime is the core's own cycles at the model's clock, so runs reproduce;
        # "host": the host's monotonic clock at the start of each batch, advanced by the
        # cycles run within it (what a live service shows).
        self.clock = "virtual"
        self._scratch = np.zeros(8 + 64, np.uint64)  # 8 helper temporaries, then 512 bytes for map keys
        self._pkt = np.zeros(PKT_STATE_SIZE, np.int64)
        self._pkt[PKT_KIND] = self.context.kind
        self._ctxbuf = np.zeros(CTX_MAX, np.uint8)
        self._ctx_ptr, self._ctx_wmask = self.context.tables()
        self._log = np.zeros(LOG_BYTES, np.uint8)
        self._logidx = np.zeros((LOG_ENTRIES, LOGIDX_COLS), np.int64)
        self._logstate = np.zeros(LOGSTATE_SIZE, np.int64)
        self._entries = np.array([e.pc for e in self.image.entries], np.uint64)
        self.regions = r = RegionTable(max(64, 8 + 2 * len(self.image.maps) + 8))
        r.attach(REGION_STACK, self._stack, "stack")
        # Read-only in the table: stores to the context go through the writable-field mask.
        r.attach(REGION_CTX, self._ctxbuf, "ctx", readable_len=self.context.size, writable=False)
        r.names[REGION_CODE] = "code"
        for i, (mp, s) in enumerate(zip(self.image.maps, self.image.setups, strict=True)):
            mp.desc[mo.D_VALUE_REGION] = map_value_region(i)
            r.names[map_handle_region(i)] = f"map {mp.name!r}"
            r.attach(map_value_region(i), mp.values_view, f"map {mp.name!r}", writable=not s.frozen)
        self._maps_table = np.zeros((max(len(self.image.maps), 1), mo.DESC_SIZE), np.int64)
        for i, mp in enumerate(self.image.maps):
            self._maps_table[i] = mp.desc
        self._inbuf = np.zeros(0, np.uint8)
        self._pktbuf = np.zeros(0, np.uint8)
        self._results = Recycler()
        self._arena = np.zeros(0, np.uint8)  # changed packets of run_in_place, reused call to call
        self._call_args = None
        self._ensure_capacity(2048)

    def _bind(self) -> None:
        # Everything run_events takes before the batch's own arrays, built once: it took ~5-10 us
        # (the decoded columns are combined, scalars boxed), more than the call itself, and a
        # pool worker makes one call per batch.
        d, m = self.decoded, self.model
        self._call_args = (
            *d.columns(), np.int64(d.taken_extra), np.uint64(self.entry.pc), self.context.kind,
            self.regions.table, self._maps_table, self._regs, self._frames, self.cores, self._stack,
            self._inbuf, self._pktbuf, self._ctxbuf, self._ctx_ptr, self._ctx_wmask, self.context.size,
            self._pkt, self._log, self._logidx, self._logstate, self._scratch, self._entries,
            np.int64(m.insn_budget), np.int64(m.stack_size), np.int64(self._stack_zero), np.int64(m.call_depth))

    def _ensure_capacity(self, nbytes: int) -> None:
        if nbytes > MAX_INPUT_BYTES:
            raise EventError(f"an event of {nbytes} bytes exceeds the {MAX_INPUT_BYTES}-byte limit")
        if self.context.kind == KIND_RAW:
            if len(self._inbuf) < nbytes:
                self._inbuf = np.zeros(max(nbytes, 2 * len(self._inbuf)), np.uint8)
                self.regions.attach(REGION_INPUT, self._inbuf, "input", readable_len=0)
                self._call_args = None
        else:
            need = headroom(self.context.kind) + nbytes + TAILROOM
            if len(self._pktbuf) < need:
                self._pktbuf = np.zeros(need, np.uint8)
                self.regions.attach(REGION_PACKET, self._pktbuf, "packet")
                self._call_args = None
        if self._call_args is None:
            self._bind()

    def close(self) -> None:
        if self._own_store:
            self.store.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- maps ---------------------------------------------------------------------------------
    def map(self, name: str) -> Map:
        return self.image.map_by_name(name)

    def map_update(self, name: str, key: bytes, value: bytes, flags: int = mo.BPF_ANY) -> None:
        self.map(name).update(key, value, flags)

    def dump_maps(self) -> dict:
        return {mp.name: dump_map(mp, s.value_fields) for mp, s in zip(self.image.maps, self.image.setups,
                                                                       strict=True)}

    # -- running ------------------------------------------------------------------------------
    def run_batch(self, inputs: Sequence[bytes] | tuple[bytes, Iterable[int]], repeat: int = 1,
                  cores: Sequence[int] | np.ndarray | None = None) -> BatchResult:
        """Run each input (``repeat`` times in a row) in order on this core; maps persist.
        Inputs are byte strings, or one blob plus a sequence of lengths. ``cores``: the core
        (one this engine hosts) that runs each input, in order; default: the first core."""
        blob, lengths = _pack(inputs)
        if self.clock == "host":
            self._follow_host_clock()
        if repeat < 1:
            raise ValueError("repeat must be at least 1")
        segments = self._one_segment
        if cores is not None:
            segments = self._segments(np.repeat(np.asarray(cores, np.int64), repeat), len(lengths))
        if repeat > 1 and len(lengths):
            starts = np.concatenate(([0], np.cumsum(lengths)[:-1]))
            pieces = [blob[s:s + n] for s, n in zip(starts, lengths, strict=True)]
            blob = np.concatenate([p for p in pieces for _ in range(repeat)])
            lengths = np.repeat(lengths, repeat)
        if self.context.kind != KIND_RAW and len(lengths) and int(lengths.min()) < ETH_HLEN:
            i = int(np.argmin(lengths))
            raise EventError(f"event {i}: a {self.prog_type} program needs an Ethernet frame of at least "
                             f"{ETH_HLEN} bytes, got {int(lengths[i])}")
        self._ensure_capacity(int(lengths.max()) if len(lengths) else 0)
        n = len(lengths)
        ctx_bytes = self.context.size if self.context.kind in (KIND_SKB, KIND_SOCKET) else 0
        r0, insns, cycles, status, pc, aux, meta, out_ctx, out_data, offsets = self._result_columns(
            n, len(blob), ctx_bytes)
        offsets[0] = 0
        np.cumsum(lengths, out=offsets[1:])
        res = BatchResult(r0=r0, insns=insns, cycles=cycles, status=status, pc=pc, aux=aux, meta=meta,
                          out_data=out_data, out_ctx=out_ctx, blob=blob, offsets=offsets, engine=self)
        if cores is None:
            segments[2, 0] = n
        res.out_data, _, res.lost_records = self._execute(blob, offsets[:-1], offsets[1:], segments, n,
                                                          (r0, insns, cycles, status, pc, aux), meta, out_ctx,
                                                          out_data, res.logs)
        return res

    def _segments(self, cores: np.ndarray, n: int) -> np.ndarray:
        """Segments (rows: core row, first event, end) for events run in order on ``cores``."""
        if len(cores) != n:
            raise ValueError(f"{len(cores)} cores given for {n} events")
        row_of = np.full(self.ncpu, -1, np.int64)
        row_of[list(self.core_ids)] = np.arange(len(self.core_ids))
        if n and (cores.min() < 0 or cores.max() >= self.ncpu or (row_of[cores] < 0).any()):
            raise ValueError(f"events for cores this engine does not host (it hosts {list(self.core_ids)})")
        rows = row_of[cores]
        firsts = np.concatenate(([0], np.flatnonzero(np.diff(rows)) + 1)) if n else np.zeros(0, np.int64)
        return np.stack([rows[firsts], firsts, np.append(firsts[1:], n)]).astype(np.int64)

    def run_in_place(self, blob: np.ndarray, starts: np.ndarray, ends: np.ndarray, columns: tuple, meta: np.ndarray,
                     out_ctx: np.ndarray, longest: int, segments: np.ndarray | None = None,
                     events: int | None = None) -> tuple[np.ndarray, dict, int]:
        """Run the events ``blob[starts[i]:ends[i]]`` with their results written into the
        caller's arrays (a pool slot): ``columns`` are r0 (uint64), insns, cycles, status, pc,
        aux (uint64), each of one element per event, as ``meta`` and ``out_ctx`` have one row per
        event; none is allocated here. ``longest`` is an upper bound of the events' sizes;
        checking frame sizes is the caller's. ``segments`` (int64, rows: core row, first event,
        end event) says which events run, in which order and on which hosted core (row ``r``
        of it is ``core_ids[r]``); ``events`` is their number. Default: every event, on the
        first core. Returns the changed packets' arena (``meta``'s ``OM_DATA_OFF`` points into
        it; valid until the next call), the logs by event index, and the number of records
        lost."""
        if self.clock == "host":
            self._follow_host_clock()
        self._ensure_capacity(longest)
        if segments is None:
            segments, events = self._one_segment, len(starts)
            segments[2, 0] = events
        need = min(len(blob), events * longest) + 4096  # bounds the events' bytes
        if len(self._arena) < need:
            self._arena = np.empty(need + need // 2, np.uint8)
        logs: dict = {}
        self._arena, used, lost = self._execute(blob, starts, ends, segments, events, columns, meta, out_ctx,
                                                self._arena, logs)
        return self._arena[:used], logs, lost

    def _execute(self, blob: np.ndarray, starts: np.ndarray, ends: np.ndarray, segments: np.ndarray, n: int,
                 columns: tuple, meta: np.ndarray, out_ctx: np.ndarray, out_data: np.ndarray,
                 logs: dict) -> tuple[np.ndarray, int, int]:
        """The compiled event loop over a whole batch (``n`` events in ``segments``). Returns the
        arena of changed packets (a bigger one if it filled up), the bytes of it used and the
        records lost."""
        done, used, lost = 0, 0, 0
        self._logstate[:] = 0
        seg_row, seg_first, seg_end = segments
        while True:  # at least once: an empty batch loads the compiled engine (warm_up)
            ran, used = interp.run_events(*self._call_args, blob, starts, ends, seg_row, seg_first, seg_end, done,
                                          used, *columns, meta, out_data, out_ctx)
            done += ran
            if done < n:  # the arena for changed packets filled up: continue in a bigger one
                bigger = np.zeros(2 * len(out_data) + 4096, np.uint8)
                bigger[:used] = out_data[:used]
                out_data = bigger
            lost += self._collect_logs(logs)
            if done >= n:
                return out_data, used, lost

    def _result_columns(self, n: int, nbytes: int, ctx_bytes: int) -> list[np.ndarray]:
        """A batch's result columns and offsets, as views into one recycled buffer (see
        :mod:`.recycle`), uninitialised: run_events writes every element (out_data only where
        it says so)."""
        parts = [(8 * n, np.uint64), (8 * n, np.int64), (8 * n, np.int64), (8 * n, np.int64), (8 * n, np.int64),
                 (8 * n, np.uint64), (8 * n * batchmod.OM_COLS, np.int64), (n * ctx_bytes, np.uint8),
                 (nbytes + 4096, np.uint8), (8 * (n + 1), np.int64)]
        arena = self._results.take(sum((size + 7) & ~7 for size, _ in parts))
        out, off = [], 0
        for size, dtype in parts:
            out.append(arena[off:off + size].view(dtype))
            off += (size + 7) & ~7
        out[6] = out[6].reshape(n, batchmod.OM_COLS)
        out[7] = out[7].reshape(n, ctx_bytes)
        return out

    def warm_up(self) -> None:
        """Load (or compile) the engine now rather than on the first event."""
        self.run_batch([])

    def _follow_host_clock(self) -> None:
        """Every hosted core's clock to the host's, at the start of a batch: its time base is now
        less the time its cycles so far took (whole arrays: one batch runs every hosted core)."""
        t = self.cores
        cycles, hz = t[:, CORE_CYCLES], t[:, CORE_CLOCK_HZ]
        billion = np.uint64(1_000_000_000)
        ran_ns = cycles // hz * billion + cycles % hz * billion // hz
        now = np.uint64(time.monotonic_ns())
        t[:, CORE_TIME_BASE_NS] = np.where(ran_ns < now, now - ran_ns, np.uint64(0))

    @property
    def core_id(self) -> int:
        """The first (in a single-core engine: the only) core's id."""
        return int(self.cores[0, CORE_ID])

    def _collect_logs(self, logs: dict) -> int:
        """Moves the compiled loop's log entries into ``logs`` (event index -> entries); returns
        the records lost."""
        st, idx, log = self._logstate, self._logidx, self._log
        for e in range(int(st[LS_ENTRIES])):
            run, kind, off, length, mi = (int(x) for x in idx[e, [LI_RUN, LI_KIND, LI_OFFSET, LI_LENGTH, LI_MAP]])
            logs.setdefault(run, []).append((kind, log[off:off + length].tobytes(), mi))
        lost = int(st[LS_LOST])
        st[:] = 0
        return lost

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
            hid, why = aux & 0xFFFFFFFF, aux >> 32
            name = HELPER_NAMES.get(hid, f"helper {hid}")
            reason = {HELPER_BAD_POINTER: "a pointer argument is outside the memory it must be in",
                      HELPER_BAD_MAP: "the map argument is not a map of this program"}.get(why, f"status {why}")
            return f"{name}: {reason}"
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
            what = self.regions.names.get(region)
            if what and region != 0:
                return f"{verb} of {size} bytes at 0x{addr:x}: {what} cannot be dereferenced"
            return f"{verb} of {size} bytes at 0x{addr:x}: not a valid pointer (no memory region {region})"
        rlen, wlen = int(table[region, 1]), int(table[region, 2])
        if region == REGION_INPUT:  # sized per run; the table holds only the last run's size
            rlen = wlen = input_len
        name = self.regions.name(region)
        if verb != "load" and offset + size <= rlen:
            if region == REGION_CTX:
                return f"{verb} of {size} bytes at ctx+{offset}: that context field is not writable"
            return f"{verb} of {size} bytes at {name}+{offset}: region {name!r} is read-only there"
        limit = rlen if verb == "load" else wlen
        return (f"{verb} of {size} bytes at {name}+{_signed_offset(offset)} is outside region {name!r} "
                f"({limit} bytes)")


def _setup_from_spec(spec, ncpu: int) -> MapSetup:
    """An ``ebpf.maps.MapSpec`` from the ELF loader as what the linker creates."""
    entries = spec.max_entries
    if spec.map_type == mt.BPF_MAP_TYPE_PERF_EVENT_ARRAY and entries == 0:
        entries = ncpu  # libbpf sizes a perf event array to the CPUs when it says 0
    mdef = MapDef(spec.name, spec.map_type, spec.key_size, spec.value_size, entries, spec.flags)
    fields = [(f.offset, f.size, f.signed) for f in spec.value_btf] if spec.value_btf else None
    return MapSetup(mdef, initial=spec.initial, frozen=spec.frozen, prog_slots=list(spec.slots),
                    value_fields=fields)


def dump_map(mp: Map, value_fields=None) -> dict:
    """One map in DESIGN's JSON shape (``bpfctl exec --dump-maps``, ``bpfctl map dump``)."""
    d = mp.mdef
    out: dict = {"type": MAP_TYPE_NAMES.get(d.map_type, str(d.map_type)), "key_size": d.key_size,
                 "value_size": d.value_size, "max_entries": d.max_entries}
    entries = []
    if d.map_type in (mt.BPF_MAP_TYPE_QUEUE, mt.BPF_MAP_TYPE_STACK):
        out["count"] = len(mp)
    elif d.map_type in (mt.BPF_MAP_TYPE_RINGBUF, mt.BPF_MAP_TYPE_PERF_EVENT_ARRAY):
        pass  # their data is delivered as each run's records
    else:
        for key, value in mp.items():
            if d.per_cpu:
                rows = mp.per_cpu(value)
                entries.append({"key": key.hex(), "per_cpu": [r.hex() for r in rows],
                                "sum": merge_values(rows, "sum", value_fields).hex()})
            else:
                entries.append({"key": key.hex(), "value": value.hex()})
        out["entries"] = entries
    return out


def _signed_offset(offset: int) -> str:
    return str(offset - (1 << 32)) if offset & 0x80000000 else str(offset)


def _pack(inputs) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(inputs, tuple) and len(inputs) == 2 and isinstance(inputs[0], (bytes, bytearray, np.ndarray)) \
            and not isinstance(inputs[1], (bytes, bytearray)):
        blob = np.frombuffer(bytes(inputs[0]), np.uint8) if not isinstance(inputs[0], np.ndarray) else inputs[0]
        lengths = np.asarray(list(inputs[1]) if not isinstance(inputs[1], np.ndarray) else inputs[1], np.int64)
        if lengths.sum() != len(blob) or (lengths < 0).any():
            raise ValueError("lengths must be non-negative and add up to the blob's size")
        blob = np.ascontiguousarray(blob, np.uint8)
        # Numba compiles a separate engine for read-only arrays (bytes, unpickled buffers): a copy
        # of the inputs is far cheaper than loading or compiling that second engine.
        return (blob if blob.flags.writeable else blob.copy()), lengths
    items = [bytes(x) for x in inputs]
    lengths = np.fromiter((len(x) for x in items), np.int64, len(items))
    return np.frombuffer(b"".join(items), np.uint8).copy(), lengths
