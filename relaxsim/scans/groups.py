"""The finished points of a scan grouped by what the scan varies, the seeds aggregated.

A scan varies the fields of its spec's ``grid``, ``zip``, ``[[points]]`` and ``budget`` blocks;
``seeds`` (``training.seed``) repeats each combination. :func:`group_points` makes one
:class:`Group` per combination of varied-field values (and network size), holding the results of
its seeds, so that a report averages over seeds only. Values with a unit are compared as SI
numbers (``"3.5 ps"`` and ``3.5e-12`` are one value) and shown with their unit.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from relaxsim.scans.spec import field_dimension, si_value

SEED_FIELD = "training.seed"
SIZE_FIELDS = ("network.hidden", "network.banks", "network.steps")


@dataclass
class Group:
    """One combination of varied-field values: ``values`` in the order of the varied fields
    (canonical: SI floats for quantities), the network size, and the results of its seeds."""

    values: tuple
    budget: Any
    kind: str
    banks: int
    steps: int
    hidden: int
    results: list[dict] = field(default_factory=list)

    @property
    def seeds(self) -> int:
        return len(self.results)


def config_of(rec: dict) -> dict:
    """The resolved config of a stored point (its result's, else the record's own)."""
    return rec.get("result", {}).get("config") or rec.get("config") or {}


def varied_fields(spec: Mapping, recs: list[dict]) -> list[str]:
    """The fields a scan varies, in the spec's order (grid, zip, points, budget), then any other
    field a stored point names; ``training.seed`` (the seeds) is not one of them."""
    from relaxsim.scans.spec import flatten_fields

    names: list[str] = []
    for block in ("grid", "zip"):  # an axis is a list at any depth, as parse_spec reads it
        if isinstance(spec.get(block), Mapping):
            names += list(flatten_fields(spec[block], deep=True))
    for point in spec.get("points", []) if isinstance(spec.get("points"), list) else []:
        if isinstance(point, Mapping):
            names += list(flatten_fields(point))
    if spec.get("budget"):
        names += list(SIZE_FIELDS)
    for rec in recs:
        if isinstance(rec.get("fields"), Mapping):
            names += list(rec["fields"])
    return [n for n in dict.fromkeys(names) if n != SEED_FIELD]


def canonical_value(name: str, value: Any) -> Any:
    """A hashable value for grouping: quantities in SI (``"3.5 ps"`` -> 3.5e-12, as the point ids
    read them: :func:`relaxsim.scans.spec.si_value`), tables and lists as their canonical JSON,
    anything else as given."""
    value = si_value(name, value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def is_number(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)
            and math.isfinite(value))


def show_value(name: str, value: Any) -> str:
    """A canonical value for a table cell: quantities with their unit (``3.5 ps``)."""
    from relaxsim.devices.units import format_quantity

    dim = field_dimension(name)
    if value is None:
        return "(base)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if dim is not None and is_number(value):
        return format_quantity(value, dim)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def axis_unit(name: str, values: list[float]) -> tuple[str, float]:
    """The unit (``"ps"``) and its size in SI in which ``name``'s ``values`` read as 1 to 1000;
    ``("", 1.0)`` for a plain number."""
    from relaxsim.devices.units import display_unit

    dim = field_dimension(name)
    return display_unit(max((abs(v) for v in values), default=0.0), dim) if dim else ("", 1.0)


def _lookup(rec: dict, name: str) -> Any:
    """``name``'s value in a point: its fields, else its resolved config (None when absent)."""
    fields = rec.get("fields", {})
    if name in fields:
        return fields[name]
    node: Any = config_of(rec)
    for part in name.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def group_points(done: list[dict], varied: list[str]) -> list[Group]:
    """One :class:`Group` per combination of the ``varied`` fields' values and network size,
    holding the results of its seeds; sorted by budget, the other varied fields, L_T, L_W, N."""
    from relaxsim.config import network_kind

    groups: dict[tuple, Group] = {}
    for rec in done:
        net = config_of(rec).get("network", {})
        if not net:
            continue
        labels = rec.get("labels", {})
        values = tuple(canonical_value(n, _lookup(rec, n)) for n in varied)
        budget = labels.get("budget")
        key = (budget, values, net["banks"], net["steps"], net["hidden"])
        if key not in groups:
            kind = labels.get("kind") or network_kind(int(net["banks"]), int(net["steps"]))
            groups[key] = Group(values, budget, kind, net["banks"], net["steps"], net["hidden"])
        groups[key].results.append(rec["result"])

    def order(g: Group):
        others = [_sort_key(v) for n, v in zip(varied, g.values) if n not in SIZE_FIELDS]
        return (_sort_key(g.budget), others, g.steps, g.banks, g.hidden)

    return sorted(groups.values(), key=order)


def _sort_key(value: Any) -> tuple:
    if is_number(value):
        return (0, float(value), "")
    return (1 if value is not None else 2, 0.0, str(value))


def x_field(groups: list[Group], varied: list[str]) -> str | None:
    """The varied field to draw the metric against: the first one, other than the network sizes,
    whose values are numbers and take at least two values; None when there is none."""
    for i, name in enumerate(varied):
        if name in SIZE_FIELDS:
            continue
        values = {g.values[i] for g in groups}
        if len(values) >= 2 and all(is_number(v) for v in values):
            return name
    return None
