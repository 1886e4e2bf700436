"""``relaxsim devices``: list the device preset library, or show one preset with its sources."""

from __future__ import annotations

from relaxsim.devices import KINDS, load_preset, presets
from relaxsim.errors import UnknownNameError
from relaxsim.registry import closest

# the figures a designer compares first, per kind, in the listing
KEY_FIGURES = {
    "switch": ("rise_time", "extinction_ratio", "insertion_loss", "energy_per_switch"),
    "active": ("transfer", "response_time", "noise", "energy_per_activation"),
    "weight": ("program_time", "sign", "bits", "drift"),
    "io": ("laser_efficiency", "modulator_energy", "dac_fom", "adc_fom"),
    "digital": ("mac_rate", "energy_per_mac"),
}


def add_devices_command(sub) -> None:
    """Register the ``devices`` subcommand on the ``relaxsim`` subparsers ``sub``."""
    p = sub.add_parser("devices", help="list the device presets, or show one with its sources")
    p.add_argument("name", nargs="?",
                   help=f"a preset to show: NAME, or KIND/NAME with KIND one of {', '.join(KINDS)}")
    p.add_argument("--devices", action="append", default=[], metavar="DIR",
                   help="also read presets from DIR; its files override the library (repeatable)")
    p.set_defaults(func=cmd_devices)


def cmd_devices(args) -> int:
    if args.name is None:
        print(library_table(args.devices))
    else:
        kind, name = resolve_name(args.name, args.devices)
        print(preset_sheet(kind, name, args.devices))
    return 0


def resolve_name(text: str, dirs=()) -> tuple[str, str]:
    """``NAME`` or ``KIND/NAME`` -> ``(kind, name)``; unknown or ambiguous names list the known."""
    if "/" in text:
        kind, _, name = text.partition("/")
        if kind not in KINDS:
            raise UnknownNameError(f"unknown device kind {kind!r}; known: {', '.join(KINDS)}"
                                   + closest(kind, KINDS))
        presets(kind, dirs).get(name)
        return kind, name
    kinds = [kind for kind in KINDS if text in presets(kind, dirs)]
    if len(kinds) > 1:
        raise UnknownNameError(f"device preset {text!r} is ambiguous; use "
                               + " or ".join(f"{kind}/{text}" for kind in kinds))
    if not kinds:
        known = sorted({name for kind in KINDS for name in presets(kind, dirs)})
        raise UnknownNameError(f"unknown device preset {text!r}; known: {', '.join(known)}"
                               + closest(text, known))
    return kinds[0], text


def _columns(rows: list[list[str]], indent: str = "  ") -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [indent + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1]
            for row in rows]


def library_table(dirs=()) -> str:
    """Every preset by kind: name, the key figures and the description."""
    lines = []
    for kind in KINDS:
        registry = presets(kind, dirs)
        figures = KEY_FIGURES[kind]
        rows = [["name", *(f.replace("_", " ") for f in figures), "description"]]
        for name in registry:
            record = load_preset(kind, name, dirs)
            origin = registry.get(name).origin
            where = "" if origin == "library" else f" [{origin}]"
            rows.append([name, *(record.display(f) for f in figures),
                         record.description + where])
        lines += [f"{kind}", *_columns(rows), ""]
    lines.append("relaxsim devices NAME shows every parameter of one preset and its source.")
    return "\n".join(lines)


def preset_sheet(kind: str, name: str, dirs=()) -> str:
    """One preset: every parameter with its value, unit, meaning and source."""
    entry = presets(kind, dirs).get(name)
    record = load_preset(kind, name, dirs)
    rows = [["key", "value", "source"]]
    for key, spec in record.specs().items():
        source = record.sources.get(key, "not given")
        rows.append([key, record.display(key), source])
    meaning = [f"  {key}: {spec.metadata['doc']}" for key, spec in record.specs().items()]
    return "\n".join([f"{kind}/{name}: {record.description}", f"  file {entry.path}", "",
                      *_columns(rows), "", "meaning", *meaning])
