"""Write docs/config.md, the reference of every config key and every device field, from the code.

    python docs/make_config_reference.py           # (re)write docs/config.md
    python docs/make_config_reference.py --check   # exit 1 when docs/config.md is not what it would write

The keys, their kinds and meanings come from ``relaxsim.config.SCHEMA``, the defaults from the
built-in default experiment (``relaxsim.config.default_dict()``, ``relaxsim/default.toml``), the
device fields from the records of ``relaxsim.devices.RECORDS``. The output depends on nothing else
(no environment, no preset directories, no clock), so the same code always gives the same bytes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Mapping

OUT = Path(__file__).resolve().parent / "config.md"
COMMAND = "python docs/make_config_reference.py"

# the unit a device field's number is in, by the dimension of its field (SI, no prefix)
UNITS = {"time": "s", "energy": "J", "power": "W", "frequency": "Hz", "db": "dB", "angle": "rad",
         "ratio": "1"}

INTRO = """\
A config file is TOML (UTF-8; a leading byte-order mark is skipped) with the four sections below.
Any key left out keeps its default, the value of the built-in default experiment
(`relaxsim/default.toml`); `relaxsim config [CONFIG] [--set ...]` prints the resolved config.
`--set section.key=value` overrides one key on the command line (see [the command line](cli.md)).
What the keys do in context: [model and training](model.md) (`network`, `training`),
[tasks](tasks.md) (`task`), [hardware](hardware.md) and [timing](timing.md) (`hardware`).

Kinds of value:

| kind | value |
|---|---|
| `int` | an integer (`true`/`false` are not integers) |
| `float` | a number; an integer is accepted |
| `str` | a string |
| `schedule` | a registered schedule name (`"cyclic"`, `"blocked"`) or a list of bank indices, one per step |
| `time` | a time >= 0: a quantity string such as `"10 ps"`, `"1.5 us"`, `"1 day"`, or a number of seconds |
| `positive_time` | a time > 0 |
| `clock` | `"auto"` or a time > 0 |
| `device` | a table: `preset = "NAME"` (a library preset, a `--devices` preset or the path of a TOML file) and any [device field](#device-fields) of its kind overridden beside it; a plain string is short for `{ preset = "NAME" }` |
"""

DEVICE_INTRO = """\
A device table in the `hardware` section (`[hardware.switch]`, `[hardware.weights]`,
`[hardware.active]`) and a device file take the fields of its kind below, by their key. A number
without a unit is in the field's SI unit; a string carries its unit (`"200 ps"`, `"5 pJ"`, `"3 dB"`,
`"2 mW"`, `"10 GHz"`, `"0.785 rad"` or `"45 deg"`; times also `min`, `h`, `day`; SI prefixes
f p n u m k M G). The unit `1` marks a plain number. The default is the ideal device's value, which
switches the effect off; a preset sets its own values. The record attribute (Python, and the
columns of a scan export) is the key with its unit suffix. Every device file also has `kind`
(`switch`, `active` or `weight`), a one-line `description` and a `[sources]` table citing each
field's value by key (see [Hardware](hardware.md#device-files)).
"""


def _toml(value: Any) -> str:
    """A default as it is written in TOML: strings quoted, booleans lower case, tables inline."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _cell(text: str) -> str:
    """Text for one cell of a Markdown table: one line, pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _device_kind(section: str, key: str) -> str | None:
    """The device kind (a key of ``RECORDS``) a device key of the config holds."""
    from relaxsim import config
    from relaxsim.devices import RECORDS

    kinds = getattr(config, "DEVICE_KINDS", None) or {}
    if key in kinds:
        return kinds[key]
    for kind in (key, key.removesuffix("s")):
        if kind in RECORDS:
            return kind
    return None


def _field_slug(kind: str) -> str:
    return f"{kind}-fields"


def _allowed(meta: Mapping[str, Any], show) -> str:
    """The range of a device field, from its metadata: ``>= 0 s``, ``in [0, 1)``, ``one of ...``."""
    if meta.get("dimension") is None:
        choices = meta.get("choices")
        return "one of " + ", ".join(f"`{c}`" for c in choices) if choices else "see meaning"
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and hi is not None:
        text = (f"in {'(' if meta.get('lo_open') else '['}{show(lo)}, {show(hi)}"
                f"{')' if meta.get('hi_open') else ']'}")
    elif lo is not None:
        text = f"{'>' if meta.get('lo_open') else '>='} {show(lo)}"
    elif hi is not None:
        text = f"{'<' if meta.get('hi_open') else '<='} {show(hi)}"
    else:
        text = "any finite value"
    if meta.get("whole"):
        text = "whole number " + text
    if meta.get("inf"):
        text += " or inf"
    return text


def _section_table(section: str, keys: Mapping[str, Any], defaults: Mapping[str, Any]) -> list[str]:
    from relaxsim.devices import RECORDS

    lines = [f"## {section}", "", "| key | kind | default | meaning |", "|---|---|---|---|"]
    for key, spec in keys.items():  # schema order
        default = defaults.get(key, None)
        shown = "—" if default is None else _code(_toml(default))
        meaning = spec.doc
        if spec.kind == "device":
            kind = _device_kind(section, key)
            if isinstance(default, Mapping) and "preset" in default:
                meaning += f"; default preset `{default['preset']}`"
            if kind is not None:
                fields = ", ".join(f"`{k}`" for k in RECORDS[kind].keys())
                meaning += f"; [{kind} fields](#{_field_slug(kind)}): {fields}"
        lines.append(f"| `{section}.{key}` | `{spec.kind}` | {_cell(shown)} | {_cell(meaning)} |")
    return lines + [""]


def _device_table(kind: str, record) -> list[str]:
    from relaxsim.devices import format_quantity

    lines = [f"### {kind} fields", "",
             f"`{record.__name__}` (kind `{kind}`).", "",
             "| key | attribute | unit | default | allowed | meaning |",
             "|---|---|---|---|---|---|"]
    for key, field in record.specs().items():  # declaration order
        meta = field.metadata
        dim = meta.get("dimension")
        if dim is None:
            unit, default, show = "—", _toml(field.default), str
        else:
            unit = UNITS.get(dim, dim)
            default = (field.default if isinstance(field.default, str)
                       else format_quantity(field.default, dim))

            def show(v, dim=dim):
                return format_quantity(v, dim)
        lines.append(f"| `{key}` | `{field.name}` | {unit} | {_cell(_code(default))} | "
                     f"{_cell(_allowed(meta, show))} | {_cell(meta.get('doc', ''))} |")
    return lines + [""]


def generate() -> str:
    """The text of docs/config.md."""
    from relaxsim import config
    from relaxsim.devices import RECORDS

    defaults = config.default_dict()
    lines = ["# Config reference", "",
             f"<!-- Generated by `{COMMAND}` from relaxsim.config.SCHEMA, the default "
             "experiment and relaxsim.devices.RECORDS. Do not edit by hand: change the code and "
             "run the script again. -->", "",
             f"This page is generated by `{COMMAND}` from the code (do not edit it by hand; "
             f"`{COMMAND} --check` tells whether it is current).", "",
             INTRO,
             "Sections: " + ", ".join(f"[{s}](#{s})" for s in config.SCHEMA)
             + ", and the [device fields](#device-fields).", ""]
    for section, keys in config.SCHEMA.items():
        lines += _section_table(section, keys, defaults.get(section, {}))
    lines += ["## Device fields", "", DEVICE_INTRO]
    for kind, record in RECORDS.items():
        lines += _device_table(kind, record)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write docs/config.md from the config schema "
                                     "and the device records.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when docs/config.md differs from the "
                             "generated text")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the page (default {OUT})")
    args = parser.parse_args(argv)
    text = generate()
    if args.check:
        try:
            current = args.out.read_text(encoding="utf-8")
        except FileNotFoundError:
            current = None
        if current != text:
            print(f"{args.out}: not what `{COMMAND}` generates; run it to update the page",
                  file=sys.stderr)
            return 1
        return 0
    args.out.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
