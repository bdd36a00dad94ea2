"""The worker pool: the emulated cores of a hardware model spread over host worker processes.

A :class:`Machine` has ``model.cores`` emulated cores (any number from 1) and ``workers`` host
processes; core ``c`` lives on worker ``c % workers`` (DESIGN: emulated cores are not host
cores). The parent links each loaded object once, which creates its map files in a state
folder under ``/dev/shm`` that the machine owns; every worker then builds one :class:`Engine`
per core it hosts, attached to those same files (``MapStore(attach=True)``), so every core and
the parent see one set of maps. Shared values are updated with real atomics by the compiled
engine; per-CPU values have one row per emulated core and each engine writes only its own.

A batch crosses the process boundary as packed bytes: the parent steers every event to a core,
cuts out each worker's events as one blob plus a lengths array (grouped by core), sends it down
that worker's pipe, and scatters the result columns back into event order.

Workers come from a ``forkserver`` context (gRPC's C core is not fork-safe: the server must call
:func:`context` before it imports grpc), set ``PR_SET_PDEATHSIG`` so none outlives its parent,
and are pinned to one host CPU each where the affinity mask allows.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model import HardwareModel
from .steering import Steering

PR_SET_PDEATHSIG = 1
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

        forkserver.ensure_running()
        _CTX = ctx
    return _CTX


# -- the worker process ----------------------------------------------------------------------

def _worker_main(conn, index: int, cpu: int | None) -> None:
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
    from .engine import Engine
    from .maps import MapStore

    handles: dict[int, dict[int, Engine]] = {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break  # the parent went away
        kind = msg[0]
        try:
            if kind == "stop":
                break
            if kind == "load":
                _, h, obj, program, model, cores, seed, state_dir = msg
                ncpu = HardwareModel.load(model).cores
                # One attached store per core: a store hands out map ids in creation order, and
                # every engine must see the ids (and files) the parent's link gave the maps.
                engines = {c: Engine.from_object(obj, program, model, cpu=c, seed=seed,
                                                 store=MapStore(state_dir, ncpu=ncpu, attach=True)) for c in cores}
                handles[h] = engines
                conn.send(("ok", None))
            elif kind == "unload":
                for e in handles.pop(msg[1]).values():
                    e.store.close()
                conn.send(("ok", None))
            elif kind == "run":
                _, h, core_ids, counts, blob, lengths = msg
                engines = handles[h]
                n = len(lengths)
                out = (np.zeros(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64))
                i, b = 0, 0
                for c, k in zip(core_ids.tolist(), counts.tolist(), strict=True):
                    ln = lengths[i:i + k]
                    nbytes = int(ln.sum())
                    res = engines[c].run_batch((blob[b:b + nbytes], ln))
                    out[0][i:i + k], out[1][i:i + k] = res.r0, res.insns
                    out[2][i:i + k], out[3][i:i + k] = res.cycles, res.status
                    i, b = i + k, b + nbytes
                conn.send(("ok", out))
            else:
                conn.send(("err", f"unknown request {kind!r}"))
        except Exception as e:  # report and keep serving: one bad request must not kill a core
            conn.send(("err", f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=3)}"))
    for engines in handles.values():
        for e in engines.values():
            e.store.close()


# -- the parent ------------------------------------------------------------------------------

@dataclass
class PoolResult:
    """Result columns of one batch, one row per event, in event order."""

    r0: np.ndarray  # uint64
    insns: np.ndarray  # int64
    cycles: np.ndarray  # int64
    status: np.ndarray  # int64, 0 = ok
    core: np.ndarray  # int32, the emulated core that ran the event

    def __len__(self) -> int:
        return len(self.r0)


@dataclass
class _Loaded:
    engine: object  # the parent's Engine: never runs, holds the maps' mapping for reads
    state_dir: Path
    obj: bytes
    program: str | None
    steering: dict[str, Steering] = field(default_factory=dict)


class Machine:
    """``model.cores`` emulated cores on ``workers`` host processes. Use as a context manager."""

    def __init__(self, model: HardwareModel | str = "generic", *, workers: int | None = None, seed: int = 0):
        self.model = HardwareModel.load(model)
        self.ncores = self.model.cores
        self.nworkers = min(workers or os.cpu_count() or 1, self.ncores)
        if self.nworkers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        self.seed = seed
        self._ctx = context()
        root = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        self.state_dir = Path(tempfile.mkdtemp(prefix="bpfmc-pool-", dir=root))
        self._handles: dict[int, _Loaded] = {}
        self._next_handle = 1
        self._procs: list = [None] * self.nworkers
        self._conns: list = [None] * self.nworkers
        self._events = np.zeros(self.ncores, np.int64)
        self._insns = np.zeros(self.ncores, np.int64)
        self._cycles = np.zeros(self.ncores, np.int64)
        self._closed = False
        try:
            for w in range(self.nworkers):
                self._spawn(w)
        except BaseException:
            self.close()
            raise

    # -- workers --------------------------------------------------------------------------
    def _spawn(self, w: int) -> None:
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        cpu = allowed[w % len(allowed)] if allowed else None
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, w, cpu), name=f"bpfmc-worker-{w}", daemon=True)
        p.start()
        child.close()  # so the parent's recv sees EOF when the worker dies
        self._procs[w], self._conns[w] = p, parent

    def cores_of(self, w: int) -> list[int]:
        return list(range(w, self.ncores, self.nworkers))

    def worker_pids(self) -> list[int]:
        return [p.pid for p in self._procs if p is not None]

    def _died(self, w: int, doing: str) -> WorkerDied:
        p = self._procs[w]
        p.join(timeout=1)
        code = p.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return WorkerDied(f"worker {w} (pid {p.pid}, cores {self.cores_of(w)}) died ({how}) during {doing}; "
                          "its part of the batch may be partially applied and was not retried")

    def _request(self, targets: dict[int, tuple], doing: str) -> dict[int, object]:
        """Send one message to each worker in ``targets``, then gather every reply, so the
        workers run in parallel. A dead worker is reported after all live ones answered, so
        no reply is left in a pipe to be mistaken for the next request's."""
        self._check_open()
        dead: list[int] = []
        for w, msg in targets.items():
            try:
                self._conns[w].send(msg)
            except (BrokenPipeError, ConnectionResetError, EOFError, OSError):
                dead.append(w)
        replies: dict[int, object] = {}
        errors: list[str] = []
        for w in targets:
            if w in dead:
                continue
            try:
                status, payload = self._conns[w].recv()
            except (EOFError, ConnectionResetError, OSError):
                dead.append(w)
                continue
            if status == "ok":
                replies[w] = payload
            else:
                errors.append(f"worker {w}: {payload}")
        if dead:
            err = self._died(dead[0], doing)
            for w in dead:
                self._replace(w)
            raise err
        if errors:
            raise PoolError(f"{doing} failed: " + "\n".join(errors))
        return replies

    def _replace(self, w: int) -> None:
        """Start a new worker in a dead one's place and attach it to every loaded program, so
        the machine keeps all its cores. Map state is whatever the dead worker left (a bucket
        lock it held is not released yet)."""
        try:
            self._conns[w].close()
        except OSError:
            pass
        self._spawn(w)
        for h, ld in self._handles.items():
            self._conns[w].send(self._load_msg(h, ld, w))
            status, payload = self._conns[w].recv()
            if status != "ok":
                raise PoolError(f"replacing worker {w}: {payload}")

    # -- programs -------------------------------------------------------------------------
    def _load_msg(self, h: int, ld: _Loaded, w: int) -> tuple:
        return ("load", h, ld.obj, ld.program, self.model, self.cores_of(w), self.seed, str(ld.state_dir))

    def load(self, object_path: str | Path | bytes, program: str | None = None) -> int:
        """Link an object once here (its maps created and initialised), then on every core."""
        from .engine import Engine
        from .maps import MapStore

        self._check_open()
        obj = object_path if isinstance(object_path, bytes) else Path(object_path).read_bytes()
        h = self._next_handle
        self._next_handle += 1
        state_dir = self.state_dir / f"prog-{h}"
        store = MapStore(state_dir, ncpu=self.ncores)
        try:
            engine = Engine.from_object(obj, program, self.model, cpu=0, seed=self.seed, store=store)
        except BaseException:
            store.close()
            shutil.rmtree(state_dir, ignore_errors=True)
            raise
        ld = _Loaded(engine, state_dir, obj, program)
        self._handles[h] = ld
        try:
            self._request({w: self._load_msg(h, ld, w) for w in range(self.nworkers)}, f"load of program {h}")
        except BaseException:
            self.unload(h)
            raise
        return h

    def unload(self, handle: int) -> None:
        ld = self._handles.pop(handle)
        live = {w: ("unload", handle) for w in range(self.nworkers) if self._procs[w].is_alive()}
        try:
            self._request(live, f"unload of program {handle}")
        except PoolError:
            pass  # a worker that never loaded it has nothing to drop
        ld.engine.store.close()
        shutil.rmtree(ld.state_dir, ignore_errors=True)

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
            if steering not in ld.steering:
                ld.steering[steering] = Steering(self.ncores, steering)
            return ld.steering[steering].steer(blob, offsets)
        return Steering(self.ncores, "core").steer(blob, offsets, np.asarray(steering))

    def run(self, handle: int, events: tuple, steering="rr") -> PoolResult:
        """Run a batch ``(blob, lengths)``; results in event order."""
        self._loaded(handle)
        blob = np.ascontiguousarray(np.frombuffer(events[0], np.uint8) if isinstance(events[0], bytes | bytearray)
                                    else events[0], np.uint8)
        lengths = np.asarray(events[1], np.int64)
        if (lengths < 0).any() or int(lengths.sum()) != len(blob):
            raise ValueError("lengths must be non-negative and add up to the blob's size")
        n = len(lengths)
        offsets = np.zeros(n + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        cores = self.steer(handle, blob, offsets, steering).astype(np.int32)
        # Events grouped by core, each core's in arrival order (a stable sort), so a worker runs
        # one contiguous slice per core.
        order = np.argsort(cores, kind="stable")
        worker_of = cores[order] % self.nworkers
        msgs: dict[int, tuple] = {}
        picks: dict[int, np.ndarray] = {}
        for w in range(self.nworkers):
            sel = order[worker_of == w]
            if not len(sel):
                continue
            ln = lengths[sel]
            # Byte indexes of the selected events, built without a per-event Python loop.
            starts = offsets[sel]
            within = np.arange(int(ln.sum()), dtype=np.int64) - np.repeat(np.cumsum(ln) - ln, ln)
            sub = blob[np.repeat(starts, ln) + within]
            core_ids, counts = np.unique(cores[sel], return_counts=True)
            msgs[w] = ("run", handle, core_ids.astype(np.int64), counts.astype(np.int64), sub, ln)
            picks[w] = sel
        res = PoolResult(np.zeros(n, np.uint64), np.zeros(n, np.int64), np.zeros(n, np.int64),
                         np.zeros(n, np.int64), cores)
        replies = self._request(msgs, f"batch of {n} events")
        for w, (r0, insns, cycles, status) in replies.items():
            sel = picks[w]
            res.r0[sel], res.insns[sel], res.cycles[sel], res.status[sel] = r0, insns, cycles, status
        self._events += np.bincount(cores, minlength=self.ncores)
        # add.at, not bincount(weights=): bincount sums in float64, inexact past 2**53 cycles
        np.add.at(self._insns, cores, res.insns)
        np.add.at(self._cycles, cores, res.cycles)
        return res

    # -- maps and stats -------------------------------------------------------------------
    def map_read(self, handle: int, name: str, view: str = "raw") -> dict[bytes, bytes]:
        """Every entry of a map, read from the parent's own mapping of the shared files.
        ``raw``: the kernel's layout (per-CPU: one padded row per emulated core);
        ``sum``/``min``/``max``: per-CPU rows merged per integer field."""
        from .maps import merge_values

        if view not in ("raw", "sum", "min", "max"):
            raise ValueError(f"unknown map view {view!r} (raw, sum, min, max)")
        ld = self._loaded(handle)
        mp = ld.engine.map(name)
        fields = next(s.value_fields for m, s in zip(ld.engine.image.maps, ld.engine.image.setups, strict=True)
                      if m is mp)
        out = {}
        for key, value in mp.items():
            if view != "raw" and mp.mdef.per_cpu:
                value = merge_values(mp.per_cpu(value), view, fields)
            out[key] = value
        return out

    def map(self, handle: int, name: str):
        """The parent's :class:`Map` view (control-plane updates go through it)."""
        return self._loaded(handle).engine.map(name)

    def stats(self) -> dict:
        return {"cores": self.ncores, "workers": self.nworkers,
                "per_core": [{"core": c, "worker": c % self.nworkers, "events": int(self._events[c]),
                              "insns": int(self._insns[c]), "cycles": int(self._cycles[c])}
                             for c in range(self.ncores)]}

    # -- lifetime -------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise PoolError("the machine is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for w, p in enumerate(self._procs):
            if p is None:
                continue
            try:
                self._conns[w].send(("stop",))
            except (OSError, ValueError):
                pass
        for w, p in enumerate(self._procs):
            if p is None:
                continue
            p.join(timeout=5)
            if p.is_alive():  # wedged in a long batch: it holds nothing we still need
                p.kill()
                p.join(timeout=5)
            self._conns[w].close()
        for ld in self._handles.values():
            ld.engine.store.close()
        self._handles.clear()
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
