"""Tolerance sweeps: how far may one hardware quantity go before the accuracy drops?

A spec is a TOML file (or the same data as a dict)::

    description = "how slow may the switch be"    # optional
    base = "exp.toml"            # a config file, or a [base] table of sections (as a scan's base)

    [tolerance]
    field = "hardware.switch.rise_time"   # the swept config field (a quantity or a number)
    from = "1 ps"                # the sweep's low end, with a unit that fits the field
    to = "1 ns"                  # the high end
    points = 20                  # values from `from` to `to`, both included (>= 2)
    scale = "log"                # log (geometric steps) or linear
    mode = "deploy"              # deploy: train once per seed, evaluate at every point;
                                 # retrain: train on the machine of every point (a scan)
    drop = 0.01                  # the accuracy drop that defines the tolerance (> 0)
    repeats = 3                  # deploy: programming and noise draws per point and seed
    seeds = [0, 1]               # training.seed values (default: the base's)
    train_on = "base"            # deploy: train on the base machine, or "ideal"

:func:`tolerance` runs it into a directory (:data:`SPEC_FILE`, :data:`CURVE_CSV`,
:data:`CURVE_JSON`, :data:`FIGURE`, :data:`REPORT`, and what resumes it: ``trained/seed-<s>/`` run
directories and ``points/<id>.json`` evaluations in deploy mode, the scan store ``scan/`` in
retrain mode). The tolerance is defined by :func:`find_tolerance`.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import math
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import tomli_w

from relaxsim.config import QUANTITY_KINDS, SCHEMA, Config, validate
from relaxsim.errors import RelaxsimError
from relaxsim.io import exclusive_lock, make_directory, read_toml, write_json, write_text
from relaxsim.scans.spec import (
    ScanSpec,
    check_field,
    config_id,
    expand,
    field_dimension,
    parse_spec,
    toml_value,
)

SPEC_KEYS = ("description", "base", "tolerance")
KEYS = ("field", "from", "to", "points", "scale", "mode", "drop", "repeats", "seeds", "train_on")
MODES = ("deploy", "retrain")
SCALES = ("log", "linear")
TRAIN_ON = ("base", "ideal")
DEFAULTS = {"points": 10, "scale": "log", "mode": "deploy", "drop": 0.01, "repeats": 3,
            "train_on": "base"}

SPEC_FILE = "tolerance.toml"   # the spec, self-contained (the base inlined)
CURVE_CSV = "curve.csv"
CURVE_JSON = "curve.json"
FIGURE = "tolerance.png"
REPORT = "report.md"
TRAINED_DIR = "trained"        # deploy: trained/seed-<s>/, a relaxsim run directory per seed
POINTS_DIR = "points"          # deploy: points/<id>.json, one evaluation per point and seed
SCAN_DIR = "scan"              # retrain: the scan store of the points
LOCK_FILE = ".lock"
OUTPUTS = (SPEC_FILE, CURVE_CSV, CURVE_JSON, FIGURE, REPORT, TRAINED_DIR, POINTS_DIR, SCAN_DIR,
           LOCK_FILE)
UNITS = {"time": "s", "energy": "J", "power": "W", "db": "dB", "angle": "rad",
         "frequency": "Hz", "length": "m"}

__all__ = ["ToleranceSpec", "ToleranceResult", "find_tolerance", "crossing", "load_tolerance_spec",
           "tolerance", "plot_curve"]


# -- the spec ---------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class ToleranceSpec:
    """A validated tolerance spec; ``low`` and ``high`` in SI units of the field."""

    field: str
    low: float
    high: float
    points: int
    scale: str
    mode: str
    drop: float
    repeats: int
    seeds: list[int]
    train_on: str
    base: dict[str, Any]
    dimension: str | None  # "time", "db", ... (None: a plain number)
    written: dict[str, Any] = field(default_factory=dict)  # from and to as written
    description: str = ""
    source: str = "tolerance spec"
    root: Path | None = None  # where the spec's relative paths are read from

    @property
    def unit(self) -> str:
        """The field's SI unit (``""`` for a plain number)."""
        return UNITS.get(self.dimension or "", "")

    @property
    def name(self) -> str:
        """The default output directory's name: the spec file's stem."""
        stem = Path(self.source).stem if self.source.endswith(".toml") else ""
        return stem or "tolerance"

    def values(self) -> list[float]:
        """The swept values in SI units, from low to high (both ends exact)."""
        if self.scale == "log":
            vals = np.geomspace(self.low, self.high, self.points)
        else:
            vals = np.linspace(self.low, self.high, self.points)
        vals = [float(v) for v in vals]
        vals[0], vals[-1] = self.low, self.high
        return vals

    def scan_spec(self) -> ScanSpec:
        """The points as a scan: the base, the field's values as a grid, the seeds."""
        data = {"base": copy.deepcopy(self.base), "grid": {self.field: self.values()},
                "seeds": list(self.seeds)}
        if self.description:
            data["description"] = self.description
        return parse_spec(data, source=self.source, root=self.root)

    def to_dict(self) -> dict[str, Any]:
        """The self-contained spec, as the output directory keeps it."""
        out: dict[str, Any] = {}
        if self.description:
            out["description"] = self.description
        out["base"] = copy.deepcopy(self.base)
        out["tolerance"] = {
            "field": self.field, "from": self.written.get("from", self.low),
            "to": self.written.get("to", self.high), "points": self.points, "scale": self.scale,
            "mode": self.mode, "drop": self.drop, "repeats": self.repeats,
            "seeds": list(self.seeds), "train_on": self.train_on}
        return out

    def to_toml(self) -> str:
        return tomli_w.dumps(self.to_dict())


def load_tolerance_spec(spec: str | Path | Mapping | ToleranceSpec) -> ToleranceSpec:
    """A :class:`ToleranceSpec` from a TOML file, a dict of the same shape, or itself."""
    if isinstance(spec, ToleranceSpec):
        return spec
    if isinstance(spec, (str, Path)):
        path = Path(spec)
        return parse_tolerance_spec(read_toml(path, "tolerance spec"), source=str(path),
                                    root=path.parent)
    if isinstance(spec, Mapping):
        return parse_tolerance_spec(spec)
    raise TypeError("tolerance spec must be a path, a dict or a ToleranceSpec "
                    f"(got {type(spec).__name__})")


def parse_tolerance_spec(data: Mapping[str, Any], source: str = "tolerance spec",
                         root: Path | None = None) -> ToleranceSpec:
    """Check every key of ``data``; errors name the block and the field."""
    from relaxsim.registry import closest

    def fail(key: str, msg: str):
        raise RelaxsimError(f"{source}: {key}: {msg}")

    for key in data:
        if key not in SPEC_KEYS:
            fail(key, f"unknown key; known: {', '.join(SPEC_KEYS)}" + closest(key, SPEC_KEYS))
    description = data.get("description", "")
    if not isinstance(description, str):
        fail("description", f"must be a string (got {toml_value(description)})")
    table = data.get("tolerance")
    if not isinstance(table, Mapping):
        fail("tolerance", "missing or not a table; give [tolerance] with field, from and to")
    for key in table:
        if key not in KEYS:
            fail(f"tolerance.{key}", f"unknown key; known: {', '.join(KEYS)}" + closest(key, KEYS))
    for key in ("field", "from", "to"):
        if key not in table:
            fail(f"tolerance.{key}", "is missing")
    t = {**DEFAULTS, **table}

    name = t["field"]
    if not isinstance(name, str) or not name:
        fail("tolerance.field", f"must be a dotted config field name (got {toml_value(name)})")
    check_field(name, "tolerance.field", source)
    dimension, parse = _field_parser(name, source)

    low, high = (parse(f"tolerance.{key}", t[key]) for key in ("from", "to"))
    if low > high:
        fail("tolerance.from", f"low > high: from = {toml_value(t['from'])} is above "
             f"to = {toml_value(t['to'])}")
    if low == high:
        fail("tolerance.to", f"equals from ({toml_value(t['to'])}); a sweep needs a range")

    points = t["points"]
    if isinstance(points, bool) or not isinstance(points, int) or points < 2:
        fail("tolerance.points", f"must be a whole number >= 2 (got {toml_value(points)})")
    for key, choices in (("scale", SCALES), ("mode", MODES), ("train_on", TRAIN_ON)):
        if t[key] not in choices:
            fail(f"tolerance.{key}", f"unknown {key} {toml_value(t[key])}; known: "
                 + ", ".join(choices) + (closest(t[key], choices)
                                         if isinstance(t[key], str) else ""))
    if t["scale"] == "log" and low <= 0:
        fail("tolerance.from", f"must be > 0 on a log scale (got {toml_value(t['from'])}); "
             "use scale = \"linear\" or a positive low end")
    drop = t["drop"]
    if isinstance(drop, bool) or not isinstance(drop, (int, float)) or not 0 < drop < 1:
        fail("tolerance.drop", f"must be an accuracy drop in (0, 1), e.g. 0.01 "
             f"(got {toml_value(drop)})")
    repeats = t["repeats"]
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        fail("tolerance.repeats", f"must be a whole number >= 1 (got {toml_value(repeats)})")
    seeds = t.get("seeds", [])
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seeds = [seeds]
    if not isinstance(seeds, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds) \
            or ("seeds" in table and not seeds):
        fail("tolerance.seeds", f"must be a non-empty list of integers >= 0 "
             f"(got {toml_value(seeds)})")
    if len(set(seeds)) != len(seeds):
        fail("tolerance.seeds", f"repeats a seed ({toml_value(seeds)})")
    if t["mode"] == "deploy" and not name.startswith("hardware."):
        fail("tolerance.field", f"{name}: deploy mode evaluates trained weights on other "
             "machines and sweeps hardware.* fields only; use mode = \"retrain\"")

    base = data.get("base", {})
    if not isinstance(base, (str, Mapping)):
        fail("base", f"must be a config file name or a table of config sections (got {base!r})")
    # the base as a scan reads it (a file relative to the spec, presets anchored)
    scan = parse_spec({"base": copy.deepcopy(base)}, source=source, root=root)
    base = scan.base
    if not seeds:
        seeds = [_validated(base, {}, source, "base").training.seed]
    spec = ToleranceSpec(field=name, low=low, high=high, points=points, scale=t["scale"],
                         mode=t["mode"], drop=float(drop), repeats=repeats, seeds=seeds,
                         train_on=t["train_on"], base=base, dimension=dimension,
                         written={"from": t["from"], "to": t["to"]}, description=description,
                         source=source, root=root)
    base_cfg = _validated(base, {}, source, "base")
    if t["mode"] == "deploy" and base_cfg.hardware.mode == "ideal":
        fail("base", "hardware.mode = \"ideal\" has no device effects to sweep; set "
             "hardware.mode to \"hardware_aware\" or \"deploy\" in the base (train_on = "
             "\"ideal\" trains without them)")
    return spec


def _field_parser(name: str, source: str):
    """``(dimension, parse)`` for the field ``name``: ``parse(key, value)`` gives the SI float of
    a ``from``/``to`` value, with a one-line error when it does not fit the field."""
    from relaxsim.devices.units import parse_quantity

    section, _, rest = name.partition(".")
    spec = SCHEMA.get(section, {}).get(rest)
    dimension = field_dimension(name)
    if spec is not None and spec.kind in ("power", "loss"):
        dimension = "power" if spec.kind == "power" else "db"
    if dimension is not None:
        def parse(key, value):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise RelaxsimError(f"{source}: {key}: must be a {dimension} quantity "
                                    f"(got {toml_value(value)})")
            try:
                number = float(parse_quantity(value, dimension, f"{key} (for {name})"))
            except RelaxsimError as exc:
                raise RelaxsimError(f"{source}: {exc}") from None
            if not math.isfinite(number):
                raise RelaxsimError(f"{source}: {key}: must be finite (got {toml_value(value)})")
            return number
        return dimension, parse
    if spec is not None and spec.kind == "float":
        def parse(key, value):
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise RelaxsimError(f"{source}: {key}: {name} is a plain number; give a finite "
                                    f"number (got {toml_value(value)})")
            return float(value)
        return None, parse
    key, _, sub = rest.partition(".")
    device = SCHEMA.get(section, {}).get(key)
    if spec is None and device is not None and device.kind == "device" and sub:
        from relaxsim.config import DEVICE_KINDS
        from relaxsim.devices import RECORDS
        from relaxsim.registry import closest

        known = list(RECORDS[DEVICE_KINDS[key]].specs())
        if sub not in known:
            raise RelaxsimError(f"{source}: tolerance.field: {name}: unknown field of "
                                f"{section}.{key}" + (closest(sub, known) or
                                                      f"; known: {', '.join(known)}"))
    kind = "a table" if spec is None else f"of kind {spec.kind}"
    if spec is not None and spec.kind in QUANTITY_KINDS:
        kind = "whole numbers of bits"
    raise RelaxsimError(f"{source}: tolerance.field: {name}: is {kind}, not a continuous "
                        "quantity; sweep a time, a device quantity, a power, a loss or a "
                        "number")


def _validated(base: Mapping, fields: Mapping, source: str, where: str) -> Config:
    from relaxsim.config import apply_overrides, self_contained

    try:
        return self_contained(validate(apply_overrides(copy.deepcopy(dict(base)),
                                                       copy.deepcopy(dict(fields)))))
    except RelaxsimError as exc:
        raise RelaxsimError(f"{source}: {where}: {exc}") from None


# -- the tolerance ------------------------------------------------------------------------------


def crossing(x: Sequence[float], y: Sequence[float], threshold: float, start: int,
             log: bool) -> float | None:
    """Where the curve ``y(x)``, walked from index ``start`` (0 or the last) towards the other
    end, first falls below ``threshold``: linear interpolation between the last point at or
    above it and the first below (in ``log x`` with ``log``). ``x[start]`` itself when the
    curve starts below; None when it never falls below within the sweep."""
    n = len(x)
    order = range(n) if start == 0 else range(n - 1, -1, -1)
    prev = None
    for i in order:
        if y[i] < threshold:
            if prev is None:
                return float(x[i])
            u0, u1 = (math.log(x[prev]), math.log(x[i])) if log else (x[prev], x[i])
            t = (y[prev] - threshold) / (y[prev] - y[i])
            u = u0 + t * (u1 - u0)
            return float(math.exp(u) if log else u)
        prev = i
    return None


def find_tolerance(x: Sequence[float], mean: Sequence[float], std: Sequence[float],
                   drop: float, log: bool) -> dict[str, Any]:
    """The tolerance of an accuracy curve.

    The reference is the mean accuracy at the sweep's better end (the end with the higher mean
    accuracy; the low end on a tie). The tolerance is the value, walking from that end, at which
    the mean accuracy first falls below ``reference - drop`` (:func:`crossing`): the largest value
    within the drop when the better end is the low one (``direction = "max"``: e.g. a rise time),
    the smallest when it is the high one (``"min"``: e.g. a clock period). Its interval is where
    the curves ``mean - std`` and ``mean + std`` cross the same threshold; a bound that the
    curve does not reach within the sweep is None (``beyond_sweep``: the tolerance lies past the
    far end, which is then given as ``value``)."""
    x, mean, std = (list(map(float, v)) for v in (x, mean, std))
    start = 0 if mean[0] >= mean[-1] else len(x) - 1
    reference = mean[start]
    threshold = reference - drop
    value = crossing(x, mean, threshold, start, log)
    lower_curve = [m - s for m, s in zip(mean, std)]
    upper_curve = [m + s for m, s in zip(mean, std)]
    a = crossing(x, lower_curve, threshold, start, log)
    b = crossing(x, upper_curve, threshold, start, log)
    far = x[-1] if start == 0 else x[0]
    beyond = value is None
    return {
        "value": far if beyond else value,
        "beyond_sweep": beyond,
        "direction": "max" if start == 0 else "min",
        "reference": reference,
        "reference_end": "low" if start == 0 else "high",
        "reference_value": x[start],
        "threshold": threshold,
        "drop": drop,
        "interval": _ordered([a, b], start == 0),
    }


def _ordered(bounds: list[float | None], low_end: bool) -> list[float | None]:
    """The two crossings as [low, high] (a missing one is past the far end)."""
    a, b = bounds  # the mean - std curve crosses first from the better end, then mean + std
    return [a, b] if low_end else [b, a]


# -- running ------------------------------------------------------------------------------------


class ToleranceResult(dict):
    """What :data:`CURVE_JSON` holds (``points``, ``tolerance``, ...), and counts of the work."""

    def __init__(self, data: dict, out: Path, computed: int = 0, reused: int = 0):
        super().__init__(data)
        self.out = out
        self.computed = computed  # trainings and evaluations run by this call
        self.reused = reused  # found in the output directory


def default_out(spec: ToleranceSpec) -> Path:
    return Path("tolerance") / spec.name


def check_out(out: Path) -> None:
    """Refuse a file, or a directory holding something else than a tolerance sweep's files."""
    if out.exists() and not out.is_dir():
        raise RelaxsimError(f"--out {str(out)!r}: is a file, not a directory")
    if out.is_dir() and not (out / SPEC_FILE).is_file():
        other = [p.name for p in out.iterdir()
                 if p.name not in OUTPUTS and not (p.name.startswith(".")
                                                   and p.name.endswith(".tmp"))]
        if other:
            raise RelaxsimError(f"--out {str(out)!r}: not empty and not a tolerance directory "
                                f"(no {SPEC_FILE}); choose a new or empty directory")


def tolerance(spec: str | Path | Mapping | ToleranceSpec, out: str | Path | None = None, *,
              workers: int | None = None, client=None, quiet: bool = True) -> ToleranceResult:
    """Run the sweep of ``spec`` into ``out`` (default ``tolerance/<spec name>``), resuming what
    an earlier call there finished, and write the curve, the figure and the report."""
    t0 = time.perf_counter()
    spec = load_tolerance_spec(spec)
    out = Path(out) if out is not None else default_out(spec)
    points, _ = expand(spec.scan_spec())  # every point validated before anything is written
    check_out(out)
    make_directory(out, f"--out {str(out)!r}")
    busy = (f"--out {str(out)!r}: another relaxsim tolerance sweep is running there; wait for "
            "it to end, or choose another directory")
    with exclusive_lock(out / LOCK_FILE, lambda holder: busy):
        write_text(out / SPEC_FILE, spec.to_toml())
        if spec.mode == "deploy":
            rows, computed, reused = _deploy(spec, points, out, quiet)
        else:
            rows, computed, reused = _retrain(spec, points, out, workers, client, quiet)
        data = _curve(spec, rows)
        data["seconds"] = time.perf_counter() - t0
        write_json(out / CURVE_JSON, data)
        write_text(out / CURVE_CSV, curve_csv(spec, data["points"]))
        plot_curve(spec, data, out / FIGURE)
        write_text(out / REPORT, report_text(spec, data))
    return ToleranceResult(data, out, computed=computed, reused=reused)


def _value_of(spec: ToleranceSpec, point) -> float:
    return float(point.fields[spec.field])


def _seed_of(point) -> int:
    return int(point.fields["training.seed"])


def _machine(cfg: Config) -> dict[str, Any]:
    """The swept machine's coupling: the switch leak and the element's carry-over per step."""
    from relaxsim.assembly import assemble

    coupling = assemble(cfg).coupling
    eps = [float(v) for v in coupling.eps]
    carry = [float(1.0 - v) for v in coupling.c]
    return {"switch_leak": max(eps), "switch_leak_steps": eps, "carry_over": max(carry)}


def _deploy(spec: ToleranceSpec, points, out: Path, quiet: bool):
    from relaxsim.runner import resume, run
    from relaxsim.training.checkpoint import CHECKPOINT

    trained_dir, points_dir = out / TRAINED_DIR, out / POINTS_DIR
    make_directory(points_dir)
    computed = reused = 0
    total = len(spec.seeds) + len(points)
    with _bar(total, quiet) as bar:
        runs: dict[int, tuple[Path, dict]] = {}
        for seed in spec.seeds:
            cfg = _train_config(spec, seed)
            run_dir = trained_dir / f"seed-{seed}"
            result = _finished_run(run_dir, cfg)
            if result is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the base machine's, not the sweep's
                    result = None
                    if (run_dir / CHECKPOINT).is_file():  # a training killed half-way
                        try:
                            result = resume(run_dir, quiet=True, cfg=cfg)
                        except RelaxsimError:  # another config's checkpoint: start again
                            result = None
                    if result is None:
                        result = run(cfg, out=run_dir, quiet=True, overwrite=True)
                computed += 1
            else:
                reused += 1
            runs[seed] = (run_dir, result)
            bar.update()
        rows = []
        for point in points:
            seed = _seed_of(point)
            run_dir, trained = runs[seed]
            record = _evaluation(spec, point, run_dir, trained, points_dir)
            if record["computed"]:
                computed += 1
            else:
                reused += 1
            rows.append(record)
            bar.update()
    return rows, computed, reused


def _train_config(spec: ToleranceSpec, seed: int) -> Config:
    fields: dict[str, Any] = {"training.seed": seed}
    if spec.train_on == "ideal":
        fields["hardware.mode"] = "ideal"
    return _validated(spec.base, fields, spec.source, f"training with seed {seed}")


def _finished_run(run_dir: Path, cfg: Config) -> dict | None:
    """The result of the run in ``run_dir`` when it finished with the config ``cfg``."""
    try:
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        saved = validate(read_toml(run_dir / "config.toml", "config"))
    except (OSError, ValueError, RelaxsimError):
        return None
    if config_id(saved) != config_id(cfg) or not (run_dir / "weights.npz").is_file():
        return None
    return result


def evaluation_overrides(spec: ToleranceSpec, value: float) -> dict[str, Any]:
    """What a deploy evaluation changes in the trained run's config: the swept field, and the
    hardware mode when the weights were trained ideal."""
    overrides: dict[str, Any] = {spec.field: value}
    if spec.train_on == "ideal":
        overrides["hardware.mode"] = _validated(spec.base, {}, spec.source, "base").hardware.mode
    return overrides


def _evaluation(spec: ToleranceSpec, point, run_dir: Path, trained: dict,
                points_dir: Path) -> dict[str, Any]:
    """A deploy point: the stored evaluation, or :func:`evaluate_run` of the seed's weights on
    the point's machine with ``repeats`` draws seeded by the training seed."""
    from relaxsim.scans.store import sha256_file
    from relaxsim.training.evaluate import evaluate_run

    seed, value = _seed_of(point), _value_of(spec, point)
    weights = sha256_file(run_dir / "weights.npz")
    path = points_dir / f"{point.id}.json"
    key = {"id": point.id, "weights_sha256": weights, "repeats": spec.repeats,
           "train_on": spec.train_on}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if {k: record.get(k) for k in key} == key:
            return {**record, "computed": False}
    except (OSError, ValueError, AttributeError):
        pass
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a slow machine's warnings are the point of the sweep
        res = evaluate_run(run_dir, evaluation_overrides(spec, value), repeats=spec.repeats,
                           seed=seed)
    record = {**key, "seed": seed, "value": value, "accuracies": res["accuracies"],
              "accuracy_mean": res["accuracy_mean"], "accuracy_std": res["accuracy_std"],
              "accuracy_ideal": res["accuracy_ideal"],
              "trained_accuracy": trained["test_accuracy"],
              "hardware": {k: res["hardware"][k] for k in ("switch", "weights", "active",
                                                           "latency_s", "warnings")},
              **_machine(point.config)}
    write_json(path, record)
    return {**record, "computed": True}


def _retrain(spec: ToleranceSpec, points, out: Path, workers, client, quiet: bool):
    from relaxsim.scans.execute import scan

    results = scan(spec.scan_spec(), client, out=out / SCAN_DIR, workers=workers, quiet=quiet)
    failed = results.failed
    if failed:
        first = failed[0]
        raise RelaxsimError(f"{out / SCAN_DIR}: {len(failed)} of {len(results)} points failed "
                            f"(e.g. {first['id']}: {first['error'].splitlines()[0]}); see "
                            f"`relaxsim scan {out / SCAN_DIR} --status`")
    rows = []
    for point, record in zip(points, results):
        acc = record["result"]["test_accuracy"]
        rows.append({"id": point.id, "seed": _seed_of(point), "value": _value_of(spec, point),
                     "accuracies": [acc], "accuracy_mean": acc, "accuracy_std": 0.0,
                     "trained_accuracy": acc, **_machine(point.config)})
    return rows, results.computed, results.reused


def _curve(spec: ToleranceSpec, rows: list[dict]) -> dict[str, Any]:
    """Per swept value: mean and spread over seeds and draws, per-seed means, the coupling."""
    points = []
    for value in spec.values():
        mine = [r for r in rows if r["value"] == value]
        accs = [a for r in mine for a in r["accuracies"]]
        points.append({
            "value": value,
            "accuracy_mean": statistics.fmean(accs),
            "accuracy_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "accuracy_seed_std": (statistics.stdev([r["accuracy_mean"] for r in mine])
                                  if len(mine) > 1 else 0.0),
            "samples": len(accs),
            "per_seed": {str(r["seed"]): r["accuracy_mean"] for r in mine},
            "accuracies": {str(r["seed"]): r["accuracies"] for r in mine},
            "switch_leak": mine[0]["switch_leak"],
            "switch_leak_steps": mine[0]["switch_leak_steps"],
            "carry_over": mine[0]["carry_over"],
            "ids": {str(r["seed"]): r["id"] for r in mine},
        })
    x = [p["value"] for p in points]
    tol = find_tolerance(x, [p["accuracy_mean"] for p in points],
                         [p["accuracy_std"] for p in points], spec.drop, spec.scale == "log")
    data = {"field": spec.field, "unit": spec.unit, "scale": spec.scale, "mode": spec.mode,
            "train_on": spec.train_on if spec.mode == "deploy" else None,
            "seeds": list(spec.seeds), "repeats": spec.repeats if spec.mode == "deploy" else 1,
            "drop": spec.drop, "points": points, "tolerance": tol}
    if spec.mode == "deploy":
        ideal = [r["accuracy_ideal"] for r in rows]
        trained = {str(r["seed"]): r["trained_accuracy"] for r in rows}
        data["accuracy_ideal"] = statistics.fmean(ideal)
        data["trained_accuracy"] = trained  # each seed's test accuracy on its training machine
    return data


def field_column(spec: ToleranceSpec) -> str:
    return f"{spec.field}_{spec.unit.lower()}" if spec.unit else spec.field


def curve_csv(spec: ToleranceSpec, points: list[dict]) -> str:
    """One row per swept value: the value in SI units, mean and spread of the accuracy, the
    coupling, and every seed's mean accuracy."""
    seeds = [str(s) for s in spec.seeds]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([field_column(spec), "accuracy_mean", "accuracy_std", "accuracy_seed_std",
                     "samples", "switch_leak", "carry_over",
                     *[f"accuracy_seed_{s}" for s in seeds]])
    for p in points:
        writer.writerow([repr(p["value"]), repr(p["accuracy_mean"]), repr(p["accuracy_std"]),
                         repr(p["accuracy_seed_std"]), p["samples"], repr(p["switch_leak"]),
                         repr(p["carry_over"]), *[repr(p["per_seed"][s]) for s in seeds]])
    return buf.getvalue()


def _format(spec: ToleranceSpec, value: float | None) -> str:
    if value is None:
        return "beyond the sweep"
    if spec.dimension is None:
        return f"{value:.4g}"
    from relaxsim.devices import format_quantity

    return format_quantity(value, spec.dimension)


def describe_tolerance(spec: ToleranceSpec, tol: dict) -> str:
    """One sentence: the tolerance, its interval, what it means."""
    word = "at most" if tol["direction"] == "max" else "at least"
    lo, hi = tol["interval"]
    if tol["beyond_sweep"]:
        return (f"{spec.field} may be {word} {_format(spec, tol['value'])} or beyond: the mean "
                f"accuracy stays within {tol['drop']:g} of {tol['reference']:.4f} over the "
                "whole sweep")
    return (f"{spec.field} may be {word} {_format(spec, tol['value'])} (interval "
            f"{_format(spec, lo)} to {_format(spec, hi)} from the spread) for the mean accuracy "
            f"to stay within {tol['drop']:g} of {tol['reference']:.4f}, its value at "
            f"{_format(spec, tol['reference_value'])}")


def plot_curve(spec: ToleranceSpec, data: dict, path: str | Path) -> None:
    """The accuracy against the swept field (mean, +- std band, every seed), the threshold and
    the tolerance with its interval, written as PNG to ``path`` (atomically)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from relaxsim.io import atomic_open

    fig = Figure(figsize=(6.4, 3.8), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    pts = data["points"]
    x = np.array([p["value"] for p in pts])
    mean = np.array([p["accuracy_mean"] for p in pts])
    std = np.array([p["accuracy_std"] for p in pts])
    ax.fill_between(x, mean - std, mean + std, color="C0", alpha=0.2, linewidth=0,
                    label="mean +- std")
    for seed in spec.seeds if len(spec.seeds) > 1 else []:
        ax.plot(x, [p["per_seed"][str(seed)] for p in pts], color="C0", alpha=0.35,
                linewidth=0.8)
    ax.plot(x, mean, "o-", color="C0", markersize=3, label="mean accuracy")
    tol = data["tolerance"]
    ax.axhline(tol["threshold"], color="0.4", linestyle=":", linewidth=1,
               label=f"reference - {tol['drop']:g}")
    if not tol["beyond_sweep"]:
        lo, hi = tol["interval"]
        if lo is not None or hi is not None:
            ax.axvspan(lo if lo is not None else x[0], hi if hi is not None else x[-1],
                       color="C3", alpha=0.12, linewidth=0)
        ax.axvline(tol["value"], color="C3", linewidth=1.2,
                   label=f"tolerance {_format(spec, tol['value'])}")
    if spec.scale == "log":
        ax.set_xscale("log")
    ax.set_xlabel(f"{spec.field} ({spec.unit})" if spec.unit else spec.field)
    ax.set_ylabel("test accuracy")
    title = f"{spec.mode}: {len(spec.seeds)} seed(s)"
    if spec.mode == "deploy":
        title += f" x {spec.repeats} draws, trained on the {spec.train_on} machine"
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    with atomic_open(path, "wb") as fh:
        fig.savefig(fh, format="png", dpi=110)


def report_text(spec: ToleranceSpec, data: dict) -> str:
    """The Markdown report: the sweep, the tolerance, the table of the curve."""
    tol = data["tolerance"]
    lines = [f"# Tolerance of {spec.field}", ""]
    if spec.description:
        lines += [spec.description, ""]
    how = ("the weights trained once per seed on the "
           + ("base machine" if spec.train_on == "base" else "ideal machine")
           + f", evaluated at every point with {spec.repeats} programming and noise draws"
           if spec.mode == "deploy" else "hardware-aware training at every point")
    lines += [
        f"- sweep: {spec.points} values from {_format(spec, spec.low)} to "
        f"{_format(spec, spec.high)}, {spec.scale} scale",
        f"- mode: {spec.mode} ({how}); seeds {', '.join(map(str, spec.seeds))}",
        f"- reference: mean accuracy {tol['reference']:.4f} at the better end "
        f"({_format(spec, tol['reference_value'])}); threshold {tol['threshold']:.4f} "
        f"(drop {spec.drop:g})",
    ]
    if spec.mode == "deploy":
        lines.append(f"- ideal machine: {data['accuracy_ideal']:.4f} (the same weights without "
                     "device effects, mean over seeds)")
    lines += ["", f"**Tolerance:** {describe_tolerance(spec, tol)}.", "",
              f"![accuracy against {spec.field}]({FIGURE})", "",
              f"| {spec.field} | accuracy | std | switch leak | carry-over |",
              "|---|---|---|---|---|"]
    for p in data["points"]:
        lines.append(f"| {_format(spec, p['value'])} | {p['accuracy_mean']:.4f} | "
                     f"{p['accuracy_std']:.4f} | {p['switch_leak']:.3g} | "
                     f"{p['carry_over']:.3g} |")
    lines += ["", f"Files: {CURVE_CSV}, {CURVE_JSON} (the field in SI units), {FIGURE}.", ""]
    return "\n".join(lines)


class _bar:
    """A tqdm bar of trainings and evaluations (off when quiet or not a terminal)."""

    def __init__(self, total: int, quiet: bool):
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="step", desc="tolerance", file=sys.stderr,
                            dynamic_ncols=True)

    def update(self):
        if self.bar is not None:
            self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
