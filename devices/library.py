"""The preset library: TOML files of devices, found by name, and the loader of config tables.

A preset is a TOML file ``<kind>/<name>.toml`` (kind: ``switch``, ``active`` or ``weight``) with
``kind``, ``description``, the physical fields (the record's field names without their unit
suffix: ``rise_time = "200 ps"``) and a ``[sources]`` table citing each number. The library ships
in ``relaxsim/devices/presets``; users add directories with :func:`add_preset_dir`, the
``RELAXSIM_DEVICES`` variable (colon-separated) or the ``dirs`` argument. In a user directory a file
sits in a ``<kind>/`` folder or at the top level (its ``kind`` key says which). The first directory
that has a name wins: ``dirs``, then :func:`add_preset_dir` directories in the order added, then
``RELAXSIM_DEVICES`` in its order, then the library.

A config table such as ``{"preset": "eo_mzi", "rise_time": "200 ps"}`` becomes a record with
:func:`load_device`: the preset's values, then the table's overrides. ``preset`` may also be the
path of a TOML file (it ends in ``.toml`` or contains a ``/``), or a preset file's content
inline: a table with the file's keys and its ``path`` for the record (:func:`inline_preset`
makes one; a run directory keeps its devices so, and evaluates without the files).
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from relaxsim.errors import ConfigError, RelaxsimError
from relaxsim.io import expand_home
from relaxsim.io import read_toml as _read_toml
from relaxsim.registry import Registry, closest

from .fields import DeviceRecord, join_field
from .records import RECORDS
from .units import describe_value

LIBRARY_DIR = Path(__file__).resolve().parent / "presets"
ENV_VAR = "RELAXSIM_DEVICES"
KINDS = tuple(RECORDS)  # switch, active, weight

_added_dirs: list[Path] = []


@dataclass(frozen=True)
class PresetFile:
    """Where a preset lives: its kind, name, file and the directory it came from."""

    kind: str
    name: str
    path: Path
    origin: str  # "library" or the user directory


def add_preset_dir(path: str | os.PathLike) -> None:
    """Add a directory of user presets; its files override or extend the library."""
    d = _checked_dir(path, "preset directory")
    if d not in _added_dirs:
        _added_dirs.append(d)


def preset_dirs(dirs: Sequence[str | os.PathLike] = ()) -> list[Path]:
    """The user preset directories in search order (``dirs``, added ones, ``RELAXSIM_DEVICES``)."""
    found = [_checked_dir(d, "preset directory") for d in dirs] + list(_added_dirs)
    env = os.environ.get(ENV_VAR, "")
    found += [_checked_dir(d, ENV_VAR) for d in env.split(os.pathsep) if d]
    return list(dict.fromkeys(found))


def _checked_dir(path, what: str) -> Path:
    d = expand_home(path, what)
    if not d.is_dir():
        raise RelaxsimError(f"{what} {str(d)!r}: not a directory")
    return d.resolve()


def _kind_of(path: Path) -> str:
    kind = read_toml(path).get("kind")
    if kind not in KINDS:
        raise ConfigError(f"preset file {str(path)!r}: kind",
                          f"must be one of {', '.join(KINDS)}",
                          describe_value(kind) if kind is not None else "nothing")
    return kind


def _scan(directory: Path, origin: str) -> list[PresetFile]:
    """Every preset file in ``directory``: ``<kind>/<name>.toml`` or ``<name>.toml`` with a kind."""
    found = []
    for path in sorted(directory.rglob("*.toml")):
        rel = path.relative_to(directory)
        if len(rel.parts) == 1:
            kind = _kind_of(path)
        elif len(rel.parts) == 2 and rel.parts[0] in KINDS:
            kind = rel.parts[0]
        else:
            raise RelaxsimError(f"preset file {str(path)!r}: put it in a folder "
                                f"{', '.join(k + '/' for k in KINDS)} or at the top level")
        found.append(PresetFile(kind, path.stem, path, origin))
    return found


@functools.lru_cache(maxsize=1)
def _library() -> tuple[PresetFile, ...]:
    return tuple(_scan(LIBRARY_DIR, "library"))


def presets(kind: str, dirs: Sequence[str | os.PathLike] = ()) -> Registry:
    """The ``kind`` presets as a :class:`~relaxsim.registry.Registry` of :class:`PresetFile`."""
    _check_kind(kind)
    chosen: dict[str, PresetFile] = {}
    for entry in _library():
        if entry.kind == kind:
            chosen[entry.name] = entry
    for directory in reversed(preset_dirs(dirs)):  # later in the search order, overridden first
        mine: dict[str, PresetFile] = {}
        for entry in _scan(directory, str(directory)):
            if entry.kind != kind:
                continue
            if entry.name in mine:
                raise RelaxsimError(f"{kind} preset {entry.name!r} is defined twice in "
                                    f"{str(directory)!r}: {mine[entry.name].path.name} and "
                                    f"{entry.path.relative_to(directory)}")
            mine[entry.name] = entry
        chosen.update(mine)
    registry: Registry = Registry(f"{kind} preset")
    for name in sorted(chosen):
        registry.register(name, chosen[name])
    return registry


def _check_kind(kind: str) -> None:
    if kind not in RECORDS:
        raise ValueError(f"unknown device kind {kind!r}; known: {', '.join(KINDS)}")


def read_toml(path: Path) -> dict:
    """A preset file as a dict; every way it can fail is a one-line error naming the file."""
    return _read_toml(path, "preset file")


def read_preset_file(path: str | os.PathLike, kind: str | None = None) -> DeviceRecord:
    """The record in the TOML file ``path`` (its name is the file's stem); ``kind`` if given
    must match the file's ``kind``."""
    path = Path(path)
    return _preset_record(read_toml(path), kind, path.stem, f"preset file {str(path)!r}: ",
                          base=path.parent)


def _preset_record(data: Mapping, kind: str | None, name: str, prefix: str,
                   extra: tuple[str, ...] = (), base: Path | None = None) -> DeviceRecord:
    """The record a preset file's ``data`` describes; ``prefix`` names the file (or the inline
    table) in messages, ``extra`` are further keys allowed beside the file's; a relative
    ``response_file`` is read relative to ``base`` (the preset file's directory)."""
    data = dict(data)
    rf = data.get("response_file")
    if base is not None and isinstance(rf, str) and rf and not Path(rf).expanduser().is_absolute():
        data["response_file"] = str(Path(os.path.abspath(base / rf)))
    file_kind = data.pop("kind", None)
    if file_kind not in KINDS or (kind is not None and file_kind != kind):
        allowed = f'must be "{kind}"' if kind else f"must be one of {', '.join(KINDS)}"
        raise ConfigError(join_field(prefix, "kind"), allowed,
                          describe_value(file_kind) if file_kind is not None else "nothing")
    cls = RECORDS[file_kind]
    described = ("description", "sources", *extra)
    _check_keys(data, cls.keys() + sorted(described), prefix)
    specs = cls.specs()
    values = {specs[key].name: value for key, value in data.items() if key not in described}
    return cls(name=name, description=data.get("description", ""),
               sources=data.get("sources", {}), where=prefix, **values)


def is_preset_path(preset: str) -> bool:
    """Whether a config's ``preset`` string names a TOML file rather than a preset."""
    return preset.endswith(".toml") or "/" in preset or os.sep in preset


def inline_preset(kind: str, preset, field: str | None = None,
                  dirs: Sequence[str | os.PathLike] = ()):
    """``preset`` as a run directory keeps it, so that it needs no file to be read again: a
    library preset's name (or ``None``, or a table already inline) as it is; a preset file (a
    path, or a name found in a user directory) as its content, a table of the file's keys after
    ``path``, the file's absolute path, kept for the record. The file is checked as
    :func:`read_preset_file` checks it. Infinite numbers become the string ``"inf"`` (which the
    fields read alike), so the table is also valid JSON."""
    _check_kind(kind)
    if not isinstance(preset, str):
        return preset
    if is_preset_path(preset):
        path = Path(os.path.abspath(expand_home(preset, join_field(field, "preset") if field
                                                else "preset")))
    else:
        entry = presets(kind, dirs).get(preset, field=join_field(field, "preset") if field
                                        else None)
        if entry.origin == "library":
            return preset
        path = Path(os.path.abspath(entry.path))
    data = read_toml(path)
    rf = data.get("response_file")
    if isinstance(rf, str) and rf and not Path(rf).expanduser().is_absolute():
        data["response_file"] = str(Path(os.path.abspath(path.parent / rf)))  # kept inline
    _preset_record(data, kind, path.stem, f"preset file {str(path)!r}: ")
    return {"path": str(path), **{key: _finite_or_text(value) for key, value in data.items()}}


def _finite_or_text(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def load_preset(kind: str, name: str, dirs: Sequence[str | os.PathLike] = (),
                field: str | None = None) -> DeviceRecord:
    """The preset ``name`` of ``kind``; an unknown name lists the known ones."""
    entry = presets(kind, dirs).get(name, field=join_field(field, "preset") if field else None)
    return read_preset_file(entry.path, kind)


def load_device(kind: str, table: Mapping | None = None, field: str | None = None,
                dirs: Sequence[str | os.PathLike] = ()) -> DeviceRecord:
    """The device described by a config table: ``preset`` (a name or a TOML path; without it the
    ideal device) updated by the other keys, which are parsed with the field's dimension.

    ``field`` names the table in messages (``hardware.switch``); it defaults to ``kind``.
    """
    _check_kind(kind)
    field = field or kind
    table = {} if table is None else table
    if not isinstance(table, Mapping):
        raise ConfigError(field, "must be a table of keys", describe_value(table))
    cls = RECORDS[kind]
    _check_keys(table, ["preset"] + cls.keys(), field)
    preset = table.get("preset")
    if preset is None:
        base = cls(name="custom")
    elif isinstance(preset, Mapping):  # a preset file's content, inline
        where = join_field(field, "preset")
        path = preset.get("path", "")
        if not isinstance(path, str):
            raise ConfigError(join_field(where, "path"), "must be the path of the preset file",
                              describe_value(path))
        base = _preset_record(preset, kind, Path(path).stem or "custom", where, ("path",),
                              base=Path(path).parent if path else None)
    elif not isinstance(preset, str):
        raise ConfigError(join_field(field, "preset"), "must be a preset name or a TOML file",
                          describe_value(preset))
    elif is_preset_path(preset):
        base = read_preset_file(preset, kind)
    else:
        base = load_preset(kind, preset, dirs, field)
    overrides = {key: value for key, value in table.items() if key != "preset"}
    if not overrides:
        return base
    specs = cls.specs()
    values = {specs[key].name: value for key, value in base.values().items()}
    values.update({specs[key].name: value for key, value in overrides.items()})
    sources = dict(base.sources)
    sources.update({key: f"set in {field}" for key in overrides})
    return cls(name=base.name, description=base.description, sources=sources, where=field,
               **values)


def _check_keys(table: Mapping, allowed: list[str], prefix: str) -> None:
    for key in table:
        if key not in allowed:
            hint = closest(key, allowed).removeprefix("; ") or f"known: {', '.join(allowed)}"
            raise ConfigError(join_field(prefix, str(key)), "unknown key", hint=hint)
