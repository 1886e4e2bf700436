"""Physical quantities in device files: ``"200 ps"``, ``"5 pJ"``, ``"3 dB"`` -> SI floats, and back.

A quantity is a number (already in SI units) or a string ``"<number> <unit>"``. Each field has a
*dimension* that fixes the units it accepts; a unit of another dimension, an unknown unit, a
malformed string, NaN or a boolean is a :class:`~relaxsim.errors.ConfigError` naming the field::

    >>> parse_quantity("1.5 us", "time", "hardware.switch.rise_time")
    1.5e-06
    >>> format_quantity(1.5e-06, "time")
    '1.5 us'

No dependency: the few units a device file needs are listed here.
"""

from __future__ import annotations

import json
import math
import re

from relaxsim.errors import ConfigError

# SI prefixes accepted on the base units; both the micro sign (U+00B5) and the Greek mu (U+03BC).
PREFIXES = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "\u00b5": 1e-6, "\u03bc": 1e-6,
            "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
_DISPLAY_PREFIXES = [("G", 1e9), ("M", 1e6), ("k", 1e3), ("", 1.0), ("m", 1e-3), ("u", 1e-6),
                     ("n", 1e-9), ("p", 1e-12), ("f", 1e-15)]


class Dimension:
    """What a field measures: the SI unit that takes prefixes, further units, an example value."""

    def __init__(self, name: str, noun: str, example: str, base: str | None = None,
                 others: dict[str, float] | None = None):
        self.name, self.noun, self.example, self.base = name, noun, example, base
        self.others = dict(others or {})
        self.units: dict[str, float] = {}
        if base is not None:
            self.units.update({p + base: f for p, f in PREFIXES.items()})
        self.units.update(self.others)

    def describe_units(self) -> str:
        """The accepted units, for an error message (``s with a prefix ..., min, h, day``)."""
        parts = [f"{self.base} with a prefix f p n u m k M G"] if self.base else []
        return ", ".join(parts + list(self.others)) or "no unit"


DIMENSIONS: dict[str, Dimension] = {d.name: d for d in [
    Dimension("time", "a time", '"200 ps"', "s", {"min": 60.0, "h": 3600.0, "day": 86400.0}),
    Dimension("energy", "an energy", '"5 pJ"', "J"),
    Dimension("power", "a power", '"2 mW"', "W"),
    Dimension("frequency", "a frequency", '"10 GHz"', "Hz"),
    Dimension("db", "a level in dB", '"3 dB"', None, {"dB": 1.0}),
    Dimension("angle", "an angle", '"0.785 rad"', "rad", {"deg": math.pi / 180}),
    Dimension("length", "a length", '"200 um"', "m"),
    Dimension("ratio", "a plain number", '"0.1"'),
]}

# which dimension each unit belongs to, to tell "wrong dimension" from "unknown unit"
_UNIT_DIMENSION = {unit: d.name for d in DIMENSIONS.values() for unit in d.units}

_NUMBER = r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?inf(?:inity)?"
_QUANTITY = re.compile(rf"\s*(?P<number>{_NUMBER})\s*(?P<unit>[^\s\d.+-][^\s]*)?\s*")


def describe_value(value) -> str:
    """A raw value as the user wrote it in TOML: strings in double quotes, booleans lower case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _dimension(dimension: str) -> Dimension:
    try:
        return DIMENSIONS[dimension]
    except KeyError:
        raise ValueError(f"unknown dimension {dimension!r}; known: "
                         f"{', '.join(DIMENSIONS)}") from None


def parse_quantity(value, dimension: str, field: str) -> float:
    """``value`` (a number in SI units or a string such as ``"200 ps"``) as a float in SI units.

    ``dimension`` is one of :data:`DIMENSIONS`; ``field`` names the value in error messages.
    A string without a unit is a number in SI units (dB for ``"db"``). ``inf`` is accepted here;
    whether a field allows it is the record's business.
    """
    dim = _dimension(dimension)
    requirement = f"must be {dim.noun} such as {dim.example}"
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(field, requirement, describe_value(value))
    if isinstance(value, str):
        match = _QUANTITY.fullmatch(value)
        if match is None:
            raise ConfigError(field, requirement, describe_value(value))
        text, unit = match["number"], match["unit"]
        if unit is None:
            return float(text)
        if unit not in dim.units:
            hint = ("" if unit in _UNIT_DIMENSION else
                    f"unknown unit {json.dumps(unit, ensure_ascii=False)}; "
                    f"known units: {dim.describe_units()}")
            raise ConfigError(field, requirement, describe_value(value), hint)
        return _scaled(text, dim.units[unit])
    try:
        number = float(value)
    except OverflowError:
        raise ConfigError(field, "must be a finite number",
                          f"an integer of {len(str(value))} digits") from None
    if math.isnan(number):
        raise ConfigError(field, requirement, "nan")
    return number


def _scaled(text: str, factor: float) -> float:
    """``float(text) * factor``, exact to the last bit when ``factor`` is a power of ten:
    ``"0.85 us"`` gives ``8.5e-07`` as the literal ``0.85e-6`` would, not ``0.85 * 1e-6``."""
    exponent = math.log10(factor)
    if abs(exponent - round(exponent)) > 1e-9 or "inf" in text:
        return float(text) * factor
    mantissa, _, power = text.lower().partition("e")
    return float(f"{mantissa}e{int(power or 0) + round(exponent)}")


def format_quantity(value_si: float, dimension: str, digits: int = 4) -> str:
    """``value_si`` for display, in the unit that keeps the number between 1 and 1000.

    ``format_quantity(2e-10, "time") == "200 ps"``, ``format_quantity(5e-12, "energy") == "5 pJ"``;
    times of a minute and more use min, h and day. At most ``digits`` significant digits.
    """
    dim = _dimension(dimension)
    v = float(value_si)

    def num(x: float) -> str:
        return f"{x:.{digits}g}"

    if dim.base is None:
        unit = next(iter(dim.units), "")
        return f"{num(v)} {unit}" if unit else num(v)
    if v == 0 or not math.isfinite(v):
        return f"{num(v)} {dim.base}"
    size = abs(v)
    if dimension == "time" and size >= 60:
        for unit in ("day", "h", "min"):
            if size >= dim.units[unit]:
                return f"{num(v / dim.units[unit])} {unit}"
    if dimension == "angle":
        return f"{num(v)} rad"
    for prefix, factor in _DISPLAY_PREFIXES:
        # round first, so that 999.99 ps shows as "1 ns", not "1000 ps"
        if float(num(size / factor)) >= 1 or prefix == "f":
            return f"{num(v / factor)} {prefix}{dim.base}"
    raise AssertionError(v)  # pragma: no cover


def display_unit(value_si: float, dimension: str) -> tuple[str, float]:
    """The unit :func:`format_quantity` shows ``value_si`` in, and that unit's size in SI:
    ``display_unit(4e-11, "time") == ("ps", 1e-12)``; an axis scaled by it reads as that value
    reads. ``("", 1.0)`` for a plain number; the SI unit itself for 0 or a non-finite value."""
    dim = _dimension(dimension)
    if dim.base is None:
        return "", 1.0
    v = float(value_si)
    if v == 0 or not math.isfinite(v):
        return dim.base, 1.0
    unit = format_quantity(v, dimension).split()[-1]
    return unit, dim.units.get(unit, 1.0)
