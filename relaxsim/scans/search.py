"""Design-space search: an Optuna study over config fields, its trials run as scan points.

A search spec is a TOML file (or the same data as a dict)::

    description = "energy against accuracy"     # optional
    base = "exp.toml"            # a config file, relative to the spec; or a [base] table

    [search]
    objectives = ["test_accuracy:max", "hardware.energy_per_inference_j:min"]
    constraints = ["test_accuracy >= 0.9", "hardware.latency_s <= 1 ns"]
    trials = 100                 # the study's size: trials asked in all, over every resume
    seed = 0
    sampler = "nsga2"            # or "tpe"

    [search.space]
    "hardware.switch.rise_time" = { low = "1 ps", high = "1 ns", log = true }   # continuous
    "network.banks" = { low = 1, high = 4 }                                      # integer
    "hardware.weights.preset" = ["thermo_optic", "pcm"]                          # categorical

Each trial is the base with the fields the sampler chose, validated as ``relaxsim run`` validates
a config and named by :func:`relaxsim.scans.spec.config_id`; its record is kept in the output
directory's :class:`~relaxsim.scans.store.Store` exactly as a scan keeps a point's, so a trial
whose config an earlier trial had reuses the stored result. The study itself lives in a journal
file (``study.journal``) beside the points: a driver killed at any moment resumes the same study.
A trial that the killed driver had asked but not told (state RUNNING in the journal) is asked
again under its own number on resume: its config is evaluated (or read from the store, when its
result was stored before the kill) and told; one whose fields were not all chosen yet is told
as failed. No finished trial is lost, and none runs twice.
"""

from __future__ import annotations

import copy
import json
import math
import re
import sys
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

import tomli_w

from relaxsim.config import (
    QUANTITY_KINDS,
    SCHEMA,
    Config,
    apply_overrides,
    key_hint,
    quantity_of,
    self_contained,
    validate,
)
from relaxsim.errors import ConfigError, RelaxsimError
from relaxsim.io import exclusive_lock, make_directory, read_toml, write_json, write_text
from relaxsim.registry import closest
from relaxsim.scans.spec import config_id, field_dimension, read_base, toml_value
from relaxsim.scans.store import Store, export_fields, flatten_metrics

KEYS = ("description", "base", "search")
SEARCH_KEYS = ("objectives", "constraints", "trials", "seed", "sampler", "space", "population")
RANGE_KEYS = ("low", "high", "log", "type")
SAMPLERS = ("nsga2", "tpe")
DIRECTIONS = {"max": "maximize", "min": "minimize"}
SPEC_FILE = "search.toml"
JOURNAL_FILE = "study.journal"
LOCK_FILE = ".lock"
STUDY_NAME = "relaxsim-search"
DEFAULT_TRIALS = 100
OUTPUTS = ("front.csv", "front.json", "best.json", "front.png")

# The scalar fields of a result (``relaxsim run``'s result.json, nested keys dotted), which an
# objective or a constraint may name. Fields whose names depend on the machine (a bank's
# utilisation, the architectures compared) are matched by the patterns below.
RESULT_FIELDS = frozenset("""
test_accuracy test_loss val_accuracy val_loss train_loss best_epoch epochs seconds
test_accuracy_ideal test_bits_per_char val_bits_per_char
params.banks params.input params.readout params.total
task.n_inputs task.n_classes task.sizes.train task.sizes.val task.sizes.test
hardware.latency_s hardware.period_s hardware.throughput_per_s hardware.latency_under_load_s
hardware.residence_s hardware.in_system hardware.energy_per_inference_j
hardware.static_power_total_w hardware.macs_per_inference hardware.j_per_mac hardware.tops_per_w
hardware.stated_utilisation hardware.training_hardware_time_s hardware.programming_fraction
hardware.programming_events
hardware.training.samples hardware.training.batches hardware.training.programming_events
hardware.training.digital_macs hardware.training.time_total_s hardware.training.energy_total_j
hardware.wear.writes_per_device_max hardware.wear.writes_per_device_mean
hardware.wear.worn_out_share hardware.wear.device_writes hardware.wear.write_energy_j
hardware.coupling.received_power_w hardware.coupling.snr hardware.coupling.element_noise
hardware.coupling.detector_noise hardware.coupling.input_quantisation_noise
hardware.coupling.readout_quantisation_noise
""".split())
RESULT_PATTERNS = (
    r"hardware\.energy_breakdown_j\.(weights|programming|switch|active|detector|laser|modulator"
    r"|dac|adc|digital)",
    r"hardware\.static_power_w\.(weights|switch|active|detector|laser)",
    r"hardware\.devices\.(weight_elements|heaters|switches|active_elements|detectors"
    r"|dac_channels|adc_channels|modulators|laser_channels)",
    r"hardware\.compare\.(reprogram|unrolled)\.(latency_s|period_s|throughput_per_s)",
    r"hardware\.training\.(time_s|energy_j)\.(forward|readout|digital|programming|static)",
    r"hardware\.coupling\.budget\.[a-z_]+",
    r"hardware\.utilisation\.[a-z]+[0-9]*",
    r"hardware\.architectures\.[a-z_]+\.[a-z_.]+",
)
CONSTRAINT = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(<=|>=|<|>)\s*(.+?)\s*$")


def is_result_field(name: str) -> bool:
    """Whether ``name`` is a scalar field of a run's result (dotted: ``hardware.latency_s``)."""
    return name in RESULT_FIELDS or any(re.fullmatch(p, name) for p in RESULT_PATTERNS)


# -- the spec ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Param:
    """One dimension of the search space: ``kind`` is ``float``, ``int`` or ``categorical``;
    a float's bounds are SI numbers (``"1 ps"`` -> ``1e-12``)."""

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple = ()

    def suggest(self, trial) -> Any:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log)
        return trial.suggest_float(self.name, self.low, self.high, log=self.log)

    def to_dict(self) -> Any:
        if self.kind == "categorical":
            return list(self.choices)
        out = {"low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.kind == "float" and all(isinstance(v, int) for v in (self.low, self.high)):
            out["type"] = "float"
        return out


@dataclass(frozen=True)
class Constraint:
    """``metric op bound``; :meth:`violation` is <= 0 when it holds (Optuna's convention)."""

    metric: str
    op: str
    bound: float

    def violation(self, value: float) -> float:
        return value - self.bound if self.op in ("<=", "<") else self.bound - value

    def holds(self, value: float) -> bool:
        return {"<=": value <= self.bound, "<": value < self.bound,
                ">=": value >= self.bound, ">": value > self.bound}[self.op]

    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass(frozen=True, eq=False)
class SearchSpec:
    """A validated search spec."""

    base: dict[str, Any]
    space: dict[str, Param]
    objectives: list[tuple[str, str]]  # (result field, "max" or "min")
    constraints: list[Constraint] = field(default_factory=list)
    trials: int = DEFAULT_TRIALS
    seed: int = 0
    sampler: str = "nsga2"
    population: int | None = None  # NSGA-II's population (default: Optuna's, 50)
    description: str = ""
    source: str = "search spec"

    @property
    def metrics(self) -> list[str]:
        """The result fields a trial keeps: objectives, constrained fields, and the figure's."""
        names = [m for m, _ in self.objectives] + [c.metric for c in self.constraints]
        names += ["test_accuracy", "hardware.energy_per_inference_j", "hardware.latency_s"]
        return list(dict.fromkeys(names))

    def to_dict(self) -> dict[str, Any]:
        """The self-contained spec (the base inlined), as the output directory keeps it."""
        search: dict[str, Any] = {
            "objectives": [f"{m}:{d}" for m, d in self.objectives],
            "constraints": [c.text() for c in self.constraints],
            "trials": self.trials, "seed": self.seed, "sampler": self.sampler,
            "space": {name: p.to_dict() for name, p in self.space.items()}}
        if self.population is not None:
            search["population"] = self.population
        out: dict[str, Any] = {"description": self.description} if self.description else {}
        out.update(base=copy.deepcopy(self.base), search=search)
        return out

    def study_key(self) -> dict[str, Any]:
        """What a stored study must share with this spec to be resumed by it (not its size,
        seed or sampler, which may change between runs)."""
        data = self.to_dict()
        data.pop("description", None)
        for key in ("trials", "seed", "sampler", "population"):
            data["search"].pop(key, None)
        return data

    def config(self, params: Mapping[str, Any]) -> Config:
        """The validated, self-contained config of a trial with fields ``params``."""
        return self_contained(validate(apply_overrides(copy.deepcopy(self.base),
                                                       copy.deepcopy(dict(params)))))


def load_search_spec(spec: str | Path | Mapping | SearchSpec) -> SearchSpec:
    """A :class:`SearchSpec` from a TOML file, a dict of the same shape, or a SearchSpec."""
    if isinstance(spec, SearchSpec):
        return spec
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        return parse_search_spec(read_toml(path, "search spec"), source=str(path),
                                 root=path.parent)
    if isinstance(spec, Mapping):
        return parse_search_spec(spec)
    raise TypeError(f"search spec must be a path, a dict or a SearchSpec "
                    f"(got {type(spec).__name__})")


def parse_search_spec(data: Mapping[str, Any], source: str = "search spec",
                      root: Path | None = None) -> SearchSpec:
    """Check every block of ``data``; every error names the block and the field."""
    def fail(msg: str):
        raise RelaxsimError(f"{source}: {msg}")

    for key in data:
        if key not in KEYS:
            fail(f"unknown key {key!r}; known: {', '.join(KEYS)}" + closest(key, KEYS))
    description = data.get("description", "")
    if not isinstance(description, str):
        fail(f"description: must be a string (got {toml_value(description)})")
    base = read_base(data.get("base", {}), root, source, fail)
    try:
        validate(copy.deepcopy(base))
    except RelaxsimError as exc:
        fail(f"base: {exc}")

    search = data.get("search")
    if not isinstance(search, Mapping):
        fail("search: missing; give a [search] table with objectives and [search.space]")
    for key in search:
        if key not in SEARCH_KEYS:
            fail(f"search.{key}: unknown key; known: {', '.join(SEARCH_KEYS)}"
                 + closest(key, SEARCH_KEYS))

    objectives = _objectives(search.get("objectives"), fail)
    constraints = _constraints(search.get("constraints", []), fail)
    trials = _count(search, "trials", DEFAULT_TRIALS, 1, fail)
    seed = _count(search, "seed", 0, 0, fail)
    population = _count(search, "population", None, 2, fail)
    sampler = search.get("sampler", "nsga2")
    if sampler not in SAMPLERS:
        fail(f"search.sampler: unknown sampler {toml_value(sampler)}; known: "
             f"{', '.join(SAMPLERS)}" + (closest(sampler, SAMPLERS) if isinstance(sampler, str)
                                          else ""))

    table = search.get("space")
    if not isinstance(table, Mapping) or not table:
        fail("search.space: missing or empty; give one entry per config field, e.g. "
             "\"network.banks\" = { low = 1, high = 4 }")
    entries = _space_entries(table)
    space = {}
    for name, entry in entries.items():
        _known_field(name, fail)
        space[name] = _param(name, entry, fail)
    _check_space(base, space, fail)
    return SearchSpec(base=base, space=space, objectives=objectives, constraints=constraints,
                      trials=trials, seed=seed, sampler=sampler, population=population,
                      description=description, source=source)


def _space_entries(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """The space's entries by dotted field: nested tables are followed down to a range (a
    table with ``low`` or ``high``) or a list of choices."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and not ({"low", "high"} & set(value)):
            out.update(_space_entries(value, name + "."))
        else:
            out[name] = value
    return out


def _known_field(name: str, fail) -> None:
    """An unknown section or key, reported as the config reports it, with the closest name."""
    section, _, rest = name.partition(".")
    key = rest.split(".")[0]
    if section not in SCHEMA:
        hint = closest(section, SCHEMA).removeprefix("; ") or f"known: {', '.join(SCHEMA)}"
        fail(f"search.space: {ConfigError(section, 'unknown section', hint=hint)}")
    if not key or key not in SCHEMA[section] or (
            "." in rest and SCHEMA[section][key].kind != "device"):
        fail(f"search.space: {ConfigError(name, 'unknown key', hint=key_hint(section, rest))}")


def _objectives(value, fail) -> list[tuple[str, str]]:
    if value is None:
        fail("search.objectives: missing; e.g. objectives = [\"test_accuracy:max\"]")
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        fail(f"search.objectives: must be a non-empty list of \"field:max\" or \"field:min\" "
             f"(got {toml_value(value)})")
    out = []
    for item in value:
        if not isinstance(item, str) or item.count(":") != 1:
            fail(f"search.objectives: {toml_value(item)}: must read \"field:max\" or "
                 "\"field:min\"")
        name, direction = (s.strip() for s in item.split(":"))
        if direction not in DIRECTIONS:
            fail(f"search.objectives: {name}: direction {direction!r} is not max or min")
        if not is_result_field(name):
            fail(f"search.objectives: {name}: not a field of a run's result"
                 + closest(name, sorted(RESULT_FIELDS)))
        if name in (n for n, _ in out):
            fail(f"search.objectives: {name}: given twice")
        out.append((name, direction))
    return out


def _constraints(value, fail) -> list[Constraint]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        fail(f"search.constraints: must be a list of \"field <= bound\" or \"field >= bound\" "
             f"(got {toml_value(value)})")
    out = []
    for item in value:
        m = CONSTRAINT.match(item) if isinstance(item, str) else None
        if m is None:
            fail(f"search.constraints: {toml_value(item)}: must read \"field <= bound\" or "
                 "\"field >= bound\"")
        name, op, bound = m.groups()
        if not is_result_field(name):
            fail(f"search.constraints: {name}: no such metric in a run's result"
                 + closest(name, sorted(RESULT_FIELDS)))
        out.append(Constraint(name, op, _bound(name, bound, fail)))
    return out


def _bound(metric: str, text: str, fail) -> float:
    """A constraint's bound: a number, or a quantity in the unit the metric's name ends in
    (``hardware.latency_s <= 1 ns``)."""
    from relaxsim.devices.fields import UNIT_SUFFIXES
    from relaxsim.devices.units import parse_quantity

    try:
        return float(text)
    except ValueError:
        pass
    dim = next((d for suffix, d in UNIT_SUFFIXES.items() if metric.endswith(suffix)), None)
    if dim is None:
        fail(f"search.constraints: {metric}: bound {text!r} is not a number")
    try:
        return parse_quantity(text, dim, f"search.constraints: {metric}")
    except RelaxsimError as exc:
        raise RelaxsimError(f"{exc}") from None


def _count(table, key, default, least, fail):
    value = table.get(key, default)
    if value is default:
        return value
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        fail(f"search.{key}: must be an integer >= {least} (got {toml_value(value)})")
    return value


def _si(name: str, value: Any, fail, what: str) -> float:
    """A bound of the continuous field ``name`` as an SI number (a quantity's units checked)."""
    from relaxsim.devices.units import parse_quantity

    where = f"search.space: {name}: {what}"
    section, _, key = name.partition(".")
    spec = SCHEMA.get(section, {}).get(key)
    dim = field_dimension(name)
    try:
        if dim is not None:
            number = parse_quantity(value, dim, where)
        elif spec is not None and spec.kind in QUANTITY_KINDS:
            number = quantity_of(where, spec.kind, value)
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            fail(f"search.space: {name}: {what}: must be a number (got {toml_value(value)}); "
                 "this field takes no unit")
        else:
            number = value
    except RelaxsimError as exc:
        raise RelaxsimError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") \
            from None
    if not math.isfinite(number):
        fail(f"search.space: {name}: {what}: must be finite (got {toml_value(value)})")
    return number


def _param(name: str, entry: Any, fail) -> Param:
    where = f"search.space: {name}"
    if isinstance(entry, list):
        if not entry:
            fail(f"{where}: empty list; a categorical field needs at least one value")
        if not all(isinstance(v, (str, int, float, bool)) for v in entry):
            fail(f"{where}: choices must be strings, numbers or booleans "
                 f"(got {toml_value(entry)})")
        if len(set(map(toml_value, entry))) != len(entry):
            fail(f"{where}: a choice is given twice ({toml_value(entry)})")
        return Param(name, "categorical", choices=tuple(entry))
    if not isinstance(entry, Mapping):
        fail(f"{where}: must be {{ low = ..., high = ... }} or a list of choices "
             f"(got {toml_value(entry)})")
    for key in entry:
        if key not in RANGE_KEYS:
            fail(f"{where}.{key}: unknown key; known: {', '.join(RANGE_KEYS)}"
                 + closest(key, RANGE_KEYS))
    for key in ("low", "high"):
        if key not in entry:
            fail(f"{where}: {key} is missing")
    log = entry.get("log", False)
    if not isinstance(log, bool):
        fail(f"{where}.log: must be true or false (got {toml_value(log)})")
    kind = entry.get("type")
    if kind not in (None, "int", "float"):
        fail(f"{where}.type: must be \"int\" or \"float\" (got {toml_value(kind)})")
    quantity = field_dimension(name) is not None or (
        SCHEMA.get(name.partition(".")[0], {}).get(name.partition(".")[2]) is not None
        and SCHEMA[name.partition(".")[0]][name.partition(".")[2]].kind in QUANTITY_KINDS)
    raw = (entry["low"], entry["high"])
    integral = all(isinstance(v, int) and not isinstance(v, bool) for v in raw)
    if kind == "int" and (quantity or not integral):
        fail(f"{where}.type: \"int\" needs integer bounds without units "
             f"(got low = {toml_value(raw[0])}, high = {toml_value(raw[1])})")
    kind = kind or ("int" if integral and not quantity else "float")
    low, high = (_si(name, v, fail, k) for v, k in zip(raw, ("low", "high")))
    if kind == "float":
        low, high = float(low), float(high)
    if low > high:
        fail(f"{where}: low {toml_value(raw[0])} > high {toml_value(raw[1])}")
    if log and low <= 0:
        fail(f"{where}: log = true needs low > 0 (got {toml_value(raw[0])})")
    return Param(name, kind, low, high, log)


def _check_space(base: dict, space: dict[str, Param], fail) -> None:
    """Every bound and choice, each alone on the base, must give a valid config."""
    for name, p in space.items():
        values = p.choices if p.kind == "categorical" else (p.low, p.high)
        for value in values:
            try:
                validate(apply_overrides(copy.deepcopy(base), {name: copy.deepcopy(value)}))
            except RelaxsimError as exc:
                fail(f"search.space: {name} = {toml_value(value)}: {exc}")


# -- the study ---------------------------------------------------------------------------------

def _optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _constraints_func(trial) -> list[float]:
    return list(trial.user_attrs.get("constraints", []))


def make_sampler(spec: SearchSpec, seed: int):
    """The spec's sampler with ``seed``, constraints as Optuna's ``constraints_func``."""
    optuna = _optuna()
    cf = _constraints_func if spec.constraints else None
    if spec.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, constraints_func=cf, multivariate=True)
    kwargs = {"population_size": spec.population} if spec.population else {}
    return optuna.samplers.NSGAIISampler(seed=seed, constraints_func=cf, **kwargs)


def study_storage(root: Path):
    from optuna.storages import JournalStorage

    try:  # Optuna 4 and later
        from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
    except ImportError:  # Optuna 3
        from optuna.storages import JournalFileOpenLock
        from optuna.storages import JournalFileStorage as JournalFileBackend

    path = str(root / JOURNAL_FILE)
    return JournalStorage(JournalFileBackend(path, lock_obj=JournalFileOpenLock(path)))


def open_study(root: Path, spec: SearchSpec, seed: int | None = None):
    """The study stored in ``root`` (created if new), its sampler seeded with ``seed`` plus the
    number of trials it holds (a resumed study does not draw its first trials' fields again)."""
    optuna = _optuna()
    storage = study_storage(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            held = len(optuna.load_study(study_name=STUDY_NAME, storage=storage).trials)
        except KeyError:
            held = 0
        seed = spec.seed if seed is None else seed
        return optuna.create_study(
            storage=storage, study_name=STUDY_NAME, load_if_exists=True,
            directions=[DIRECTIONS[d] for _, d in spec.objectives],
            sampler=make_sampler(spec, seed + held))


def trial_table(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, id, fields, metrics, objectives, feasibility."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append({"trial": t.number, "state": t.state.name.lower(),
                     "id": t.user_attrs.get("id"), "fields": dict(t.params),
                     "metrics": dict(t.user_attrs.get("metrics", {})),
                     "values": list(t.values) if t.values is not None else None,
                     "feasible": t.user_attrs.get("feasible", True),
                     "error": t.user_attrs.get("error")})
    return rows


def pareto_front(rows: list[dict], objectives: list[tuple[str, str]]) -> list[dict]:
    """The complete, feasible rows that no other such row dominates, by trial number; of rows
    with equal objectives (one config reused) the first stands for them."""
    cand = [r for r in rows if r["state"] == "complete" and r["feasible"]]
    signs = [1.0 if d == "max" else -1.0 for _, d in objectives]

    def key(r):
        return [s * v for s, v in zip(signs, r["values"])]

    front, seen = [], set()
    for r in cand:
        k = key(r)
        if any(all(a >= b for a, b in zip(key(o), k)) and key(o) != k for o in cand):
            continue
        if tuple(k) in seen:
            continue
        seen.add(tuple(k))
        front.append(r)
    return front


def best_trials(rows: list[dict], spec: SearchSpec) -> dict[str, Any]:
    """For each objective, its best complete trial meeting every constraint, and its best
    meeting each constraint alone."""
    done = [r for r in rows if r["state"] == "complete"]

    def best(cands, metric, direction):
        cands = [r for r in cands if _number(r["metrics"].get(metric)) is not None]
        if not cands:
            return None

        def key(r):  # the objective, then (a tie) the other objectives in order, each improved
            values = [r["metrics"][metric]] + [
                _number(r["metrics"].get(m)) for m, _ in spec.objectives if m != metric]
            ways = [direction] + [d for m, d in spec.objectives if m != metric]
            return tuple((v if w == "max" else -v) if v is not None else -math.inf
                         for v, w in zip(values, ways))

        return _summary(max(cands, key=key), spec)

    out: dict[str, Any] = {"all_constraints": {m: best([r for r in done if r["feasible"]], m, d)
                                               for m, d in spec.objectives}}
    out["each_constraint"] = {
        c.text(): {m: best([r for r in done if _number(r["metrics"].get(c.metric)) is not None
                            and c.holds(r["metrics"][c.metric])], m, d)
                   for m, d in spec.objectives}
        for c in spec.constraints}
    return out


def _summary(row: dict, spec: SearchSpec) -> dict[str, Any]:
    return {"trial": row["trial"], "id": row["id"], "fields": export_fields(row["fields"]),
            "objectives": {m: row["metrics"].get(m) for m, _ in spec.objectives},
            "metrics": row["metrics"]}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


# -- running -----------------------------------------------------------------------------------

@dataclass
class SearchResults:
    """What :func:`search` returns: the trials (rows of :func:`trial_table`), the front, the
    best trials, and counts of this call's work."""

    out: Path
    trials: list[dict]
    front: list[dict]
    best: dict
    computed: int = 0  # trials evaluated by this call
    reused: int = 0  # trials this call told from the store

    @property
    def counts(self) -> dict[str, int]:
        states = [r["state"] for r in self.trials]
        return {"done": states.count("complete"), "failed": states.count("fail"),
                "running": states.count("running"), "front": len(self.front)}


def evaluate_point(evaluate: Callable | None, cfg: Config) -> dict[str, Any]:
    """A trial's outcome: ``run_point`` (``relaxsim.run`` on a worker) or, given ``evaluate``
    (a function of the config returning a result dict), that, never raising."""
    if evaluate is None:
        from relaxsim.scans.execute import run_point

        return run_point(cfg)
    import traceback

    try:
        result = dict(evaluate(cfg))
    except Exception as exc:  # noqa: BLE001  (a failed trial is a result, not a crash)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}
    from relaxsim import __version__

    result.setdefault("config", cfg.to_dict())
    result.setdefault("relaxsim_version", __version__)
    return {"status": "done", "result": result}


class _InProcess:
    """Trials evaluated one at a time in the driver (for an injected evaluation)."""

    slots = 1

    def __init__(self, evaluate):
        self.evaluate, self.queue = evaluate, []

    def submit(self, pid, cfg):
        self.queue.append((pid, cfg))
        return pid

    def next_done(self):
        pid, cfg = self.queue.pop(0)
        return pid, evaluate_point(self.evaluate, cfg)

    def close(self):
        pass


class _OnDask:
    """Trials evaluated on the workers of a Dask client (a local cluster unless given)."""

    def __init__(self, evaluate, client=None, workers=None, address=None, security=None):
        from distributed import Client

        from relaxsim.scans.execute import connect, local_cluster

        self.evaluate, self.owned, self.futures = evaluate, [], {}
        if client is None and address:
            client = connect(address, security=security)
            self.owned.append(client)
        if client is None:
            cluster = local_cluster(workers)
            self.owned.append(cluster)
            client = Client(cluster, timeout=30)
            self.owned.insert(0, client)
        # local workers start with NUMBA_NUM_THREADS=1, and run_point sets one numba thread
        self.client = client
        if address:
            try:
                client.wait_for_workers(1, timeout=10)
            except TimeoutError:
                pass
        self.slots = max(1, sum(client.nthreads().values()))

    def submit(self, pid, cfg):
        import uuid

        future = self.client.submit(evaluate_point, self.evaluate, cfg, pure=False,
                                    key=f"relaxsim-trial-{pid}-{uuid.uuid4().hex[:8]}")
        self.futures[future] = pid
        return future

    def next_done(self):
        from concurrent.futures import CancelledError

        from distributed import wait

        done, _ = wait(list(self.futures), return_when="FIRST_COMPLETED")
        future = next(iter(done))
        pid = self.futures.pop(future)
        try:
            return pid, future.result()
        except CancelledError:
            raise RelaxsimError("lost the Dask workers; the trials finished so far are stored, "
                                "run the search again to resume") from None
        except Exception as exc:  # noqa: BLE001  (a killed worker, a missing install)
            return pid, {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                         "traceback": ""}

    def close(self):
        if self.futures and len(self.owned) == 0:
            self.client.cancel(list(self.futures))
        for thing in self.owned:
            try:
                thing.close()
            except Exception:  # noqa: BLE001
                pass


def _record(pid: str, params: dict, cfg: Config, outcome: dict) -> dict[str, Any]:
    """The store record of a trial: the record a scan keeps for a point with these fields."""
    record = {"id": pid, "status": outcome["status"], "fields": params, "labels": {}}
    if outcome["status"] == "done":
        record["result"] = outcome["result"]
    else:
        record.update(config=cfg.to_dict(), error=outcome["error"],
                      traceback=outcome.get("traceback", ""))
    return json.loads(json.dumps(record))


@contextmanager
def _held(root: Path):
    with exclusive_lock(root / LOCK_FILE, lambda holder: (
            f"{root}: a search is running in this directory ({holder}); wait for it to finish, "
            "or choose another --out")):
        yield


def _spec_temporary(path: Path) -> bool:
    """Whether ``path`` is a temporary file of ``search.toml`` left by a killed write."""
    return path.name.startswith(f".{SPEC_FILE}.") and path.name.endswith(".tmp")


def _made_but_not_written(root: Path) -> bool:
    """Whether ``root`` holds only what a search killed while making it leaves: its lock, an
    empty ``points/``, a temporary file of ``search.toml``."""
    for p in root.iterdir():
        if p.name == LOCK_FILE or _spec_temporary(p):
            continue
        if p.name == "points" and p.is_dir() and not any(p.iterdir()):
            continue
        return False
    return True


def check_out(root: Path, spec: SearchSpec) -> None:
    """Refuse ``root`` as the output of ``spec`` when it is a file, holds another search, or
    holds files no search left; nothing is written."""
    if root.exists() and not root.is_dir():
        raise RelaxsimError(f"--out {str(root)!r}: is a file, not a directory")
    spec_path = root / SPEC_FILE
    if spec_path.is_file():
        stored = load_search_spec(spec_path)
        if stored.study_key() != spec.study_key():
            raise RelaxsimError(f"{root}: holds another search (its base, space, objectives "
                                f"or constraints differ from {spec.source}'s); choose another "
                                "--out")
    elif root.is_dir() and not _made_but_not_written(root):
        raise RelaxsimError(f"--out {str(root)!r}: not empty and not a search directory (no "
                            f"{SPEC_FILE}); choose a new or empty directory")


def attach(root: Path, spec: SearchSpec) -> None:
    """Make ``root`` the output directory of ``spec`` (created if new; a directory a killed
    search left before writing its spec is taken over); one holding another search, or other
    files, is refused (:func:`check_out`). Called with the directory's lock held."""
    check_out(root, spec)
    spec_path = root / SPEC_FILE
    for p in list(root.iterdir()) if root.is_dir() else []:
        if _spec_temporary(p):
            p.unlink(missing_ok=True)
    make_directory(root / "points", f"--out {str(root)!r}")
    if not spec_path.is_file():
        write_text(spec_path, tomli_w.dumps(spec.to_dict()))


def search(spec: str | Path | Mapping | SearchSpec, out: str | Path, *, trials: int | None = None,
           timeout: float | None = None, seed: int | None = None, client=None,
           workers: int | None = None, address: str | None = None,
           evaluate: Callable[[Config], Mapping] | None = None, quiet: bool = True,
           write_outputs: bool = True, security=None) -> SearchResults:
    """Run the study of ``spec`` in ``out`` until it holds ``trials`` trials (default: the
    spec's), or ``timeout`` seconds have passed (no new trial is asked after it; those running
    finish), then write the outputs (:func:`write_outputs`).

    Trials run on Dask (``client``; else a scheduler at ``address``; else a local cluster of
    ``workers`` processes), as many at once as there are worker threads. ``evaluate``: a
    function of a trial's config returning its result dict, in place of ``relaxsim.run``; run
    in this process unless a client or address is given (then it must pickle). ``seed``
    replaces the spec's seed; ``security``: the ``distributed.Security`` of a TLS scheduler at
    ``address`` (:func:`relaxsim.scans.execute.tls_security`).
    """
    spec = load_search_spec(spec)
    root = Path(out)
    total = spec.trials if trials is None else trials
    if total < 1:
        raise RelaxsimError(f"--trials: must be >= 1 (got {total})")
    if timeout is not None and timeout <= 0:
        raise RelaxsimError(f"--timeout: must be > 0 seconds (got {timeout:g})")
    runner = None
    check_out(root, spec)  # before anything is written there, the lock included
    make_directory(root, f"--out {str(root)!r}")
    with _held(root):
        attach(root, spec)  # the spec written under the lock: one driver at a time
        _remove_stale_journal_lock(root)
        study = open_study(root, spec, seed)
        store = Store(root)
        store.remove_temporaries()
        try:
            if evaluate is not None and client is None and address is None:
                runner = _InProcess(evaluate)
            else:
                runner = _OnDask(evaluate, client, workers, address, security)
            computed, reused = _drive(study, spec, store, runner, total, timeout, quiet)
        finally:
            if runner is not None:
                runner.close()
        rows = trial_table(study)
    front = pareto_front(rows, spec.objectives)
    best = best_trials(rows, spec)
    results = SearchResults(root, rows, front, best, computed, reused)
    if write_outputs:
        write_search_outputs(root, spec, rows, front, best)
    return results


def _remove_stale_journal_lock(root: Path) -> None:
    """A driver killed while writing the journal leaves its lock file; ours is the only
    driver (we hold the directory's lock), so it can go."""
    stale = root / (JOURNAL_FILE + ".lock")  # the name Optuna's file locks use
    if stale.exists() or stale.is_symlink():
        stale.unlink(missing_ok=True)


def _drive(study, spec: SearchSpec, store: Store, runner, total: int,
           timeout: float | None, quiet: bool) -> tuple[int, int]:
    optuna = _optuna()
    t0 = time.monotonic()
    pending: dict[str, list] = {}  # config id -> [(trial, params, cfg)]
    computed = reused = 0
    rows = trial_table(study)
    bar = _Progress(total, rows, spec, quiet)

    def tell(trial, params, cfg, record):
        state, values = _outcome_of(trial, spec, record)
        study.tell(trial, values=values, state=state)
        bar.told(study)

    def start(trial, params, cfg):
        nonlocal reused
        pid = config_id(cfg)
        trial.set_user_attr("id", pid)
        if pid in pending:  # the same config is running: wait for it
            pending[pid].append((trial, params, cfg))
            return
        record = store.load(pid)
        if record is not None:
            reused += 1
            tell(trial, params, cfg, record)
            return
        store.set_aside(pid)
        pending[pid] = [(trial, params, cfg)]
        runner.submit(pid, cfg)

    def fail(trial, error):
        trial.set_user_attr("error", error)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        bar.told(study)

    # trials a killed driver asked but never told: asked again under their numbers
    for frozen in study.get_trials(deepcopy=False,
                                   states=(optuna.trial.TrialState.RUNNING,)):
        trial = optuna.Trial(study, frozen._trial_id)
        params = dict(frozen.params)
        if set(params) != set(spec.space):
            fail(trial, "abandoned before its fields were chosen (the driver stopped)")
            continue
        try:
            cfg = spec.config(params)
        except RelaxsimError as exc:
            fail(trial, str(exc))
            continue
        start(trial, params, cfg)

    try:
        while True:
            asked = len(study.get_trials(deepcopy=False))
            in_flight = sum(map(len, pending.values()))
            out_of_time = timeout is not None and time.monotonic() - t0 >= timeout
            if asked < total and not out_of_time and len(pending) < runner.slots:
                trial = study.ask()
                params = {name: p.suggest(trial) for name, p in spec.space.items()}
                try:
                    cfg = spec.config(params)
                except RelaxsimError as exc:
                    fail(trial, str(exc))
                    continue
                start(trial, params, cfg)
                continue
            if not in_flight:
                break
            pid, outcome = runner.next_done()
            waiting = pending.pop(pid)
            _, params, cfg = waiting[0]
            record = _record(pid, params, cfg, outcome)
            store.save(record)
            computed += 1
            for trial, params, cfg in waiting:
                tell(trial, params, cfg, record)
    finally:
        bar.close()
    return computed, reused


def _outcome_of(trial, spec: SearchSpec, record: dict):
    """The state and objective values to tell for a trial whose record is ``record``; the
    trial's metrics, constraint violations and feasibility go into its user attributes."""
    from optuna.trial import TrialState

    if record["status"] != "done":
        trial.set_user_attr("error", (record.get("error") or "failed").splitlines()[0])
        return TrialState.FAIL, None
    metrics = flatten_metrics(record["result"])
    kept = {m: _number(metrics.get(m)) for m in spec.metrics}
    trial.set_user_attr("metrics", {k: v for k, v in kept.items() if v is not None})
    missing = [m for m, _ in spec.objectives if kept[m] is None] + [
        c.metric for c in spec.constraints if kept[c.metric] is None]
    if missing:
        trial.set_user_attr("error", f"its result has no number for {', '.join(missing)}")
        return TrialState.FAIL, None
    violations = [c.violation(kept[c.metric]) for c in spec.constraints]
    trial.set_user_attr("constraints", violations)
    trial.set_user_attr("feasible", all(c.holds(kept[c.metric]) for c in spec.constraints))
    return TrialState.COMPLETE, [kept[m] for m, _ in spec.objectives]


class _Progress:
    """A tqdm bar of trials with done, failed and the front's size (off when quiet or not a
    terminal)."""

    def __init__(self, total, rows, spec, quiet):
        self.spec, self.bar = spec, None
        finished = sum(r["state"] in ("complete", "fail") for r in rows)
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=min(finished, total), unit="trial",
                            desc="search", file=sys.stderr, dynamic_ncols=True)
            self._postfix(rows)

    def _postfix(self, rows):
        states = [r["state"] for r in rows]
        front = len(pareto_front(rows, self.spec.objectives))
        self.bar.set_postfix_str(refresh=False, s=f"done {states.count('complete')}, failed "
                                 f"{states.count('fail')}, front {front}")

    def told(self, study):
        if self.bar is not None:
            self._postfix(trial_table(study))
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()


# -- outputs -----------------------------------------------------------------------------------

def front_records(front: list[dict], spec: SearchSpec) -> list[dict]:
    """The front's rows as the outputs give them: trial, id, fields in SI units (names end in
    their unit, :func:`relaxsim.scans.store.export_fields`), objectives, the other metrics."""
    return [{"trial": r["trial"], "id": r["id"], "fields": export_fields(r["fields"]),
             "objectives": {m: r["metrics"].get(m) for m, _ in spec.objectives},
             "metrics": r["metrics"]} for r in front]


def write_search_outputs(root: Path, spec: SearchSpec, rows: list[dict], front: list[dict],
                         best: dict) -> None:
    """``front.csv``, ``front.json``, ``best.json`` and ``front.png`` in ``root``."""
    import csv
    import io

    records = front_records(front, spec)
    rows_out = [{"trial": r["trial"], "id": r["id"], **r["fields"],
                 **{m: r["metrics"].get(m) for m in spec.metrics}} for r in records]
    columns = list(dict.fromkeys(["trial", "id", *(k for r in rows_out for k in r)]))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows_out)
    write_text(root / "front.csv", buf.getvalue())
    write_json(root / "front.json", {"objectives": [f"{m}:{d}" for m, d in spec.objectives],
                                     "constraints": [c.text() for c in spec.constraints],
                                     "trials": len(rows), "front": records})
    write_json(root / "best.json", best)
    plot_front(rows, front, root / "front.png")


def plot_front(rows: list[dict], front: list[dict], path: str | Path) -> Path | None:
    """Test accuracy against energy per inference and against latency, every complete trial
    (infeasible ones hollow) with the front highlighted; None when the trials have neither
    axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in rows if r["state"] == "complete"]
    axes_of = [("hardware.energy_per_inference_j", "energy per inference (J)"),
               ("hardware.latency_s", "latency (s)")]
    axes_of = [(m, label) for m, label in axes_of
               if any(m in r["metrics"] and "test_accuracy" in r["metrics"] for r in done)]
    if not axes_of:
        return None
    fig, axes = plt.subplots(1, len(axes_of), figsize=(5.5 * len(axes_of), 4.2), squeeze=False)
    on_front = {r["trial"] for r in front}
    for ax, (metric, label) in zip(axes[0], axes_of):
        def pts(sel):
            return ([r["metrics"][metric] for r in sel if metric in r["metrics"]],
                    [r["metrics"]["test_accuracy"] for r in sel if metric in r["metrics"]])
        feas = [r for r in done if r["feasible"] and r["trial"] not in on_front]
        infeas = [r for r in done if not r["feasible"]]
        ax.scatter(*pts(infeas), facecolors="none", edgecolors="0.6", s=22, label="infeasible")
        ax.scatter(*pts(feas), color="tab:blue", s=22, alpha=0.7, label="trial")
        fx, fy = pts(sorted((r for r in done if r["trial"] in on_front),
                            key=lambda r: r["metrics"].get(metric, 0)))
        ax.scatter(fx, fy, color="tab:red", s=46, edgecolors="k", zorder=3, label="Pareto front")
        if all(v > 0 for v in pts(done)[0]):
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy")
        ax.grid(alpha=0.3)
    axes[0][0].legend(loc="best", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path


def status(root: str | Path) -> dict[str, Any]:
    """Counts of the study stored in ``root``: trials, done, failed, running, front size."""
    root = Path(root)
    if not (root / SPEC_FILE).is_file() or not (root / JOURNAL_FILE).is_file():
        raise RelaxsimError(f"{root}: not a search directory (no {SPEC_FILE} and "
                            f"{JOURNAL_FILE}); run `relaxsim search SPEC.toml --out DIR` first")
    spec = load_search_spec(root / SPEC_FILE)
    optuna = _optuna()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study = optuna.load_study(study_name=STUDY_NAME, storage=study_storage(root))
    rows = trial_table(study)
    states = [r["state"] for r in rows]
    return {"trials": len(rows), "target": spec.trials, "done": states.count("complete"),
            "failed": states.count("fail"), "running": states.count("running"),
            "front": len(pareto_front(rows, spec.objectives)),
            "feasible": sum(r["state"] == "complete" and r["feasible"] for r in rows)}


__all__ = ["SearchResults", "SearchSpec", "load_search_spec", "pareto_front", "plot_front",
           "search", "status"]
