"""Scan specs: a base config and the blocks that vary it, expanded into validated points.

A spec is a TOML file (or the same data as a dict)::

    description = "ReLaX-Net against RNN and DNN"   # optional
    base = "exp.toml"        # a config file, relative to the spec; or a [base] table of sections
    seeds = [0, 1, 2]        # training.seed values: every point once per seed
    save_weights = true      # optional: keep each point's weights beside its result

    [grid]                   # the cartesian product of the axes
    "network.banks" = [1, 2, 4]
    "training.lr" = [0.001, 0.002]

    [zip]                    # axes varied together, one value of each per row (equal lengths)
    "network.hidden" = [32, 64]
    "training.epochs" = [10, 20]

    [[points]]               # explicit override tables
    "network.banks" = 1

    [budget]                 # the equal-budget family: L_W (N^2 + N) = params
    params = [8320, 33280]
    tolerance = 0.1          # kept when |L_W (N^2 + N) - params| <= tolerance * params
    banks = [1, 2, 4, 8]     # L_W values
    steps = [8]              # L_T values (L_W > L_T is skipped: no cyclic schedule)

Every block is optional. The points are the product of the blocks, outermost first: budget family
member x explicit point x zip row x grid combination x seed. A field may vary in one block only.
Fields are dotted config keys; ``network.banks = [...]`` or ``hardware.switch.rise_time = [...]``
without quotes (TOML sub-tables) mean the same. Each point is the base with its fields applied,
validated as ``relaxsim run`` validates a config, and named by :func:`config_id`, the hash of its
resolved config with every quantity in SI units (``"3.5 ps"``, ``3.5e-12`` and ``"3500 fs"`` are
one point).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import tomli_w

from relaxsim.config import (
    DEVICE_KINDS,
    QUANTITY_KINDS,
    SCHEMA,
    TIME_KINDS,
    Config,
    anchor_overrides,
    anchor_presets,
    apply_overrides,
    default_dict,
    key_hint,
    network_kind,
    quantity_of,
    self_contained,
    validate,
)
from relaxsim.errors import ConfigError, RelaxsimError
from relaxsim.io import read_toml
from relaxsim.registry import closest

KEYS = ("description", "base", "seeds", "grid", "zip", "points", "budget", "save_weights")
BUDGET_KEYS = ("params", "tolerance", "banks", "steps")
DEFAULT_TOLERANCE = 0.1
ID_CHARS = 16  # hex characters of the sha256 kept in a point's id




def config_id(cfg: Config) -> str:
    """The first 16 hex characters of the sha256 of the canonical JSON of
    :func:`canonical_config` (every quantity in SI units, so that ``"3.5 ps"``, ``3.5e-12`` and
    ``"3500 fs"`` give one id)."""
    return _digest(canonical_config(cfg))


def legacy_config_id(cfg: Config) -> str:
    """The id of earlier versions: the hash of ``cfg.to_dict()``, quantities as written. Stores
    written by them name their points so (:meth:`relaxsim.scans.store.Store.migrate` renames them).
    Keys added since (:data:`LATER_KEYS`) are left out where they hold their defaults, as those
    versions' configs had no such key."""
    data = cfg.to_dict()
    defaults = default_dict()
    for section, key in LATER_KEYS:
        if data.get(section, {}).get(key) == defaults[section][key]:
            data[section] = {k: v for k, v in data[section].items() if k != key}
    return _digest(data)


# Config keys added after point ids read quantities in SI units (0.3.0: the signal physics).
LATER_KEYS = (("hardware", "signal"), ("hardware", "leak_phase"), ("hardware", "switch_topology"),
              ("hardware", "mux"), ("hardware", "laser_power"), ("hardware", "coupling_loss"),
              ("hardware", "input_bits"), ("hardware", "readout_bits"), ("network", "init"),
              ("training", "clip_norm"), ("training", "schedule"), ("training", "warmup"),
              ("training", "weight_decay"), ("task", "chunk"), ("task", "shuffle_seq"),
              ("task", "label"), ("hardware", "input_layer"), ("hardware", "utilisation"),
              ("hardware", "io"), ("hardware", "digital"))


def _digest(data: Mapping) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:ID_CHARS]


def field_dimension(name: str) -> str | None:
    """The dimension of the config field ``name`` (``"time"`` for ``hardware.clock`` and
    ``hardware.switch.rise_time``, ``"energy"`` for ``hardware.switch.energy``), or None when it
    is not a quantity (a count, a name, a table, an unknown field)."""
    section, _, rest = name.partition(".")
    key, _, sub = rest.partition(".")
    spec = SCHEMA.get(section, {}).get(key)
    if spec is None:
        return None
    if spec.kind in TIME_KINDS:
        return None if sub else "time"
    if spec.kind == "device" and sub and "." not in sub and section == "hardware":
        from relaxsim.devices import RECORDS

        found = RECORDS[DEVICE_KINDS[key]].specs().get(sub)
        return None if found is None else found.metadata["dimension"]
    return None


def si_value(name: str, value: Any) -> Any:
    """``value`` of the config field ``name`` in canonical form: a quantity as its SI float
    (``"3.5 ps"`` -> ``3.5e-12``), a device table with its quantities so, anything else (a name,
    ``"auto"``, a count) as given."""
    from relaxsim.devices.units import parse_quantity

    section, _, rest = name.partition(".")
    spec = SCHEMA.get(section, {}).get(rest)
    if spec is not None and spec.kind == "device" and isinstance(value, Mapping):
        return {k: si_value(f"{name}.{k}", v) for k, v in value.items()}
    if spec is not None and spec.kind in QUANTITY_KINDS:  # power (W), loss (dB), bits
        try:
            number = quantity_of(name, spec.kind, value)
        except RelaxsimError:
            return value
        return "inf" if number == float("inf") else number
    if name.endswith(".response_file") and isinstance(value, str) and value:
        return _file_digest(value)  # the step response's content, not its path
    dim = field_dimension(name)
    if dim is None or isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return value
    try:
        return parse_quantity(value, dim, name)
    except RelaxsimError:  # "auto" (the clock), or a value the config's validation reports
        return value


def _file_digest(path: str) -> str:
    """``sha256:<hex>`` of a file's bytes (the path as given when it cannot be read: the
    config's validation reports that)."""
    try:
        with open(os.path.expanduser(path), "rb") as fh:
            return "sha256:" + hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return path


def canonical_config(cfg: Config | Mapping) -> dict[str, dict[str, Any]]:
    """``cfg`` as a plain nested dict with every quantity (times, device fields) its SI float;
    what :func:`config_id` hashes. A config keeps the values as the user wrote them."""
    data = cfg.to_dict() if isinstance(cfg, Config) else copy.deepcopy(dict(cfg))
    defaults = None
    for section, key in UNHASHED_AT_DEFAULT:
        keys = data.get(section)
        if isinstance(keys, Mapping) and key in keys:
            defaults = defaults or default_dict()
            if keys[key] == defaults[section][key]:
                data[section] = {k: v for k, v in keys.items() if k != key}
    return {section: ({key: si_value(f"{section}.{key}", value) for key, value in keys.items()}
                      if isinstance(keys, Mapping) else keys)
            for section, keys in data.items()}


# Config keys added since 0.3.0 (the energy accounting): a point's id leaves them out where
# they hold their defaults, so that a store written before keeps its ids (its points ran as the
# defaults now describe; their results lack only the fields added since).
UNHASHED_AT_DEFAULT = (("hardware", "input_layer"), ("hardware", "utilisation"),
                       ("hardware", "io"), ("hardware", "digital"))


@dataclass(frozen=True, eq=False)
class Point:
    """One configuration of a scan: its varied fields, labels (budget family), config and id."""

    index: int
    fields: dict[str, Any]
    labels: dict[str, Any]
    config: Config
    id: str

    def describe(self) -> str:
        """``budget = 8320, network.banks = 2`` (labels, then fields)."""
        return describe(self.labels, self.fields)


def describe(labels: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    items = {**labels, **fields}
    return ", ".join(f"{k} = {toml_value(v)}" for k, v in items.items()) or "the base config"


@dataclass(frozen=True, eq=False)
class ScanSpec:
    """A validated scan spec; :meth:`expand` gives its points."""

    base: dict[str, Any] = field(default_factory=dict)
    grid: dict[str, list] = field(default_factory=dict)
    zip: dict[str, list] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    budget: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    save_weights: bool = False  # the store keeps points/<id>.weights.npz beside each result
    source: str = "scan spec"  # where it came from, for messages

    def to_dict(self) -> dict[str, Any]:
        """The self-contained spec (the base inlined, fields dotted), as a scan store keeps it."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        for name in ("seeds", "base", "grid", "zip", "points", "budget"):
            if getattr(self, name):
                out[name] = copy.deepcopy(getattr(self, name))
        if self.save_weights:
            out["save_weights"] = True
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())

    def expand(self) -> list[Point]:
        """The points in order; a point whose config repeats an earlier one's is dropped."""
        return expand(self)[0]


def load_spec(spec: str | Path | Mapping | ScanSpec) -> ScanSpec:
    """A :class:`ScanSpec` from a TOML file, a dict of the same shape, or a ScanSpec."""
    if isinstance(spec, ScanSpec):
        return spec
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        return parse_spec(read_toml(path, "scan spec"), source=str(path), root=path.parent)
    if isinstance(spec, Mapping):
        return parse_spec(spec)
    raise TypeError(f"scan spec must be a path, a dict or a ScanSpec (got {type(spec).__name__})")


def parse_spec(data: Mapping[str, Any], source: str = "scan spec",
               root: Path | None = None) -> ScanSpec:
    """Check the shape of every block of ``data``; a relative ``base`` is read from ``root``."""
    def fail(msg: str):
        raise RelaxsimError(f"{source}: {msg}")

    for key in data:
        if key not in KEYS:
            fail(f"unknown key {key!r}; known: {', '.join(KEYS)}" + closest(key, KEYS))
    description = data.get("description", "")
    if not isinstance(description, str):
        fail(f"description: must be a string (got {description!r})")

    save_weights = data.get("save_weights", False)
    if not isinstance(save_weights, bool):
        fail(f"save_weights: must be true or false (got {toml_value(save_weights)})")

    # Device preset files are read where the file that names them is: a base file's from its
    # directory, the spec's (inline base, grid, zip, points) from the spec's (the current
    # directory for a spec given as a dict), as a config file's are.
    here = Path.cwd() if root is None else root
    base = read_base(data.get("base", {}), root, source, fail)

    grid = _axes(data, "grid", fail)
    zipped = _axes(data, "zip", fail)
    if zipped and len({len(v) for v in zipped.values()}) > 1:
        fail("zip: axes must have equal lengths ("
             + ", ".join(f"{k}: {len(v)}" for k, v in zipped.items()) + ")")

    points = data.get("points", [])
    if not isinstance(points, list) or not all(isinstance(p, Mapping) for p in points):
        fail("points: must be a list of tables ([[points]] in TOML)")
    if "points" in data and not points:
        fail("points: empty list; give at least one [[points]] table or leave points out")
    points = [flatten_fields(p) for p in points]

    seeds = data.get("seeds", [])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        fail(f"seeds: must be a list of integers >= 0 (got {toml_value(seeds)})")
    if "seeds" in data and not seeds:
        fail("seeds: empty list; give at least one seed or leave seeds out")

    budget = _budget(data.get("budget"), fail) if "budget" in data else {}

    blocks = {"grid": list(grid), "zip": list(zipped),
              "points": list(dict.fromkeys(k for p in points for k in p)),
              "seeds": ["training.seed"] if seeds else [],
              "budget": ["network.hidden", "network.banks", "network.steps"] if budget else []}
    owner: dict[str, str] = {}
    for block, fields in blocks.items():
        for name in fields:
            check_field(name, block, source)
            for other, where in owner.items():
                if where != block and (name == other or name.startswith(other + ".")
                                       or other.startswith(name + ".")):
                    fail(f"{name}: set by both {where} and {block}; a field may vary in one "
                         "block only")
            owner[name] = block
    grid, zipped = ({name: [anchor_overrides({name: v}, here)[name] for v in values]
                     for name, values in axes.items()} for axes in (grid, zipped))
    points = [anchor_overrides(p, here) for p in points]
    return ScanSpec(base=base, grid=grid, zip=zipped, points=points, seeds=seeds, budget=budget,
                    description=description, save_weights=save_weights, source=source)


def flatten_fields(table: Mapping[str, Any], prefix: str = "", deep: bool = False) -> dict[str, Any]:
    """Nested tables to dotted keys, stopping at config keys (a device key keeps its table),
    or with ``deep`` at values that are not tables (an axis is a list at any depth:
    ``hardware.switch.rise_time = [...]`` unquoted is ``"hardware.switch.rise_time"``)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        section, _, rest = name.partition(".")
        is_key = rest and "." not in rest and rest in SCHEMA.get(section, {}) and not deep
        if isinstance(value, Mapping) and not is_key:
            out.update(flatten_fields(value, name + ".", deep))
        else:
            out[name] = value
    return out


def _axes(data: Mapping[str, Any], block: str, fail) -> dict[str, list]:
    if block not in data:
        return {}
    table = data[block]
    if not isinstance(table, Mapping):
        fail(f"{block}: must be a table of field = [values]")
    axes = flatten_fields(table, deep=True)
    if not axes:
        fail(f"{block}: no axes (an empty [{block}] table); give at least one field = [values] "
             f"or leave [{block}] out")
    for name, values in axes.items():
        if not isinstance(values, list):
            fail(f"{block}: {name}: must be a list of values (got {toml_value(values)})")
        if not values:
            fail(f"{block}: {name}: empty list; an axis needs at least one value")
    return axes


def read_base(base: Any, root: Path | None, source: str, fail) -> dict:
    """A spec's ``base``: a config file's name (read relative to ``root``, the spec's directory)
    or a table of config sections, its device preset files anchored where the file that names
    them is (a base file's directory, else ``root`` or the current directory); unknown
    sections and keys reported with the closest name. ``fail(message)`` reports a bad base."""
    here = Path.cwd() if root is None else root
    if isinstance(base, str):
        path = Path(base) if root is None or Path(base).is_absolute() else root / base
        base = anchor_presets(read_toml(path, "base config"), path.parent, fallback=Path.cwd())
    elif isinstance(base, Mapping):
        base = anchor_presets(copy.deepcopy(dict(base)), here)
    else:
        fail(f"base: must be a config file name or a table of config sections (got {base!r})")
    base = copy.deepcopy(dict(base))
    for name in flatten_fields(base):
        if "." in name:  # a section that is not a table is reported by the config's validation
            check_field(name, "base", source)
    return base


def check_field(name: str, block: str, source: str) -> None:
    """Unknown sections and keys, reported as the config reports them, with the closest name."""
    section, _, rest = name.partition(".")
    key = rest.split(".")[0]
    if section in SCHEMA and not rest:
        raise RelaxsimError(f"{source}: {block}: {name}: a field is section.key "
                            f"(e.g. {section}.{next(iter(SCHEMA[section]))})")
    if section not in SCHEMA:
        problem = ConfigError(section, "unknown section", hint=_hint(section, SCHEMA))
    elif not key or key not in SCHEMA[section] or (
            "." in rest and SCHEMA[section][key].kind != "device"):
        problem = ConfigError(name, "unknown key", hint=key_hint(section, rest))
    else:
        return
    raise RelaxsimError(f"{source}: {block}: {problem}")


def _hint(name: str, choices) -> str:
    return closest(name, choices).removeprefix("; ") or f"known: {', '.join(choices)}"


def _budget(table: Any, fail) -> dict[str, Any]:
    if not isinstance(table, Mapping):
        fail("budget: must be a table with params, banks, steps and tolerance")
    for key in table:
        if key not in BUDGET_KEYS:
            fail(f"budget.{key}: unknown key; known: {', '.join(BUDGET_KEYS)}"
                 + closest(key, BUDGET_KEYS))
    out: dict[str, Any] = {}
    for key in ("params", "banks", "steps"):
        if key not in table:
            fail(f"budget.{key}: is missing")
        values = table[key]
        values = [values] if isinstance(values, int) and not isinstance(values, bool) else values
        if (not isinstance(values, list) or not values or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values)):
            fail(f"budget.{key}: must be a non-empty list of integers >= 1 "
                 f"(got {toml_value(table[key])})")
        out[key] = values
    tol = table.get("tolerance", DEFAULT_TOLERANCE)
    if isinstance(tol, bool) or not isinstance(tol, (int, float)) or not 0 <= tol < 1:
        fail(f"budget.tolerance: must be a number in [0, 1) (got {toml_value(tol)})")
    out["tolerance"] = float(tol)
    return out


def hidden_for(params: int, banks: int) -> int:
    """The width N >= 1 whose bank parameters ``banks (N^2 + N)`` come closest to ``params``."""
    root = (-1.0 + math.sqrt(1.0 + 4.0 * params / banks)) / 2.0
    candidates = {max(1, math.floor(root)), max(1, math.ceil(root))}
    return min(sorted(candidates), key=lambda n: abs(banks * (n * n + n) - params))


def budget_family(budget: Mapping[str, Any]) -> list[tuple[dict, dict]]:
    """``(fields, labels)`` of every (N, L_W, L_T) whose bank parameters are within the tolerance
    of a budget; a budget that no combination reaches is an error."""
    tol = budget["tolerance"]
    family = []
    for params in budget["params"]:
        found, nearest = [], None
        for steps in budget["steps"]:
            for banks in budget["banks"]:
                if banks > steps:  # the cyclic schedule uses every bank: L_W <= L_T
                    continue
                hidden = hidden_for(params, banks)
                got = banks * (hidden * hidden + hidden)
                off = abs(got - params) / params
                if nearest is None or off < nearest[0]:
                    nearest = (off, banks, hidden, got)
                if off <= tol:
                    found.append(({"network.hidden": hidden, "network.banks": banks,
                                   "network.steps": steps},
                                  {"budget": params, "kind": network_kind(banks, steps)}))
        if nearest is None:
            raise RelaxsimError(
                f"budget: every L_W in budget.banks {budget['banks']} exceeds every L_T in "
                f"budget.steps {budget['steps']}; a cyclic schedule needs L_W <= L_T")
        if not found:
            off, banks, hidden, got = nearest
            raise RelaxsimError(
                f"budget.params = {params}: no (N, L_W, L_T) reaches it within tolerance "
                f"{tol:g} (closest: L_W = {banks}, N = {hidden} gives {got:,} bank parameters, "
                f"{off:.0%} off); raise budget.tolerance or change budget.banks")
        family.extend(found)
    return family


def expand(spec: ScanSpec) -> tuple[list[Point], int]:
    """The points of ``spec`` in order, each validated, and the number of duplicates dropped."""
    blocks: list[list[tuple[dict, dict]]] = []
    if spec.budget:
        try:
            blocks.append(budget_family(spec.budget))
        except RelaxsimError as exc:
            raise RelaxsimError(f"{spec.source}: {exc}") from None
    if spec.points:
        blocks.append([(dict(p), {}) for p in spec.points])
    if spec.zip:
        names = list(spec.zip)
        blocks.append([(dict(zip(names, row)), {}) for row in zip(*spec.zip.values())])
    if spec.grid:
        names = list(spec.grid)
        blocks.append([(dict(zip(names, combo)), {})
                       for combo in itertools.product(*spec.grid.values())])
    if spec.seeds:
        blocks.append([({"training.seed": s}, {}) for s in spec.seeds])
    points: list[Point] = []
    seen: set[str] = set()
    duplicates = 0
    for combo in itertools.product(*blocks):
        fields = {k: v for f, _ in combo for k, v in f.items()}
        labels = {k: v for _, lab in combo for k, v in lab.items()}
        try:
            cfg = self_contained(validate(apply_overrides(copy.deepcopy(spec.base),
                                                          copy.deepcopy(fields))))
        except RelaxsimError as exc:
            where = f"point {describe(labels, fields)}" if fields else "base"
            raise RelaxsimError(f"{spec.source}: {where}: {exc}") from None
        pid = config_id(cfg)
        if pid in seen:
            duplicates += 1
            continue
        seen.add(pid)
        points.append(Point(len(points), fields, labels, cfg, pid))
    return points, duplicates


def toml_value(value: Any) -> str:
    """A value as written in TOML (strings quoted, booleans lower case)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return str(value)
