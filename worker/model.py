"""The hardware model: what the emulated target is (cores, clock, limits) and what each
instruction costs in cycles. A model is data -- a TOML file -- so users can describe their own
target; the presets ship in ``worker/models/``.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

from bpfmc.ebpf import maps as mt
from bpfmc.ebpf import opcodes as op
from bpfmc.ebpf.insn import Insn

# Cost classes, from the most specific to the most general; `default` covers the rest.
COST_CLASSES = (
    "alu", "mul", "div", "shift", "byteswap", "load", "store", "store_b", "store_h", "store_w",
    "store_dw", "atomic", "lddw", "jump_taken", "jump_not_taken", "call", "exit", "helper",
)
_STORE_SIZE_CLASS = {op.BPF_B: "store_b", op.BPF_H: "store_h", op.BPF_W: "store_w", op.BPF_DW: "store_dw"}


class ModelError(ValueError):
    """A hardware model file or preset is missing or malformed."""


@dataclass(frozen=True)
class HardwareModel:
    name: str = "generic"
    description: str = ""
    cores: int = 1
    clock_hz: int = 1_000_000_000
    insn_budget: int = 1_000_000
    stack_size: int = 512
    call_depth: int = 8
    max_insns: int = 1_000_000
    cycles: dict[str, int] = field(default_factory=lambda: {"default": 1})
    helper_cycles: dict[int, int] = field(default_factory=dict)
    # What the target allows (offload targets are far narrower than the kernel). The neutral
    # values -- no types listed, 0, None -- mean "no limit", so existing models keep working.
    map_types: tuple[str, ...] = ()       # allowed map type names; empty: all
    max_map_entry_bytes: int = 0          # bound on round_up(key, 8) + round_up(value, 8); 0: none
    max_maps: int = 0                     # maps a program set may use; 0: none
    helpers: tuple[int, ...] | None = None  # allowed helper ids; None: all

    def __post_init__(self) -> None:
        for name in ("cores", "clock_hz", "insn_budget", "stack_size", "call_depth", "max_insns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ModelError(f"model {self.name!r}: {name} must be a positive integer, got {value!r}")
        if self.stack_size % 8:
            raise ModelError(f"model {self.name!r}: stack_size must be a multiple of 8")
        unknown = set(self.cycles) - set(COST_CLASSES) - {"default"}
        if unknown:
            raise ModelError(f"model {self.name!r}: unknown cycle classes {sorted(unknown)} "
                             f"(known: default, {', '.join(COST_CLASSES)})")
        for k, v in list(self.cycles.items()) + list(self.helper_cycles.items()):
            if not isinstance(v, int) or v < 0:
                raise ModelError(f"model {self.name!r}: cycle cost of {k} must be a non-negative integer")
        self._check_limits_fields()

    def _check_limits_fields(self) -> None:
        # Normalised here rather than in from_dict so that models built in Python (or by
        # `with_`) are held to the same rules and compare equal to their TOML twins.
        for name in ("max_map_entry_bytes", "max_maps"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ModelError(f"model {self.name!r}: {name} must be a non-negative integer "
                                 f"(0 = no limit), got {value!r}")
        types = self.map_types
        if isinstance(types, str) or not isinstance(types, (list, tuple)):
            raise ModelError(f"model {self.name!r}: map_types must be a list of map type names, got {types!r}")
        canonical = []
        for t in types:
            if not isinstance(t, str):
                raise ModelError(f"model {self.name!r}: map_types entries must be names, got {t!r}")
            try:
                canonical.append(mt.MAP_TYPE_NAMES[mt.map_type_id(t)])
            except ValueError:
                raise ModelError(f"model {self.name!r}: unknown map type {t!r} in map_types "
                                 f"(known: {', '.join(mt.MAP_TYPES)})") from None
        object.__setattr__(self, "map_types", tuple(dict.fromkeys(canonical)))
        if self.helpers is not None:
            if isinstance(self.helpers, str) or not isinstance(self.helpers, (list, tuple)):
                raise ModelError(f"model {self.name!r}: helpers must be a list of helper ids, got {self.helpers!r}")
            for h in self.helpers:
                if not isinstance(h, int) or isinstance(h, bool) or h < 1:
                    raise ModelError(f"model {self.name!r}: helpers entries must be positive helper ids, got {h!r}")
            object.__setattr__(self, "helpers", tuple(sorted(set(self.helpers))))

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, *, source: str = "<dict>") -> HardwareModel:
        data = dict(data)
        cycles = dict(data.pop("cycles", {}) or {})
        helpers = {int(k): v for k, v in (data.pop("helper_cycles", {}) or {}).items()}
        known = {f for f in cls.__dataclass_fields__ if f not in ("cycles", "helper_cycles")}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"{source}: unknown model keys {sorted(unknown)}")
        cycles.setdefault("default", 1)
        return cls(cycles=cycles, helper_cycles=helpers, **data)

    @classmethod
    def from_file(cls, path: str | Path) -> HardwareModel:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as e:
            raise ModelError(f"cannot read model file {path}: {e.strerror}") from None
        except tomllib.TOMLDecodeError as e:
            raise ModelError(f"model file {path}: {e}") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def preset(cls, name: str) -> HardwareModel:
        res = resources.files("bpfmc.worker.models").joinpath(f"{name}.toml")
        if not res.is_file():
            raise ModelError(f"unknown model preset {name!r} (presets: {', '.join(preset_names())})")
        return cls.from_dict(tomllib.loads(res.read_text()), source=f"preset {name}")

    @classmethod
    def load(cls, spec: str | Path | HardwareModel) -> HardwareModel:
        """A preset name, a path to a TOML file, or a model already built."""
        if isinstance(spec, HardwareModel):
            return spec
        spec = str(spec)
        if spec.endswith(".toml") or "/" in spec:
            return cls.from_file(spec)
        return cls.preset(spec)

    def with_(self, **changes) -> HardwareModel:
        return replace(self, **changes)

    # -- limits -----------------------------------------------------------------------------
    def check_limits(self, maps, code: bytes, helper_names: dict[int, str] | None = None) -> None:
        """Refuse, with ``ValueError`` naming the limit, linked maps (objects with ``name``,
        ``map_type``, ``key_size``, ``value_size``) or linked code the target does not allow.
        Every map counts, the implicit .data/.bss/.rodata ones too: they are ARRAY maps, which is
        what libbpf creates for them, so they meet the same type and entry-size rules."""
        maps = list(maps)
        if self.max_maps and len(maps) > self.max_maps:
            raise ValueError(f"model {self.name!r} allows at most {self.max_maps} maps; "
                             f"the programs use {len(maps)}")
        for d in maps:
            kind = mt.MAP_TYPE_NAMES.get(d.map_type, f"type {d.map_type}")
            if self.map_types and kind not in self.map_types:
                raise ValueError(f"model {self.name!r} allows only {', '.join(self.map_types)} maps: "
                                 f"map {d.name!r} is {kind}")
            # The nfp driver's rule (offload.c): key and value each take whole 8-byte words.
            need = _round8(d.key_size) + _round8(d.value_size)
            if self.max_map_entry_bytes and need > self.max_map_entry_bytes:
                raise ValueError(f"model {self.name!r} allows at most {self.max_map_entry_bytes} bytes per entry "
                                 f"(round_up(key, 8) + round_up(value, 8)); map {d.name!r} needs {need}")
        if self.helpers is None:
            return
        allowed = set(self.helpers)
        for pc in range(0, len(code) - 7, 8):
            # Only plain helper calls (src 0): bpf-to-bpf calls and kfuncs are not helpers, and the
            # second slot of an lddw has opcode 0, so a slot-by-slot scan cannot misread it.
            if code[pc] == op.CALL and code[pc + 1] >> 4 == 0:
                hid = int.from_bytes(code[pc + 4:pc + 8], "little", signed=True)
                if hid not in allowed:
                    name = (helper_names or {}).get(hid)
                    shown = f"{hid} ({name})" if name else str(hid)
                    raise ValueError(f"model {self.name!r} allows only helpers "
                                     f"{', '.join(map(str, self.helpers))}: pc {pc // 8} calls helper {shown}")

    # -- costs ------------------------------------------------------------------------------
    def cost(self, name: str) -> int:
        return self.cycles.get(name, self.cycles["default"])

    def helper_cost(self, helper_id: int) -> int:
        return self.helper_cycles.get(helper_id, self.cost("helper"))

    def insn_class(self, insn: Insn) -> str:
        """The cost class of one instruction (jumps: the not-taken cost; taken adds the rest)."""
        code, cls = insn.opcode, insn.opcode & 0x07
        if cls in (op.BPF_ALU, op.BPF_ALU64):
            alu = code & 0xF0
            if alu == op.BPF_MUL:
                return "mul"
            if alu in (op.BPF_DIV, op.BPF_MOD):
                return "div"
            if alu in (op.BPF_LSH, op.BPF_RSH, op.BPF_ARSH):
                return "shift"
            if alu == op.BPF_END:
                return "byteswap"
            return "alu"
        if cls == op.BPF_LD:
            return "lddw" if code == op.LDDW else "load"
        if cls == op.BPF_LDX:
            return "load"
        if cls in (op.BPF_ST, op.BPF_STX):
            if code & 0xE0 == op.BPF_ATOMIC:
                return "atomic"
            return _STORE_SIZE_CLASS[code & 0x18]
        jop = code & 0xF0
        if jop == op.BPF_EXIT:
            return "exit"
        if jop == op.BPF_CALL:
            return "call" if insn.src == op.BPF_PSEUDO_CALL else "helper"
        if jop == op.BPF_JA:
            return "jump_taken"
        return "jump_not_taken"

    def insn_cycles(self, insn: Insn) -> int:
        klass = self.insn_class(insn)
        if klass == "helper" and insn.opcode == op.CALL:
            return self.helper_cost(insn.imm)
        if klass.startswith("store_") and klass not in self.cycles:
            return self.cost("store")
        return self.cost(klass)

    @property
    def taken_extra(self) -> int:
        """Cycles a taken conditional jump costs beyond a not-taken one."""
        return self.cost("jump_taken") - self.cost("jump_not_taken")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "description": self.description, "cores": self.cores,
            "clock_hz": self.clock_hz, "insn_budget": self.insn_budget, "stack_size": self.stack_size,
            "call_depth": self.call_depth, "max_insns": self.max_insns, "cycles": dict(self.cycles),
            "helper_cycles": {str(k): v for k, v in self.helper_cycles.items()},
            "map_types": list(self.map_types), "max_map_entry_bytes": self.max_map_entry_bytes,
            "max_maps": self.max_maps, "helpers": None if self.helpers is None else list(self.helpers),
        }


def _round8(n: int) -> int:
    return (n + 7) & ~7


def preset_names() -> list[str]:
    root = resources.files("bpfmc.worker.models")
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".toml"))
