"""The machinery shared by the device records: described fields, validation, frozen sources.

A record field is declared with :func:`quantity` or :func:`choice`; its metadata carry the TOML key
(the field name without its unit suffix), the dimension, the allowed range and a one-line meaning.
:class:`DeviceRecord.__post_init__` parses every field with
:func:`~relaxsim.devices.units.parse_quantity` and checks it, so a record that exists is valid.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import InitVar, dataclass
from typing import Any, ClassVar

from relaxsim.errors import ConfigError
from relaxsim.registry import closest

from .units import describe_value, format_quantity, parse_quantity

UNIT_SUFFIXES = {"_s": "time", "_j": "energy", "_w": "power", "_db": "db", "_rad": "angle",
                 "_hz": "frequency", "_m": "length"}


def join_field(prefix: str, key: str) -> str:
    """``hardware.switch`` + ``rise_time`` -> ``hardware.switch.rise_time``; a prefix that ends
    in ``": "`` (a file) is followed by the key directly."""
    return f"{prefix}{key}" if prefix.endswith(": ") else f"{prefix}.{key}"


def quantity(default: float, dimension: str, doc: str, *, lo: float | None = None,
             lo_open: bool = False, hi: float | None = None, hi_open: bool = False,
             inf: bool = False, whole: bool = False, auto: bool = False):
    """A numeric field in SI units: ``lo <= value`` (``<`` when ``lo_open``), likewise ``hi``;
    ``inf`` allows +inf, ``whole`` asks for an integer (or inf); ``auto`` allows the value
    ``"auto"`` (held as the string: the machine works it out, e.g. a noise from the power
    budget)."""
    return dataclasses.field(default=default, metadata=dict(
        dimension=dimension, doc=doc, lo=lo, lo_open=lo_open, hi=hi, hi_open=hi_open, inf=inf,
        whole=whole, choices=None, auto=auto))


def choice(default: str, choices: tuple[str, ...] | None, doc: str):
    """A string field: one of ``choices`` (``None``: checked by the record itself)."""
    return dataclasses.field(default=default, metadata=dict(dimension=None, doc=doc,
                                                            choices=choices))


class FrozenMap(Mapping):
    """A read-only, hashable, picklable ``dict`` (a record's ``sources``)."""

    def __init__(self, data: Mapping | None = None):
        self._data = dict(data or {})

    def __getitem__(self, key):
        return self._data[key]

    def __iter__(self):
        return iter(self._data)

    def __len__(self):
        return len(self._data)

    def __hash__(self):
        return hash(tuple(sorted(self._data.items())))

    def __reduce__(self):
        return FrozenMap, (self._data,)

    def __repr__(self):
        return repr(self._data)


def _range_text(meta: dict, show) -> str | None:
    """``must be >= 0 s``, ``must be in [0, 1)``, ... for the range in ``meta``, or None."""
    lo, hi = meta["lo"], meta["hi"]
    if lo is not None and hi is not None:
        return (f"must be in {'(' if meta['lo_open'] else '['}{show(lo)}, "
                f"{show(hi)}{')' if meta['hi_open'] else ']'}")
    if lo is not None:
        return f"must be {'>' if meta['lo_open'] else '>='} {show(lo)}"
    if hi is not None:
        return f"must be {'<' if meta['hi_open'] else '<='} {show(hi)}"
    return None


@dataclass(frozen=True, kw_only=True)
class DeviceRecord:
    """Fields every device has, and the validation that every record runs when it is made.

    ``where`` (not stored) prefixes the field names in error messages, e.g. ``hardware.switch``;
    it defaults to the record's kind.
    """

    KIND: ClassVar[str] = ""

    name: str = dataclasses.field(default="custom", metadata=dict(doc="preset name"))
    description: str = dataclasses.field(default="", metadata=dict(doc="one-line description"))
    sources: Mapping[str, str] = dataclasses.field(
        default_factory=FrozenMap, metadata=dict(doc="citation of each field's value, by key"))
    where: InitVar[str | None] = None

    # -- the fields -------------------------------------------------------------------------------

    @classmethod
    def specs(cls) -> dict[str, dataclasses.Field]:
        """The physical fields by TOML key (``rise_time`` -> the field ``rise_time_s``)."""
        return {key_of(f.name): f for f in dataclasses.fields(cls) if "dimension" in f.metadata}

    @classmethod
    def keys(cls) -> list[str]:
        return list(cls.specs())

    def values(self) -> dict[str, Any]:
        """``{TOML key: value in SI}`` for every physical field (``"auto"`` where it is)."""
        return {key: getattr(self, f.name) for key, f in self.specs().items()}

    def is_auto(self, key: str) -> bool:
        """Whether the field ``key`` is ``"auto"`` (the machine works it out)."""
        f = self.specs()[key]
        return bool(f.metadata.get("auto")) and getattr(self, f.name) == "auto"

    def display(self, key: str) -> str:
        """The value of ``key`` with its unit, e.g. ``"200 ps"``."""
        f = self.specs()[key]
        value = getattr(self, f.name)
        if f.metadata["dimension"] is None:
            return value
        if self.is_auto(key):
            return "auto"
        return format_quantity(value, f.metadata["dimension"])

    # -- validation -------------------------------------------------------------------------------

    def __post_init__(self, where: str | None):
        prefix = where or self.KIND
        for attr in ("name", "description"):
            if not isinstance(getattr(self, attr), str):
                raise ConfigError(join_field(prefix, attr), "must be a string",
                                  describe_value(getattr(self, attr)))
        for key, f in self.specs().items():
            field = join_field(prefix, key)
            meta = f.metadata
            raw = getattr(self, f.name)
            if meta["dimension"] is None:
                self._check_choice(field, meta, raw)
                continue
            if meta.get("auto") and raw == "auto":
                continue
            try:
                value = parse_quantity(raw, meta["dimension"], field)
            except ConfigError as err:
                if not meta.get("auto"):
                    raise
                raise ConfigError(field, err.requirement + ', or "auto"', err.got,
                                  err.hint) from None
            self._check_range(field, meta, value)
            object.__setattr__(self, f.name, value)
        object.__setattr__(self, "sources", self._checked_sources(prefix))
        self._check(prefix)

    def _check(self, prefix: str) -> None:
        """Checks that involve several fields; subclasses override."""

    @staticmethod
    def _check_choice(field: str, meta: dict, raw) -> None:
        if not isinstance(raw, str):
            raise ConfigError(field, "must be a string", describe_value(raw))
        choices = meta["choices"]
        if choices is not None and raw not in choices:
            raise ConfigError(field, f"must be one of {', '.join(choices)}", describe_value(raw),
                              closest(raw, choices).removeprefix("; "))

    @staticmethod
    def _check_range(field: str, meta: dict, value: float) -> None:
        dim = meta["dimension"]

        def show(v):
            return format_quantity(v, dim)

        if value == math.inf and meta["inf"]:
            return
        if math.isinf(value) and (value > 0 or meta["lo"] is None):
            raise ConfigError(field, "must be finite", show(value))
        lo, hi = meta["lo"], meta["hi"]
        bad = ((lo is not None and (value < lo or meta["lo_open"] and value == lo))
               or (hi is not None and (value > hi or meta["hi_open"] and value == hi)))
        if bad:
            raise ConfigError(field, _range_text(meta, show), show(value))
        if meta["whole"] and value != int(value):
            raise ConfigError(field, "must be a whole number" + (" or inf" if meta["inf"] else ""),
                              show(value))

    def _checked_sources(self, prefix: str) -> FrozenMap:
        field = join_field(prefix, "sources")
        if not isinstance(self.sources, Mapping):
            raise ConfigError(field, "must be a table of citations by key",
                              describe_value(self.sources))
        known = self.keys()
        for key, text in self.sources.items():
            if key not in known:
                raise ConfigError(join_field(field, str(key)), "unknown key",
                                  hint=closest(key, known).removeprefix("; ")
                                  or f"known: {', '.join(known)}")
            if not isinstance(text, str):
                raise ConfigError(join_field(field, key), "must be a string", describe_value(text))
        return FrozenMap(self.sources)


def key_of(attr: str) -> str:
    """A field's TOML key: its name without the unit suffix (``rise_time_s``: ``rise_time``)."""
    for suffix in UNIT_SUFFIXES:
        if attr.endswith(suffix):
            return attr[: -len(suffix)]
    return attr
