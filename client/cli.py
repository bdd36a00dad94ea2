"""``bpfctl``: the command line.

Offline commands (``exec``, ``conformance``, ``asm``, ``disasm``) reach the engine and the
language layer through imports made inside each command, so ``import bpfmc.client`` stays light.

Exit codes (DESIGN "Contracts"): 0 success; 1 the verifier refused the program; 2 the input
could not be read or decoded (usage, file, ELF, assembly, structural checks); 3 a run faulted
(the JSON still prints) -- and, for ``conformance``, a program gave the wrong result; 4 the
server could not be reached or answered with an error status.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_INPUT = 2
EXIT_FAULT = 3
EXIT_SERVER = 4
EXIT_INTERNAL = 70  # a bug in bpfctl itself (EX_SOFTWARE); BPFMC_DEBUG=1 shows the traceback


class CliError(Exception):
    """A user mistake: printed as one line, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_INPUT):
        super().__init__(message)
        self.code = code


# -- reading programs and inputs ---------------------------------------------------------------

def _read_bytes(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CliError(f"cannot read {path}: {e.strerror}") from None


def _read_text(path: str) -> str:
    data = _read_bytes(path)
    try:
        return data.decode()
    except UnicodeDecodeError:
        raise CliError(f"{path}: not a text file (assembly and .data files are text)") from None


def load_program(path: str, *, prog_type: str = "raw"):
    """(Program, default input) from assembly, raw slots or a conformance .data file."""
    from bpfmc.ebpf.asm import AsmError, assemble
    from bpfmc.ebpf.conformance import FormatError, parse_text
    from bpfmc.ebpf.insn import DecodeError
    from bpfmc.ebpf.program import Program

    name = Path(path).stem
    suffix = Path(path).suffix.lower()
    try:
        if suffix in (".s", ".asm"):
            return Program(assemble(_read_text(path)), name=name, prog_type=prog_type), b""
        if suffix == ".data":
            case = parse_text(_read_text(path), name=name, path=Path(path))
            if case.code is None:
                raise CliError(f"{path}: no program to run ({case.skip_reason})")
            return Program(case.code, name=name, prog_type=prog_type), case.mem
        data = _read_bytes(path)
        if data[:4] == b"\x7fELF":
            raise CliError(f"{path}: ELF objects are not supported by this version of bpfctl yet; "
                           "give assembly (.s/.asm), raw slots (.bin) or a .data file")
        return Program(data, name=name, prog_type=prog_type), b""
    except AsmError as e:
        raise CliError(f"{path}: {e}") from None
    except (FormatError, DecodeError, ValueError) as e:
        if isinstance(e, CliError):
            raise
        raise CliError(f"{path}: {e}") from None


def _parse_hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).removeprefix("0x")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise CliError(f"{what}: not a hex byte string: {text!r}") from None


def _inputs(args, default: bytes) -> list[bytes]:
    inputs = [x for kind, x in (args.inputs or [])]
    return inputs if inputs else [default]


class _InputAction(argparse.Action):
    """--data/--mem HEX and --data-file F keep their command-line order in one list."""

    def __call__(self, parser, namespace, value, option_string=None):
        items = list(getattr(namespace, self.dest) or [])
        if option_string == "--data-file":
            items.append(("file", _read_bytes(value)))
        else:
            items.append(("hex", _parse_hex(value, option_string)))
        setattr(namespace, self.dest, items)


# -- commands ----------------------------------------------------------------------------------

def _read_source(args):
    """PROG as ``(ELF bytes, None, b"")`` for an object, else ``(None, Program, default input)``."""
    data = _read_bytes(args.program)
    if data[:4] == b"\x7fELF":
        return data, None, b""
    if args.program_name or args.section:
        raise CliError("--program/--section choose among the programs of an ELF object")
    program, default_input = load_program(args.program, prog_type=args.type or "raw")
    return None, program, default_input


def _make_engine(args, model):
    """The engine for PROG: an ELF object (all its programs and maps), or a single program."""
    from bpfmc.ebpf.elf import ElfError, load_object
    from bpfmc.ebpf.validate import ValidationError
    from bpfmc.worker.engine import Engine
    from bpfmc.worker.image import LinkError
    from bpfmc.worker.maps import MapError

    try:
        elf, program, default_input = _read_source(args)
        if elf is not None:
            return Engine.from_object(load_object(elf), program=args.program_name or args.section, model=model,
                                      prog_type=args.type, cpu=args.cpu, seed=args.seed), b""
        return Engine(program, model, core_id=args.cpu, seed=args.seed), default_input
    except ElfError as e:
        raise CliError(f"{args.program}: {e}") from None
    except ValidationError as e:
        raise CliError(f"{args.program}: program refused: {e}") from None
    except (LinkError, MapError, KeyError, ValueError) as e:
        if isinstance(e, CliError):
            raise
        raise CliError(f"{args.program}: {e.args[0] if isinstance(e, KeyError) else e}") from None


def _apply_map_updates(update, updates: list[str]) -> None:
    """``update(name, key, value)`` for each MAP:KEYHEX:VALUEHEX, in order."""
    from bpfmc.worker.image import LinkError
    from bpfmc.worker.maps import MapError

    for spec in updates or []:
        parts = spec.split(":")
        if len(parts) != 3:
            raise CliError(f"--map-update {spec!r}: expected MAP:KEYHEX:VALUEHEX")
        name, key, value = parts
        try:
            update(name, _parse_hex(key, "--map-update key"), _parse_hex(value, "--map-update value"))
        except (LinkError, MapError, KeyError) as e:
            raise CliError(f"--map-update {spec!r}: {e}") from None


# -- verification ------------------------------------------------------------------------------

def _programs_to_verify(args) -> tuple[list, list]:
    """(programs, their maps) for ``verify`` and ``exec``: every program of an ELF object
    (libbpf loads them all, so the kernel verifies them all) or the one program of an
    assembly, raw or .data file."""
    from bpfmc.ebpf.elf import ElfError, NotFound, load_object
    from bpfmc.ebpf.program import Program

    elf, program, _ = _read_source(args)
    if elf is not None:
        choice = args.program_name or args.section
        try:
            obj = load_object(elf)
            chosen = obj.program(choice) if choice else None
        except (ElfError, NotFound) as e:
            raise CliError(f"{args.program}: {e.args[0] if isinstance(e, KeyError) else e}") from None
        programs = list(obj.programs.values())
        if args.type:
            programs = [Program(p.code, name=p.name, prog_type=args.type, meta=p.meta)
                        if chosen is None or p.name == chosen.name else p for p in programs]
        if getattr(args, "only_chosen", False) and chosen is not None:
            programs = [p for p in programs if p.name == chosen.name]
        return programs, list(obj.maps)
    if getattr(args, "raw_needs_type", False) and Path(args.program).suffix.lower() not in (".s", ".asm", ".data") \
            and not args.type:
        raise CliError(f"{args.program}: a raw program needs --type (raw, xdp, sched_cls, socket_filter)")
    return [program], []


def _verify(programs, maps, *, privileged: bool, log_level: int) -> list:
    from bpfmc.ebpf.validate import ValidationError, validate
    from bpfmc.ebpf.verifier import verify
    from bpfmc.ebpf.verifier.cache import VerdictCache

    for p in programs:  # a program that does not even decode is an input error (exit 2), not a verdict
        try:
            validate(p.code, allow_pseudo=True)
        except ValidationError as e:
            raise CliError(f"{p.name}: program refused: {e}") from None
    if log_level >= 2:  # a full trace is asked for: walk again rather than store megabytes
        return [(p, verify(p, maps=maps, privileged=privileged, log_level=log_level)) for p in programs]
    cache = VerdictCache()
    return [(p, cache.verify(p, maps=maps, privileged=privileged, log_level=log_level)) for p in programs]


def _refuse_unverified(args) -> None:
    """``exec`` verifies what it loads first, as the kernel does; ``--no-verify`` skips it."""
    if args.no_verify:
        return
    programs, maps = _programs_to_verify(args)
    for program, verdict in _verify(programs, maps, privileged=True, log_level=1):
        if not verdict.accepted:
            sys.stderr.write(f"bpfctl: the verifier refused {program.name} ({program.prog_type}); "
                             f"--no-verify runs it anyway\n{verdict.log}")
            raise CliError(f"{args.program}: {program.name}: {verdict.error.line}", EXIT_REFUSED)


def cmd_verify(args) -> int:
    programs, maps = _programs_to_verify(args)
    results = _verify(programs, maps, privileged=not args.unprivileged, log_level=args.log_level)
    if args.json:
        doc = [{"program": p.name, "type": p.prog_type, "accepted": v.accepted,
                "error": None if v.error is None else {"pc": v.error.pc, "insn": v.error.insn,
                                                       "message": v.error.message},
                "log": v.log, "stats": v.stats} for p, v in results]
        print(json.dumps({"programs": doc, "accepted": all(v.accepted for _, v in results)}))
    else:
        for p, v in results:
            st = v.stats
            verdict = "accepted" if v.accepted else "rejected"
            print(f"{p.name} ({p.prog_type}): {verdict}; {st.get('insns_processed', 0)} instructions processed, "
                  f"peak {st.get('peak_states', 0)} states, {st.get('time_ms', 0)} ms")
            if not v.accepted or args.log_level >= 2:
                print(v.log, end="" if v.log.endswith("\n") else "\n")
    return EXIT_OK if all(v.accepted for _, v in results) else EXIT_REFUSED


def _uses_pool(args, model) -> bool:
    """The pool runs whenever the user asks for anything multi-core; ``--cpu N`` alone (or a
    one-core model) keeps the single in-process engine, which starts faster."""
    if args.workers is not None or args.steer or args.record or args.replay or args.deterministic:
        return True
    return args.cpu is None and model.cores > 1


def cmd_exec(args) -> int:
    from bpfmc.worker.model import HardwareModel, ModelError

    try:
        model = HardwareModel.load(args.model)
    except ModelError as e:
        raise CliError(str(e)) from None
    if args.cores is not None:
        if args.cores < 1:
            raise CliError("--cores must be at least 1")
        model = model.with_(cores=args.cores)
    if args.repeat < 1:
        raise CliError("--repeat must be at least 1")
    if args.replay and (args.inputs or args.record):
        raise CliError("--replay runs the recorded events: give no --data/--data-file/--record with it")
    _refuse_unverified(args)
    if _uses_pool(args, model):
        return _exec_on_pool(args, model)
    return _exec_in_process(args, model)


def _exec_in_process(args, model) -> int:
    from bpfmc.worker.engine import EventError

    args.cpu = args.cpu or 0
    args.seed = 0 if args.seed is None else args.seed
    if args.cpu < 0:
        raise CliError("--cpu must be at least 0")
    if args.cores is not None:
        if args.cpu >= args.cores:
            raise CliError(f"--cpu {args.cpu} does not exist with --cores {args.cores}")
    elif args.cpu >= model.cores:
        model = model.with_(cores=args.cpu + 1)
    engine, default_input = _make_engine(args, model)
    try:
        _apply_map_updates(engine.map_update, args.map_update)
        try:
            batch = engine.run_batch(_inputs(args, default_input), repeat=args.repeat)
        except (EventError, ValueError) as e:
            raise CliError(str(e)) from None
        runs = batch.runs()
        _print_exec(args, engine, model, runs, batch.totals(), engine.dump_maps() if args.dump_maps else None,
                    None)
        return EXIT_FAULT if batch.faulted.any() else EXIT_OK
    finally:
        engine.close()


def _pool_source(args):
    """(what Machine.load takes, default input, object bytes for the recording's digest)."""
    elf, program, default_input = _read_source(args)
    if elf is not None:
        return elf, b"", elf
    return program, default_input, program.code


def _exec_on_pool(args, model) -> int:
    from bpfmc.ebpf.elf import ElfError
    from bpfmc.ebpf.validate import ValidationError
    from bpfmc.worker.engine import EventError
    from bpfmc.worker.image import LinkError
    from bpfmc.worker.maps import MapError
    from bpfmc.worker.model import HardwareModel, ModelError
    from bpfmc.worker.pool import Machine, PoolError
    from bpfmc.worker.replay import Recorder, Recording, RecordingError, object_digest

    source, default_input, digest_of = _pool_source(args)
    digest = object_digest(digest_of)
    recording = None
    if args.replay:
        try:
            recording = Recording(args.replay)
            head = recording.header
            if head.get("object_sha256") != digest:
                raise CliError(f"{args.replay} was recorded with another program (SHA-256 "
                               f"{head.get('object_sha256', '?')[:16]}..., {args.program} is {digest[:16]}...)")
            model = HardwareModel.from_dict(head["model"], source=args.replay)
        except (RecordingError, ModelError, KeyError) as e:
            raise CliError(f"{args.replay}: {e}") from None
        args.seed, args.deterministic = head.get("seed"), head.get("deterministic", False)
        args.map_update, args.program_name, args.type = head.get("map_updates", []), head.get("program"), \
            head.get("type")
        args.section = None
    if args.cpu is not None and args.steer:
        raise CliError("--cpu sends every event to one core; it cannot be combined with --steer")
    if args.cpu is not None and not 0 <= args.cpu < model.cores:
        raise CliError(f"--cpu {args.cpu} does not exist: the model has {model.cores} cores")
    if args.workers is not None and args.workers < 1:
        raise CliError("--workers must be at least 1")
    steering = args.steer or "rr"
    try:
        machine = Machine(model, workers=args.workers, seed=args.seed, deterministic=args.deterministic)
    except (OSError, ValueError) as e:
        raise CliError(f"cannot start the worker pool: {e}") from None
    recorder = None
    try:
        try:
            h = machine.load(source, args.program_name or args.section, prog_type=args.type)
        except ElfError as e:
            raise CliError(f"{args.program}: {e}") from None
        except ValidationError as e:
            raise CliError(f"{args.program}: program refused: {e}") from None
        except (LinkError, MapError, KeyError, ValueError, PoolError) as e:
            raise CliError(f"{args.program}: {e.args[0] if isinstance(e, KeyError) else e}") from None
        _apply_map_updates(lambda n, k, v: machine.map_update(h, n, k, v), args.map_update)
        engine = machine.program(h)
        if recording is not None:
            batches = list(recording.batches())
        else:
            inputs = [x for x in _inputs(args, default_input) for _ in range(args.repeat)]
            blob = b"".join(inputs)
            lengths = [len(x) for x in inputs]
            cores = [args.cpu] * len(inputs) if args.cpu is not None else steering
            batches = [(blob, lengths, cores)]
        if args.record:
            header = {"object_sha256": digest, "program": args.program_name or args.section, "type": args.type,
                      "model": model.to_dict(), "seed": machine.seed, "deterministic": args.deterministic,
                      "steering": "core" if args.cpu is not None else steering, "workers": machine.nworkers,
                      "map_updates": list(args.map_update or [])}
            try:
                recorder = Recorder(args.record, header)
            except OSError as e:
                raise CliError(f"cannot write {args.record}: {e.strerror}") from None
        results = []
        try:
            for blob, lengths, cores in batches:
                results.append(machine.run(h, (blob, lengths), steering=cores, recorder=recorder))
        except (EventError, ValueError) as e:
            raise CliError(str(e)) from None
        runs = [r for res in results for r in res.runs()]
        faults = sum(int(res.faulted.sum()) for res in results)
        totals = {"runs": len(runs), "faults": faults, "insns": sum(int(r.insns.sum()) for r in results),
                  "cycles": sum(int(r.cycles.sum()) for r in results)}
        stats = machine.stats() if args.stats else None
        if stats is not None:
            stats["programs"] = list(stats["programs"].values())
        maps = machine.map_dump(h) if args.dump_maps else None
        _print_exec(args, engine, model, runs, totals, maps, stats)
        return EXIT_FAULT if faults else EXIT_OK
    finally:
        if recorder is not None:
            recorder.close()
        machine.close()


def _print_exec(args, engine, model, runs, totals, maps, stats) -> None:
    if args.json:
        doc = {"program": engine.program.name, "type": engine.prog_type, "model": model.name,
               "runs": runs, "totals": totals}
        if maps is not None:
            doc["maps"] = maps
        if stats is not None:
            doc["stats"] = stats
        print(json.dumps(doc, indent=2 if args.pretty else None))
        return
    for i, run in enumerate(runs):
        prefix = f"run {i}: " if len(runs) > 1 else ""
        if "core" in run:
            prefix += f"[core {run['core']}] "
        if "error" in run:
            err = run["error"]
            print(f"{prefix}fault at pc {err['pc']} ({err['kind']}): {err['message']}", file=sys.stderr)
        else:
            print(f"{prefix}{run['r0']:#x}")
        for line in run.get("trace", []):
            print(f"{prefix}trace: {line}")
    if maps is not None:
        print(json.dumps(maps, indent=2))
    if args.stats:
        t = totals
        print(f"runs {t['runs']}, faults {t['faults']}, insns {t['insns']}, cycles {t['cycles']} "
              f"(model {model.name}, {model.clock_hz / 1e6:g} MHz: "
              f"{t['cycles'] / model.clock_hz * 1e6:.3f} us)", file=sys.stderr)
        for p in (stats or {}).get("programs", []):
            c = p["cycles"]
            rate = p["model_events_per_s"]
            host = p["host_events_per_s"]
            print(f"program {p['name']}: {p['events']} events, cycles/event mean {c['mean']:.1f} p50 {c['p50']} "
                  f"p99 {c['p99']}; model sustains {rate or 0:,.0f} events/s on {stats['cores']} cores, "
                  f"host ran {host or 0:,.0f} events/s on {stats['workers']} workers", file=sys.stderr)
        for c in (stats or {}).get("per_core", []):
            print(f"core {c['core']} (worker {c['worker']}): {c['events']} events, {c['insns']} insns, "
                  f"{c['cycles']} cycles, busy {c['busy_ms']} ms", file=sys.stderr)


def cmd_conformance(args) -> int:
    from bpfmc.ebpf.asm import AsmError
    from bpfmc.ebpf.conformance import FormatError, case_paths, parse_text
    from bpfmc.ebpf.program import Program
    from bpfmc.worker.engine import Engine

    directory = Path(args.directory)
    if not directory.is_dir():
        raise CliError(f"{directory}: not a directory")
    paths = case_paths(directory)
    if not paths:
        raise CliError(f"{directory}: no .data files")
    passed, failures, skips = 0, [], []
    for path in paths:
        text = _read_text(str(path))
        expects_error = _declares_error(text)
        try:
            case = parse_text(text, name=path.stem, path=path)
        except (AsmError, FormatError) as e:
            if expects_error:
                passed += 1
            else:
                failures.append((path.stem, f"cannot read: {e}"))
            continue
        if case.skip_reason is not None:
            skips.append((path.stem, case.skip_reason))
            continue
        try:
            run = Engine(Program(case.code, name=path.stem)).run(case.mem)
        except ValueError as e:  # refused at load (structure)
            if case.error is not None:
                passed += 1
            else:
                failures.append((path.stem, f"refused at load: {e}"))
            continue
        if case.error is not None and case.result is None:
            if "error" in run:
                passed += 1
            else:
                failures.append((path.stem, f"expected a failure, got r0 = {run['r0']:#x}"))
        elif "error" in run:
            failures.append((path.stem, f"fault at pc {run['error']['pc']}: {run['error']['message']}"))
        elif run["r0"] != case.result:
            failures.append((path.stem, f"r0 = {run['r0']:#x}, expected {case.result:#x}"))
        else:
            passed += 1
    if args.json:
        print(json.dumps({"passed": passed, "failed": len(failures), "skipped": len(skips),
                          "failures": [{"name": n, "message": m} for n, m in failures],
                          "skips": [{"name": n, "reason": r} for n, r in skips]}))
    else:
        for name, message in failures:
            print(f"FAIL {name}: {message}")
        for name, reason in skips:
            print(f"skip {name}: {reason}")
        summary = f"{passed} passed, {len(failures)} failed"
        if skips:
            summary += f", {len(skips)} skipped"
        print(summary)
    return EXIT_FAULT if failures else EXIT_OK


def _declares_error(text: str) -> bool:
    return any(line.split("#", 1)[0].strip().replace(" ", "") == "--error" for line in text.splitlines())


def cmd_asm(args) -> int:
    from bpfmc.ebpf.asm import AsmError, assemble

    try:
        code = assemble(_read_text(args.file))
    except AsmError as e:
        raise CliError(f"{args.file}: {e}") from None
    out = args.output or str(Path(args.file).with_suffix(".bin"))
    try:
        Path(out).write_bytes(code)
    except OSError as e:
        raise CliError(f"cannot write {out}: {e.strerror}") from None
    if args.json:
        print(json.dumps({"output": out, "slots": len(code) // 8}))
    return EXIT_OK


def cmd_disasm(args) -> int:
    from bpfmc.ebpf.disasm import disassemble
    from bpfmc.ebpf.insn import DecodeError

    program, _ = load_program(args.file)
    try:
        text = disassemble(program.code, style=args.style)
    except (DecodeError, ValueError) as e:
        raise CliError(f"{args.file}: {e}") from None
    if args.json:
        print(json.dumps({"program": program.name, "style": args.style, "text": text}))
    else:
        print(text, end="" if text.endswith("\n") else "\n")
    return EXIT_OK


# -- argument parsing --------------------------------------------------------------------------

class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 2 with one line, as argparse does, but ours
        raise CliError(f"{self.prog}: {message}", EXIT_INPUT)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="bpfctl", description="bpfmc: verify and run eBPF programs on emulated cores")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    e = sub.add_parser("exec", help="run a program locally on the engine (no server)")
    e.add_argument("program", help="an ELF object (clang -target bpf), assembly (.s/.asm), raw slots (.bin) "
                                   "or a conformance .data file")
    e.add_argument("--program", dest="program_name", metavar="NAME", help="which program of the object")
    e.add_argument("--section", metavar="SEC", help="which program of the object, by section name")
    e.add_argument("--type", choices=("raw", "xdp", "sched_cls", "tc", "socket_filter"),
                   help="program type (default: from the section name; raw for non-ELF input)")
    e.add_argument("--cpu", type=int, default=None,
                   help="emulated core to run every event on (alone: one in-process engine; default 0)")
    e.add_argument("--map-update", action="append", metavar="MAP:KEYHEX:VALUEHEX",
                   help="update a map before the first input; repeat, applied in order")
    e.add_argument("--dump-maps", action="store_true", help="add the final contents of every map")
    e.add_argument("--data", "--mem", dest="inputs", action=_InputAction, metavar="HEX",
                   help="an input, as hex bytes; repeat for several runs")
    e.add_argument("--data-file", dest="inputs", action=_InputAction, metavar="FILE",
                   help="an input read from a file; repeat for several runs")
    e.add_argument("--model", default="generic", help="hardware model preset or TOML file (default: generic)")
    e.add_argument("--cores", type=int, default=None,
                   help="emulated cores (default: the model's); more than one runs on the worker pool")
    e.add_argument("--workers", type=int, default=None,
                   help="host worker processes of the pool (default: usable host CPUs, at most --cores)")
    e.add_argument("--steer", choices=("rr", "rss"), default=None,
                   help="how events pick a core: round-robin (default) or a Toeplitz RSS hash of the flow")
    e.add_argument("--deterministic", action="store_true",
                   help="ktime reads each core's virtual clock and the seed defaults to 0: runs reproduce")
    e.add_argument("--record", metavar="FILE", help="write the events, their cores and the seed to FILE")
    e.add_argument("--replay", metavar="FILE",
                   help="run the events of a recording on the cores they ran on (its seed, model and mode)")
    e.add_argument("--repeat", type=int, default=1, help="run each input N times")
    e.add_argument("--seed", type=int, default=None,
                   help="seed of the per-core random streams (default 0 in process and with --deterministic, "
                        "else random)")
    e.add_argument("--no-verify", action="store_true",
                   help="run without verifying first (for experiments: the engine's bounds checks still hold)")
    e.add_argument("--stats", action="store_true",
                   help="totals and modelled time on stderr; on the pool also per-core and per-program "
                        "figures (and a \"stats\" object with --json)")
    e.add_argument("--json", action="store_true", help="print the JSON result shape")
    e.add_argument("--pretty", action="store_true", help="indent the JSON")
    e.set_defaults(func=cmd_exec)

    v = sub.add_parser("verify", help="verify a program as the kernel would before loading it")
    v.add_argument("program", help="an ELF object, assembly (.s/.asm), a .data file, or raw slots (.bin, "
                                   "with --type)")
    v.add_argument("--program", dest="program_name", metavar="NAME", help="only this program of the object")
    v.add_argument("--section", metavar="SEC", help="only the program of this section")
    v.add_argument("--type", choices=("raw", "xdp", "sched_cls", "tc", "socket_filter"),
                   help="program type (default: from the section name; raw for assembly)")
    v.add_argument("--log-level", type=int, choices=(0, 1, 2), default=1,
                   help="0: verdict only; 1: the cause and the path to it (default); 2: every instruction's state")
    v.add_argument("--unprivileged", action="store_true",
                   help="the stricter rules for unprivileged loads (no pointer leaks, no uninitialised stack reads, "
                        "no loops)")
    v.add_argument("--json", action="store_true")
    v.set_defaults(func=cmd_verify, only_chosen=True, raw_needs_type=True)

    c = sub.add_parser("conformance", help="run a bpf_conformance directory of .data files")
    c.add_argument("directory")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=cmd_conformance)

    a = sub.add_parser("asm", help="assemble to raw little-endian slots")
    a.add_argument("file")
    a.add_argument("-o", "--output", help="output file (default: FILE with .bin suffix)")
    a.add_argument("--json", action="store_true")
    a.set_defaults(func=cmd_asm)

    d = sub.add_parser("disasm", help="disassemble raw slots (or assembly, or a .data file)")
    d.add_argument("file")
    d.add_argument("--style", choices=("conformance", "llvm"), default="conformance",
                   help="conformance dialect (round-trips through asm) or an llvm-objdump-like listing")
    d.add_argument("--json", action="store_true")
    d.set_defaults(func=cmd_disasm)
    return p


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except CliError as e:
        print(f"bpfctl: error: {e}" if not str(e).startswith("bpfctl") else str(e), file=sys.stderr)
        return e.code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return EXIT_OK
    except Exception as e:  # a bug: one line for the user, the traceback on request
        if os.environ.get("BPFMC_DEBUG"):
            raise
        print(f"bpfctl: internal error: {type(e).__name__}: {e} (set BPFMC_DEBUG=1 for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
