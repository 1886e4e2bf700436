"""Device models for relaxsim: slow weight elements, fast active elements and switches.

Installed as ``relaxsim.devices``. Each kind of device is a frozen, validated record with SI units
in its field names (:mod:`.records`); quantities are read from strings such as ``"200 ps"``
(:mod:`.units`); presets are TOML files with a source for every number, found by name
(:mod:`.library`)::

    from relaxsim.devices import load_device
    switch = load_device("switch", {"preset": "eo_mzi", "rise_time": "10 ps"}, "hardware.switch")
    switch.leak(20e-12)          # share of the signal still in the old path 20 ps after the command

The ideal network needs no device: the records' defaults (and the ``ideal`` presets) switch every
effect off.
"""

from .library import (
                      KINDS,
                      PresetFile,
                      add_preset_dir,
                      load_device,
                      load_preset,
                      preset_dirs,
                      presets,
                      read_preset_file,
)
from .records import RECORDS, ActiveElement, Switch, WeightElement
from .units import format_quantity, parse_quantity

__all__ = ["ActiveElement", "KINDS", "PresetFile", "RECORDS", "Switch", "WeightElement",
           "add_preset_dir", "format_quantity", "load_device", "load_preset", "parse_quantity",
           "preset_dirs", "presets", "read_preset_file"]
