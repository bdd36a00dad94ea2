"""The worker pool: the emulated cores of a hardware model spread over host worker processes.

A :class:`Machine` has ``model.cores`` emulated cores (any number from 1) and ``workers`` host
processes; core ``c`` lives on worker ``c % workers`` (DESIGN: emulated cores are not host
cores). The parent links each loaded object once, which creates its map files in a state
folder under ``/dev/shm`` that the machine owns; every worker then builds one :class:`Engine`
hosting all its cores (a row of core state each), attached to those same files
(``MapStore(attach=True)``), so every core and the parent see one set of maps. Shared values
are updated with real atomics by the compiled engine; per-CPU values have one row per emulated
core and each core writes only its own.

A batch crosses the process boundary through shared memory (:mod:`.mailbox`): the parent
steers every event to a core and copies the batch once into a slot (offsets, cores, blob), in
one compiled pass (:mod:`.layout`); each worker hosting one of those cores gets the slot's
number down its pipe, runs its cores' events where they lie, in the batch's order, with one
engine call that switches cores from segment to segment, and writes each result row into the
slot at its event's index. The parent does no per-event work on the way back: a result's arrays are the slot's
rows themselves (the slot is reused once no result refers to it), or a copy when too many
results are held. Per-event work is thereby left to the workers, which do it in parallel: the
parent is one process for all of them. Pipes carry only small messages; batches in flight are
bounded by the slots and by a queue per worker, so a producer that outruns the pool waits and
nothing is dropped.

Workers come from a ``forkserver`` context (gRPC's C core is not fork-safe: the server must call
:func:`context` before it imports grpc), set ``PR_SET_PDEATHSIG`` so none outlives its parent,
and are pinned to one host CPU each where the affinity mask allows.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import gc
import os
import pickle
import shutil
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import statedir
from .batch import OM_COLS, OM_DATA_OFF
from .contexts import KIND_SKB, KIND_SOCKET
from .engine import ETH_HLEN, BatchResult, Engine, EventError
from .layout import (
    FIG_EVENTS,
    core_figures,
    core_runs,
    count_values,
    counters_before,
    figure_ranges,
    gather_values,
    pack_batch,
)
from .mailbox import SharedFile, SlotMaps, SlotPool, SlotViews, slot_shape
from .model import HardwareModel
from .recycle import Recycler
from .steering import Steering

PR_SET_PDEATHSIG = 1
SLOTS = 4  # batches in flight at once (one running, the next ones ready): then producers wait
# Results that may keep their slot's memory as their arrays (no copy); beyond these, a result's
# rows are copied out, so a caller holding every result does not grow the pool's shared memory.
LENT_SLOTS = 8
LENT_BYTES = 256 << 20
REPLACE_TIMEOUT = 60.0  # how long a batch waits for a dead worker's replacement to attach
# The per-event result figures, one column each in a slot and in a result.
_R0, _INSNS, _CYCLES, _STATUS, _PC, _AUX = range(6)
FIGURES = 6
_NO_CORES = np.zeros(0, np.int32)  # round-robin: pack_batch makes the cores
_CTX = None


class PoolError(RuntimeError):
    """A worker refused a request (the message carries its traceback's last line)."""


class WorkerDied(PoolError):
    """A worker process died; the batch in flight may be partially applied and is not retried
    (map updates are not idempotent)."""


def context():
    """The pool's ``multiprocess`` forkserver context, with the server process started.

    Call it before anything imports grpc: the fork server is then a clean process and every
    worker is forked from it, never from a process with gRPC's threads in it. The engine modules
    are preloaded there so each worker starts without re-importing Numba."""
    global _CTX
    if _CTX is None:
        import multiprocess as mp

        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["bpfmc.worker.pool", "bpfmc.worker.engine"])
        from multiprocess import forkserver

        with _main_hidden():
            forkserver.ensure_running()
        _CTX = ctx
    return _CTX


@contextlib.contextmanager
def _main_hidden():
    """multiprocessing prepares each new process by re-running the caller's main module: a
    script without a __main__ guard would start machines inside its workers, and a server's
    main would import grpc there. Workers need nothing from __main__, so it is hidden while a
    process starts."""
    main = sys.modules.get("__main__")
    if main is None:
        yield
        return
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if k in main.__dict__}
    main.__dict__.pop("__file__", None)
    main.__dict__["__spec__"] = None
    try:
        yield
    finally:
        main.__dict__.pop("__spec__", None)
        main.__dict__.update(saved)


def _send(conn, obj) -> None:
    # The standard pickle, not multiprocess's dill: ten times faster on numpy arrays, and every
    # message here is plain data.
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _recv(conn):
    return pickle.loads(conn.recv_bytes())


# -- state folders ---------------------------------------------------------------------------

STATE_PREFIX = "bpfmc-pool-"  # then the creating process's pid and a dash (see statedir)


# -- per-core batch counters -----------------------------------------------------------------

class _CoreSeq:
    """One u64 per emulated core in a shared file: odd while the core runs a batch, even
    between batches. Readers of per-CPU rows use it like a seqlock, so they see each core's row
    as it stood between two of that core's batches."""

    def __init__(self, path: Path, ncores: int, *, create: bool):
        self._file = SharedFile(path, 8 * ncores, create=create)
        self.words = self._file.buf.view(np.uint64)

    def close(self) -> None:
        self.words = None
        self._file.close()


# -- the worker process ----------------------------------------------------------------------

def _engine(obj, program: str | None, prog_type: str | None, model, cores: list[int], seed: int, store):
    """An engine hosting ``cores``: ``obj`` is an ELF object's bytes or a single :class:`Program`."""
    if isinstance(obj, bytes):
        return Engine.from_object(obj, program, model, prog_type=prog_type, cores=cores, seed=seed, store=store)
    return Engine(obj, model, cores=cores, seed=seed, store=store)


def _worker_main(conn, index: int, nworkers: int, cpu: int | None, state_dir: str, ncores: int) -> None:
    # Die with the parent (the fork server; it exits when the machine's process does), so no
    # worker is left running an emulated core nobody can talk to.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass  # a container may forbid it; the worker still runs, just unpinned
    from .maps import MapStore

    machine_dir = Path(state_dir)  # (a load names its program's own folder)
    seq = _CoreSeq(machine_dir / "cores.seq", ncores, create=False).words
    slots = SlotMaps(Path(state_dir))
    scratch = _Scratch(ncores, index, nworkers)
    handles: dict[int, Engine] = {}
    while True:
        try:
            msg = _recv(conn)
        except (EOFError, OSError):
            break  # the parent went away
        kind = msg[0]
        try:
            if kind == "stop":
                break
            if kind == "load":
                _, h, obj, program, prog_type, model, cores, seed, state_dir, clock = msg
                ncpu = HardwareModel.load(model).cores
                # One engine hosting every core of this worker (a row of core state each), over
                # one attached store: it opens the parent's map files in the parent's order, so
                # the engine sees the ids the parent's link gave the maps.
                if list(cores) != scratch.hosted:
                    raise PoolError(f"worker {index} hosts cores {scratch.hosted}, asked to load {list(cores)}")
                engine = _engine(obj, program, prog_type, model, list(cores), seed,
                                 MapStore(state_dir, ncpu=ncpu, attach=True))
                engine.clock = clock
                engine.warm_up()  # so the first batch's busy time is the program's, not the loader's
                handles[h] = engine
                # What is loaded lives as long as the worker: out of the collector's sight, a
                # full collection no longer walks the compiled engine's objects (it took a
                # worker 60-70 ms, every ~130 batches, stalling the batch in flight).
                gc.collect()
                gc.freeze()
                _send(conn, ("ok", None))
            elif kind == "unload":
                handles.pop(msg[1]).store.close()
                _send(conn, ("ok", None))
            elif kind == "run":
                _, h, slot, gen, n, nbytes, ctx_bytes = msg
                shape = slot_shape(n, nbytes, FIGURES, OM_COLS, ctx_bytes)
                _send(conn, ("ok", _run_slot(handles[h], slots.views(slot, gen, shape), scratch, seq)))
            else:
                _send(conn, ("err", f"unknown request {kind!r}"))
        except Exception as e:  # report and keep serving: one bad request must not kill a core
            _send(conn, ("err", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"))
    for engine in handles.values():
        engine.store.close()
    slots.close()
    # The machine's process may have died without closing it (kill -9, a crash): its state
    # folder (maps, slots) would stay in /dev/shm for good. The first worker to leave removes
    # it; files another worker still maps stay valid until that one exits too.
    statedir.remove_if_orphaned(machine_dir, STATE_PREFIX)


class _Scratch:
    """A worker's view of which cores it hosts, and the array of segments its engine runs (kept
    from batch to batch: fresh memory would cost a page fault per 4 KiB)."""

    def __init__(self, ncores: int, index: int, nworkers: int):
        self.hosted = list(range(index, ncores, nworkers))
        self.seq = slice(index, ncores, nworkers)  # the hosted cores' batch counters
        self.row_of = np.full(ncores, -1, np.int64)  # core -> its row in the engine's core table
        self.row_of[self.hosted] = np.arange(len(self.hosted))
        self.seg = np.zeros((3, ncores), np.int64)
        self.before = np.zeros((4, len(self.hosted)), np.uint64)  # counters before a batch
        self.figures = np.zeros((4, len(self.hosted)), np.int64)  # a batch's per-core figures

    def segments(self, v: SlotViews) -> tuple[int, int, int]:
        """This worker's events of the slot as its engine runs them, in the batch's order and
        in place: a segment per run of consecutive events of one hosted core, in ``self.seg``
        (see ``layout.core_runs``). Returns (segments, events, longest event)."""
        n = len(v.cores)
        if self.seg.shape[1] < n:
            self.seg = np.zeros((3, n + n // 2), np.int64)
        nseg, events, longest = core_runs(v.offsets, v.cores, self.row_of, self.seg)
        return int(nseg), int(events), int(longest)


_WIDE = 1 << 16  # value ranges counted in an array of counts; wider ones are sorted


def _value_counts(values: np.ndarray, seg: np.ndarray, nseg: int, lo: int, hi: int, events: int) -> dict[int, int]:
    """value -> how many of the segments' events have it, for a result column whose values run
    from lo to hi there."""
    if lo == hi:  # the common case: every event took the same path
        return {lo: events} if events else {}
    if hi - lo < _WIDE:
        counts = np.empty(hi - lo + 1, np.int64)
        count_values(values, seg, nseg, lo, counts)
        seen = np.flatnonzero(counts)
        return dict(zip((seen + lo).tolist(), counts[seen].tolist(), strict=True))
    picked = np.empty(events, values.dtype)
    gather_values(values, seg, nseg, picked)
    vals, n = np.unique(picked, return_counts=True)
    return dict(zip(vals.tolist(), n.tolist(), strict=True))


def _engine_columns(v: SlotViews) -> tuple:
    """The slot's result columns and event bounds as the engine takes them, made once per slot
    mapping (a dozen views cost a few µs per batch) and kept with its views."""
    if v.engine_columns is None:
        cols = v.cols
        figures = tuple(cols[k].view(np.uint64) if k in (_R0, _AUX) else cols[k] for k in range(FIGURES))
        v.engine_columns = (figures, v.offsets[:-1], v.offsets[1:])
    return v.engine_columns


def _run_slot(engine: Engine, v: SlotViews, scratch: _Scratch, seq: np.ndarray) -> dict:
    """Run this worker's cores' events of a slot, all with one engine call, in the batch's
    order, where they lie in the slot, writing each event's result row at its own index. (The
    rows of two workers' interleaved events share cache lines. Writing them into private columns
    grouped by core and scattering them afterwards was measured slower on 2 workers, B4 ~12-16
    against ~13-18 M events/s, and it cost a worker ~20 ns per event even alone.) Returns what
    does not fit the rows: per-core figures, logs by event index, and changed packets."""
    nseg, count, longest = scratch.segments(v)
    figures, starts, ends = _engine_columns(v)
    seg = scratch.seg[:, :nseg]
    table = engine.cores
    counters_before(table, scratch.before)
    one = np.uint64(1)
    hosted = seq[scratch.seq]  # a view: every hosted core is inside this batch while it runs
    hosted += one
    t0 = time.perf_counter_ns()
    try:
        arena, logs, lost = engine.run_in_place(v.blob, starts, ends, figures, v.meta, v.ctx, longest, seg, count)
    finally:
        busy = time.perf_counter_ns() - t0
        hosted += one
    # Per-core figures from the cores' own counters, which the engine keeps in the same pass.
    faults = core_figures(table, scratch.before, busy, scratch.figures)
    ilo, ihi, clo, chi = figure_ranges(figures[_INSNS], figures[_CYCLES], scratch.seg, nseg)
    # As bytes: a pickled array costs the parent ~4 us to load, bytes next to nothing.
    out = {"cores": scratch.figures.tobytes(),
           "faults": int(faults),
           "insns": _value_counts(figures[_INSNS], scratch.seg, nseg, ilo, ihi, count),
           "cycles": _value_counts(figures[_CYCLES], scratch.seg, nseg, clo, chi, count),
           "logs": logs,
           "lost": lost, "arena": arena if len(arena) else None}
    return out


# -- talking to one worker -------------------------------------------------------------------

def _deliver(on_reply, payload) -> None:
    try:
        on_reply(payload)
    except Exception:  # a broken callback must not end the receiver: later replies would be lost
        traceback.print_exc()


class _Link:
    """A worker process, and the receiver thread that matches its replies to requests in order.
    Requests are sent by the caller's thread: they are small (a batch is a slot number), so a
    send never waits on a busy worker, and a thread handoff per batch is saved. The slots bound
    how many batches are in flight."""

    def __init__(self, w: int, cores: list[int], proc, conn, on_death):
        self.w, self.cores, self.proc, self.conn = w, cores, proc, conn
        self._on_death = on_death
        self._inflight: collections.deque = collections.deque()
        self._lock = threading.Lock()  # one writer on the socket; in-flight order = send order
        self.dead: BaseException | None = None
        self.stopping = False
        self.unreplaceable = False
        self._receiver = threading.Thread(target=self._recv_loop, name=f"bpfmc-recv-{w}", daemon=True)
        self._receiver.start()

    def send(self, msg, on_reply) -> None:
        """Send a request; ``on_reply(payload)`` runs on the receiver thread with the worker's
        answer, or with the exception that stands for it (a refusal, or the worker's death).
        A plain callback rather than a Future: a batch's replies are on the hot path."""
        with self._lock:
            if self.dead is None:
                self._inflight.append(on_reply)
                try:
                    _send(self.conn, msg)
                except (OSError, ValueError, EOFError):
                    pass  # the receiver sees the worker's end and fails what is in flight
                return
        on_reply(self.dead)

    def call(self, msg) -> Future:
        """Send a request; its answer as a Future (for requests that are waited for)."""
        fut: Future = Future()
        self.send(msg, lambda payload: fut.set_exception(payload) if isinstance(payload, BaseException)
                  else fut.set_result(payload))
        return fut

    def _recv_loop(self) -> None:
        while True:
            try:
                status, payload = _recv(self.conn)
            except (EOFError, OSError, ValueError, TypeError):
                break
            with self._lock:
                on_reply = self._inflight.popleft()
            _deliver(on_reply, payload if status == "ok" else PoolError(payload))
        if self.stopping:
            return
        self.proc.join(timeout=2)
        code = self.proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        self._fail(WorkerDied(f"worker {self.w} (pid {self.proc.pid}, cores {self.cores}) died ({how}); its "
                              "part of a batch in flight may be partially applied and was not retried"))
        self._on_death(self)

    def _fail(self, exc: BaseException) -> None:
        with self._lock:
            self.dead = exc
            waiting = list(self._inflight)
            self._inflight.clear()
        for on_reply in waiting:
            _deliver(on_reply, exc)

    def stop(self) -> None:
        """Ask the worker to exit after the requests already sent."""
        self.stopping = True
        with self._lock:
            try:
                _send(self.conn, ("stop",))
            except (OSError, ValueError):
                pass


# -- results and statistics ------------------------------------------------------------------

@dataclass
class PoolResult(BatchResult):
    """A batch's results in event order (see :class:`BatchResult`), plus the emulated core that
    ran each event."""

    core: np.ndarray = None  # int32

    def run(self, i: int) -> dict:
        out = super().run(i)
        out["core"] = int(self.core[i])
        return out


class _Counts:
    """Exact distribution of a per-event figure: value -> events. Programs take few distinct
    paths, so this stays small and percentiles are exact."""

    def __init__(self):
        self.counts: dict[int, int] = {}
        self.total = 0
        self.events = 0

    def merge(self, counts: dict[int, int]) -> None:
        for v, n in counts.items():
            self.counts[v] = self.counts.get(v, 0) + n
            self.total += v * n
            self.events += n

    def percentile(self, q: float) -> int:
        rank, seen = q / 100 * self.events, 0
        for v in sorted(self.counts):
            seen += self.counts[v]
            if seen >= rank:
                return v
        return 0

    def summary(self) -> dict:
        if not self.events:
            return {"total": 0, "mean": 0.0, "p50": 0, "p99": 0}
        return {"total": self.total, "mean": self.total / self.events, "p50": self.percentile(50),
                "p99": self.percentile(99)}


@dataclass
class _ProgramStats:
    name: str
    events: int = 0
    faults: int = 0
    insns: _Counts = field(default_factory=_Counts)
    cycles: _Counts = field(default_factory=_Counts)
    wall_ns: int = 0  # time with at least one of its batches in flight
    in_flight: int = 0
    since: int = 0


@dataclass
class _Loaded:
    engine: object  # the parent's Engine: never runs; holds the maps' mapping for reads
    state_dir: Path
    obj: object  # ELF bytes or a Program
    program: str | None
    prog_type: str | None
    stats: _ProgramStats
    steering: dict[str, Steering] = field(default_factory=dict)


@dataclass
class _Submitted:
    """A batch in flight: its slot, the caller's blob, and where its rows will be."""

    slot: int
    views: SlotViews
    blob: np.ndarray


@dataclass
class _Rows:
    """A finished batch's per-event arrays, as the result will hold them: views of its slot
    (lent) or a copy."""

    offsets: np.ndarray
    cores: np.ndarray
    cols: np.ndarray  # int64 [FIGURES, n]
    meta: np.ndarray
    ctx: np.ndarray


class PoolFuture:
    """A submitted batch. ``result()`` waits for every worker's part and returns the
    :class:`PoolResult`; a worker that died with its part in flight makes it raise
    :class:`WorkerDied` (the other parts ran and stay applied). The batch leaves its slot's
    flight as soon as the last worker answers, whether or not anyone asks for the result; the
    result's columns may be the slot's own rows, which then stay the result's until it is
    dropped."""

    def __init__(self, machine: Machine, handle: int, batch: _Submitted, workers: list[int], submit):
        self._machine, self._handle, self._batch, self._workers = machine, handle, batch, workers
        self._lock = threading.Lock()
        self._pending = len(workers)
        # Held until the batch is done: waiting on a lock is cheaper than on an Event, whose
        # every wait allocates a lock of its own (a batch is waited for once or twice).
        self._done_lock = threading.Lock()
        self._done_lock.acquire()
        self._finished = False
        self._result: PoolResult | None = None
        self._error: BaseException | None = None
        self._replies: dict[int, object] = {}
        if not workers:
            self._harvest()
        for w in workers:
            submit(w, lambda payload, w=w: self._answered(w, payload))

    def _answered(self, w: int, payload) -> None:
        self._replies[w] = payload  # the reply, or the exception that stands for it
        with self._lock:
            self._pending -= 1
            last = self._pending == 0
        if last:
            self._harvest()

    def _harvest(self) -> None:
        """All workers answered: take the rows (in event order already), free the slot, account
        the batch. Runs on a receiver thread: whatever happens, the slot is freed and
        ``result()`` returns."""
        m, b = self._machine, self._batch
        self._batch = None
        try:
            try:
                replies = [(w, self._replies[w]) for w in self._workers]
                failed = any(isinstance(r, BaseException) for _, r in replies)
                rows = self._rows(b.views, lend=not failed and m._slots.may_lend(b.slot))
            finally:
                b.views = None  # the slot is reused once only a lent result refers to it
                m._slots.release(b.slot)
            self._gather(replies, b.blob, rows)
        except BaseException as e:  # noqa: BLE001  (a bug here must not hang every caller)
            self._error = PoolError(f"gathering the results of a batch failed: {type(e).__name__}: {e}")
        finally:
            self._finished = True
            self._done_lock.release()

    def _rows(self, v: SlotViews, lend: bool) -> _Rows:
        """The slot's per-event arrays: the slot's own memory when the result may keep it, else a
        copy (in a buffer of the machine's, reused once no result holds it)."""
        if lend:
            return _Rows(v.offsets, v.cores, v.cols, v.meta, v.ctx)
        rows = self._machine._result_arrays(len(v.cores), v.ctx.shape[1])
        for mine, theirs in zip((rows.offsets, rows.cores, rows.cols, rows.meta, rows.ctx),
                                (v.offsets, v.cores, v.cols, v.meta, v.ctx), strict=True):
            mine[...] = theirs
        return rows

    def _gather(self, replies: list, blob: np.ndarray, rows: _Rows) -> None:
        m = self._machine
        figures, errors, arenas, logs, lost = [], [], [], {}, 0
        for w, reply in replies:
            if isinstance(reply, BaseException):
                errors.append(reply)
                continue
            figures.append((w, reply["cores"], reply["faults"], reply["insns"], reply["cycles"]))
            if reply["arena"] is not None:
                if arenas:  # each worker's changed packets follow the ones before them
                    col = rows.meta[:, OM_DATA_OFF]  # a view: rebased in place
                    col[(rows.cores % m.nworkers == w) & (col >= 0)] += sum(len(a) for a in arenas)
                arenas.append(reply["arena"])
            logs.update(reply["logs"])
            lost += reply["lost"]
        ld = m._handles.get(self._handle)
        if errors or ld is None:
            m._finish(self._handle, None, figures)
            err = next((e for e in errors if isinstance(e, WorkerDied)), errors[0] if errors else None)
            self._error = err or PoolError(f"program {self._handle} was unloaded while its batch ran")
            return
        cols = rows.cols
        res = PoolResult(r0=cols[_R0].view(np.uint64), insns=cols[_INSNS], cycles=cols[_CYCLES], status=cols[_STATUS],
                         pc=cols[_PC], aux=cols[_AUX].view(np.uint64), meta=rows.meta,
                         out_data=np.concatenate(arenas) if arenas else np.zeros(0, np.uint8), out_ctx=rows.ctx,
                         blob=blob, offsets=rows.offsets, engine=ld.engine, logs=logs, lost_records=lost,
                         core=rows.cores)
        self._result = res
        m._finish(self._handle, res, figures)

    def done(self) -> bool:
        return self._finished

    def result(self, timeout: float | None = None) -> PoolResult:
        if not self._finished:
            if not self._done_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0)):
                raise TimeoutError(f"batch not finished within {timeout} s")
            self._done_lock.release()  # for any other thread waiting on this batch
        if self._error is not None:
            raise self._error
        return self._result


# -- the parent ------------------------------------------------------------------------------

class Machine:
    """``model.cores`` emulated cores on ``workers`` host processes. Use as a context manager.

    ``deterministic=True``: ``bpf_ktime_get_ns`` reads each core's virtual clock and the random
    streams start from ``seed`` (0 unless given), so a run reproduces bit for bit. Otherwise
    ktime follows the host's monotonic clock and the seed is random unless given."""

    def __init__(self, model: HardwareModel | str = "generic", *, workers: int | None = None,
                 seed: int | None = None, deterministic: bool = False):
        self.model = HardwareModel.load(model)
        self.ncores = self.model.cores
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        self.nworkers = min(workers or usable, self.ncores)
        self.deterministic = deterministic
        if seed is None:
            seed = 0 if deterministic else int.from_bytes(os.urandom(4), "little")
        self.seed = seed
        self.clock = "virtual" if deterministic else "host"
        self._ctx = context()
        self.state_dir = statedir.make(STATE_PREFIX, statedir.shm_root())
        self._seq = _CoreSeq(self.state_dir / "cores.seq", self.ncores, create=True)
        self._slots = SlotPool(self.state_dir, SLOTS, lend=LENT_SLOTS, lend_bytes=LENT_BYTES)
        self._results = Recycler(keep=SLOTS, max_bytes=LENT_BYTES)  # rows copied out of slots not lent
        self._handles: dict[int, _Loaded] = {}
        self._next_handle = 1
        self._links: list[_Link | None] = [None] * self.nworkers
        self._admin = threading.RLock()  # loads, unloads and worker replacement
        self._stats_lock = threading.Lock()
        # Per-core totals (rows layout.FIG_*: busy ns, events, instructions, cycles): a worker's reply adds
        # its cores' figures to their columns in one operation.
        self._per_core = np.zeros((4, self.ncores), np.int64)
        self.replaced = 0
        self._closed = False
        try:
            for w in range(self.nworkers):
                self._links[w] = self._spawn(w)
        except BaseException:
            self.close()
            raise

    # -- workers --------------------------------------------------------------------------
    def _start_process(self, w: int):
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        cpu = allowed[w % len(allowed)] if allowed else None
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, w, self.nworkers, cpu, str(self.state_dir),
                                                         self.ncores),
                              name=f"bpfmc-worker-{w}", daemon=True)
        with _main_hidden():
            p.start()
        child.close()  # so the parent's recv sees EOF when the worker dies
        return p, parent

    def _spawn(self, w: int) -> _Link:
        """A new worker with every loaded program attached, then its link."""
        p, conn = self._start_process(w)
        for h, ld in self._handles.items():
            _send(conn, self._load_msg(h, ld, w))
            status, payload = _recv(conn)
            if status != "ok":
                p.kill()
                raise PoolError(f"starting worker {w}: {payload}")
        return _Link(w, self.cores_of(w), p, conn, self._worker_died)

    def _worker_died(self, link: _Link) -> None:
        """Runs on the dead worker's receiver thread: free what it held, then replace it."""
        with self._admin:
            if self._closed or self._links[link.w] is not link:
                return
            cores = self.cores_of(link.w)
            owners = [c + 1 for c in cores]  # the lock owner id of core c (helpers: cpu + 1)
            for ld in self._handles.values():
                for mp in ld.engine.image.maps:
                    mp.release_locks(owners)
            words = self._seq.words
            for c in cores:  # a batch cut short leaves its core's counter odd
                if int(words[c]) & 1:
                    words[c] += np.uint64(1)
            try:
                link.conn.close()
            except OSError:
                pass
            try:
                self._links[link.w] = self._spawn(link.w)
                self.replaced += 1
            except Exception as e:  # keep the dead link: calls fail with this reason
                link.dead = PoolError(f"worker {link.w} died and could not be replaced: {e}")
                link.unreplaceable = True

    def _link(self, w: int) -> _Link:
        """Worker w's link; while a dead worker is being replaced, wait for its successor, so
        a batch that was never sent to the dead worker does not fail with it."""
        ln = self._links[w]
        deadline = time.monotonic() + REPLACE_TIMEOUT
        while ln.dead is not None and not ln.unreplaceable:
            if self._closed or time.monotonic() > deadline:
                break
            time.sleep(0.005)
            ln = self._links[w]
        return ln

    def cores_of(self, w: int) -> list[int]:
        return list(range(w, self.ncores, self.nworkers))

    def worker_pids(self) -> list[int]:
        return [ln.proc.pid for ln in self._links if ln is not None]

    def _call_all(self, msgs: dict[int, tuple], doing: str) -> dict[int, object]:
        self._check_open()
        futs = {w: self._link(w).call(msg) for w, msg in msgs.items()}
        out, errors = {}, []
        for w, f in futs.items():
            try:
                out[w] = f.result()
            except (PoolError, WorkerDied) as e:
                errors.append(f"worker {w}: {e}")
        if errors:
            raise PoolError(f"{doing} failed: " + "\n".join(errors))
        return out

    # -- programs -------------------------------------------------------------------------
    def _load_msg(self, h: int, ld: _Loaded, w: int) -> tuple:
        return ("load", h, ld.obj, ld.program, ld.prog_type, self.model, self.cores_of(w), self.seed,
                str(ld.state_dir), self.clock)

    def load(self, source, program: str | None = None, *, prog_type: str | None = None) -> int:
        """Link a program once here (its maps created and initialised), then on every core.
        ``source``: an ELF object (path or bytes; ``program`` chooses among its programs,
        ``prog_type`` overrides the section's type) or a single :class:`Program`."""
        from bpfmc.ebpf.program import Program

        from .maps import MapStore

        self._check_open()
        if isinstance(source, Program):
            obj = source
        else:
            obj = source if isinstance(source, bytes) else Path(source).read_bytes()
        with self._admin:
            h = self._next_handle
            self._next_handle += 1
            state_dir = self.state_dir / f"prog-{h}"
            store = MapStore(state_dir, ncpu=self.ncores)
            try:
                engine = _engine(obj, program, prog_type, self.model, [0], self.seed, store)
            except BaseException:
                store.close()
                shutil.rmtree(state_dir, ignore_errors=True)
                raise
            ld = _Loaded(engine, state_dir, obj, program, prog_type, _ProgramStats(engine.program.name))
            self._handles[h] = ld
            try:
                self._call_all({w: self._load_msg(h, ld, w) for w in range(self.nworkers)}, f"load of program {h}")
            except BaseException:
                self.unload(h)
                raise
        return h

    def unload(self, handle: int) -> None:
        with self._admin:
            ld = self._handles.pop(handle)
            futs = [ln.call(("unload", handle)) for ln in self._links if ln is not None and ln.dead is None]
        for f in futs:
            try:
                f.result(timeout=30)
            except (PoolError, WorkerDied):
                pass  # a worker that never loaded it has nothing to drop
        ld.engine.store.close()
        shutil.rmtree(ld.state_dir, ignore_errors=True)

    def program(self, handle: int):
        """The parent's :class:`Engine` of a loaded program (its image, maps and context)."""
        return self._loaded(handle).engine

    def _loaded(self, handle: int) -> _Loaded:
        self._check_open()
        if handle not in self._handles:
            raise KeyError(f"no program loaded as handle {handle!r}")
        return self._handles[handle]

    # -- running --------------------------------------------------------------------------
    def steer(self, handle: int, blob: np.ndarray, offsets: np.ndarray, steering="rr") -> np.ndarray:
        """The core of every event: a mode (``"rr"``, continuing across batches; ``"rss"``) or
        an array of core ids."""
        ld = self._loaded(handle)
        if isinstance(steering, str):
            return self._steering(ld, steering).steer(blob, offsets)
        return self._steering(ld, "core").steer(blob, offsets, np.asarray(steering))

    def _steering(self, ld: _Loaded, mode: str) -> Steering:
        if mode not in ld.steering:
            ld.steering[mode] = Steering(self.ncores, mode)
        return ld.steering[mode]

    def submit(self, handle: int, events: tuple, steering="rr", *, recorder=None) -> PoolFuture:
        """Queue a batch ``(blob, lengths)`` and return at once with a :class:`PoolFuture`; waits
        only while the workers are a full queue behind (back-pressure, nothing dropped).
        Batches of one submitter complete in submission order on every core."""
        ld = self._loaded(handle)
        blob = np.ascontiguousarray(np.frombuffer(events[0], np.uint8) if isinstance(events[0], bytes | bytearray)
                                    else events[0], np.uint8)
        lengths = np.ascontiguousarray(events[1], np.int64)
        if lengths.ndim != 1:
            raise ValueError("lengths must be a sequence of event sizes")
        n = len(lengths)
        ctx_bytes = ld.engine.context.size if ld.engine.context.kind in (KIND_SKB, KIND_SOCKET) else 0
        rr = isinstance(steering, str) and steering == "rr"
        if rr:  # the cores are written while packing: moved past only once the batch is accepted
            cores, rr_first = None, self._steering(ld, "rr").next_core
        else:
            if (lengths < 0).any() or int(lengths.sum()) != len(blob):
                raise ValueError("lengths must be non-negative and add up to the blob's size")
            offsets = np.zeros(n + 1, np.int64)
            np.cumsum(lengths, out=offsets[1:])
            cores, rr_first = self.steer(handle, blob, offsets, steering).astype(np.int32, copy=False), -1
        shape = slot_shape(n, len(blob), FIGURES, OM_COLS, ctx_bytes)
        slot, gen, buf = self._slots.acquire(shape.size())
        try:
            v = shape.views(buf)
            counts = np.zeros(self.ncores, np.int64)
            shortest, total = pack_batch(blob, lengths, _NO_CORES if cores is None else cores, rr_first, v.offsets,
                                         v.cores, v.blob, counts)
            if shortest < 0 or total != len(blob):
                raise ValueError("lengths must be non-negative and add up to the blob's size")
            if ld.engine.prog_type != "raw" and n and shortest < ETH_HLEN:
                i = int(np.argmin(lengths))
                raise EventError(f"event {i}: a {ld.engine.prog_type} program needs an Ethernet frame of at least "
                                 f"{ETH_HLEN} bytes, got {int(lengths[i])}")
        except BaseException:
            v = buf = None
            self._slots.release(slot)
            raise
        if rr:
            self._steering(ld, "rr").advance(n)
        if recorder is not None:
            recorder.add(blob, lengths, v.cores)
        with self._stats_lock:
            st = ld.stats
            if st.in_flight == 0:
                st.since = time.perf_counter_ns()
            st.in_flight += 1
        workers = [w for w in range(self.nworkers) if counts[w::self.nworkers].any()]
        msg = ("run", handle, slot, gen, n, len(blob), ctx_bytes)
        return PoolFuture(self, handle, _Submitted(slot, v, blob), workers,
                          lambda w, on_reply: self._link(w).send(msg, on_reply))

    def _result_arrays(self, n: int, ctx_bytes: int) -> _Rows:
        """Arrays for a result's rows, laid out as a slot's (without the blob) in one recycled
        buffer (fresh memory would cost a page fault per 4 KiB, more than copying the rows in)."""
        shape = slot_shape(n, 0, FIGURES, OM_COLS, ctx_bytes)
        v = shape.views(self._results.take(shape.size()))
        return _Rows(v.offsets, v.cores, v.cols, v.meta, v.ctx)

    def run(self, handle: int, events: tuple, steering="rr", *, recorder=None) -> PoolResult:
        """Run a batch ``(blob, lengths)`` and wait for it; results in event order."""
        return self.submit(handle, events, steering, recorder=recorder).result()

    def _finish(self, handle: int, res: PoolResult | None, figures: list[tuple]) -> None:
        """Account a batch from its workers' figures: the worker, its cores' figures (int64 rows
        busy ns, events, instructions, cycles; a column per core it hosts, in order), then its
        faults and its events' instruction and cycle counts (value -> events); a failed batch
        (``res`` None) adds only the time and work its cores did."""
        with self._stats_lock:
            ld = self._handles.get(handle)
            st = ld.stats if ld is not None else None
            if st is not None:
                st.in_flight -= 1
                if st.in_flight == 0:
                    st.wall_ns += time.perf_counter_ns() - st.since
            for w, per_core, faults, insns, cycles in figures:
                per_core = np.frombuffer(per_core, np.int64).reshape(4, -1)
                if res is None:  # the time and work count, the events (not all done) do not
                    per_core = per_core.copy()
                    per_core[FIG_EVENTS] = 0
                self._per_core[:, w::self.nworkers] += per_core  # worker w's cores: w, w + W, ...
                if res is not None and st is not None:
                    st.faults += faults
                    st.insns.merge(insns)
                    st.cycles.merge(cycles)
            if res is not None and st is not None:
                st.events += len(res)

    # -- maps -----------------------------------------------------------------------------
    def _map(self, handle: int, name: str):
        ld = self._loaded(handle)
        mp = ld.engine.map(name)
        fields = next(s.value_fields for m, s in zip(ld.engine.image.maps, ld.engine.image.setups, strict=True)
                      if m is mp)
        return mp, fields

    def _items_between_batches(self, mp) -> list[tuple[bytes, bytes]]:
        """A per-CPU map's entries with every core's row as it stood between two of that core's
        batches: read when no core is inside a batch and no batch ended meanwhile; under steady
        load, core by core (each core's rows taken between two of its own batches)."""
        words = self._seq.words
        for _ in range(50):
            before = words.copy()
            if not (before & np.uint64(1)).any():
                items = list(mp.items())
                if (words == before).all():
                    return items
            time.sleep(0.0002)
        stride, ncpu = mp.layout.stride, mp.layout.ncpu
        rows: dict[bytes, bytearray] = {}
        deadline = time.monotonic() + 30
        for c in range(ncpu):
            while True:
                seen = int(words[c])
                if not seen & 1:
                    got = {k: v[c * stride:(c + 1) * stride] for k, v in mp.items()}
                    if int(words[c]) == seen:
                        break
                if time.monotonic() > deadline:
                    raise PoolError(f"map {mp.name!r}: core {c} stayed inside one batch for 30 s; no consistent read")
                time.sleep(0.0002)
            for k, row in got.items():
                rows.setdefault(k, bytearray(stride * ncpu))[c * stride:(c + 1) * stride] = row
        return [(k, bytes(v)) for k, v in rows.items()]

    def map_read(self, handle: int, name: str, view: str = "raw") -> dict[bytes, bytes]:
        """Every entry of a map, read from the parent's own mapping of the shared files.
        ``raw``: the kernel's layout (per-CPU: one padded row per emulated core);
        ``sum``/``min``/``max``: per-CPU rows merged per integer field (BTF, else per word)."""
        from .maps import merge_values

        if view not in ("raw", "sum", "min", "max"):
            raise ValueError(f"unknown map view {view!r} (raw, sum, min, max)")
        mp, fields = self._map(handle, name)
        if not mp.mdef.per_cpu:
            return dict(mp.items())
        items = self._items_between_batches(mp)
        if view == "raw":
            return dict(items)
        return {k: merge_values(mp.per_cpu(v), view, fields) for k, v in items}

    def map_dump(self, handle: int) -> dict:
        """Every map of the program in DESIGN's JSON shape (per-CPU: rows and their sum)."""
        from .engine import dump_map

        eng = self._loaded(handle).engine
        return {mp.name: dump_map(mp, s.value_fields) for mp, s in zip(eng.image.maps, eng.image.setups,
                                                                       strict=True)}

    def map_update(self, handle: int, name: str, key: bytes, value: bytes, flags: int = 0) -> None:
        """Control-plane update, atomic with respect to the running cores (kernel flags and
        errors: BPF_ANY/NOEXIST/EXIST; -EEXIST, -ENOENT, -E2BIG as MapError)."""
        self._map(handle, name)[0].update(key, value, flags)

    def map_delete(self, handle: int, name: str, key: bytes) -> None:
        self._map(handle, name)[0].delete(key)

    def map(self, handle: int, name: str):
        """The parent's :class:`Map` view (control-plane updates go through it)."""
        return self._map(handle, name)[0]

    # -- statistics -----------------------------------------------------------------------
    def stats(self) -> dict:
        """Per emulated core and per program figures, with the hardware model's estimate of the
        sustainable event rate on the modelled target next to the rate measured on this host."""
        m = self.model
        with self._stats_lock:
            busy, events, insns, cycles = self._per_core.tolist()
            per_core = [{"core": c, "worker": c % self.nworkers, "events": events[c], "insns": insns[c],
                         "cycles": cycles[c], "busy_ms": round(busy[c] / 1e6, 3)} for c in range(self.ncores)]
            programs = {}
            for h, ld in self._handles.items():
                st = ld.stats
                cyc = st.cycles.summary()
                wall = st.wall_ns + (time.perf_counter_ns() - st.since if st.in_flight else 0)
                programs[h] = {
                    "name": st.name, "events": st.events, "faults": st.faults,
                    "insns": st.insns.summary(), "cycles": cyc,
                    "model_events_per_s": (m.clock_hz * self.ncores / cyc["mean"]) if cyc["mean"] else None,
                    "host_events_per_s": (st.events / (wall / 1e9)) if wall else None,
                }
        return {"model": m.name, "cores": self.ncores, "workers": self.nworkers, "clock_hz": m.clock_hz,
                "deterministic": self.deterministic, "seed": self.seed, "replaced_workers": self.replaced,
                "per_core": per_core, "programs": programs}

    # -- lifetime -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise PoolError("the machine is closed")

    def close(self) -> None:
        with self._admin:
            if self._closed:
                return
            self._closed = True
        links = [ln for ln in self._links if ln is not None]
        for ln in links:
            ln.stop()
        for ln in links:
            ln.proc.join(timeout=5)
            if ln.proc.is_alive():  # wedged in a long batch: it holds nothing we still need
                ln.proc.kill()
                ln.proc.join(timeout=5)
            ln._fail(PoolError("the machine is closed"))
            ln.conn.close()
        for ld in self._handles.values():
            ld.engine.store.close()
        self._handles.clear()
        self._seq.close()
        self._slots.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
