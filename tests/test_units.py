"""Quantities in device files: ``parse_quantity`` (strict) and ``format_quantity`` (display)."""

from __future__ import annotations

import math

import pytest

from relaxsim.devices.units import display_unit, format_quantity, parse_quantity
from relaxsim.errors import ConfigError

FIELD = "hardware.switch.rise_time"

GOOD = [
    ("200 ps", "time", 200e-12),
    ("200ps", "time", 200e-12),
    ("1.5 us", "time", 1.5e-6),
    ("1.5 \u00b5s", "time", 1.5e-6),  # micro sign
    ("1.5 \u03bcs", "time", 1.5e-6),  # Greek mu
    ("0.85 us", "time", 0.85e-6),
    ("1e-9 s", "time", 1e-9),
    ("20 s", "time", 20.0),
    ("2 min", "time", 120.0),
    ("1 h", "time", 3600.0),
    ("1 day", "time", 86400.0),
    ("inf s", "time", math.inf),
    (3, "time", 3.0),
    (2e-10, "time", 2e-10),
    ("5 pJ", "energy", 5e-12),
    ("22 fJ", "energy", 22e-15),
    ("2 mW", "power", 2e-3),
    ("1 uW", "power", 1e-6),
    ("10 GHz", "frequency", 10e9),
    ("3 dB", "db", 3.0),
    ("-3 dB", "db", -3.0),
    ("inf dB", "db", math.inf),
    ("inf", "db", math.inf),
    (25, "db", 25.0),
    ("0.1", "ratio", 0.1),
    ("inf", "ratio", math.inf),
    (1e9, "ratio", 1e9),
    ("0.5 rad", "angle", 0.5),
    ("90 deg", "angle", math.pi / 2),
]


@pytest.mark.parametrize("value, dimension, si", GOOD)
def test_parse_quantity(value, dimension, si):
    # power-of-ten prefixes are exact: "0.85 us" is the float 0.85e-6, not 0.85 * 1e-6
    assert parse_quantity(value, dimension, FIELD) == si


TIME = 'must be a time such as "200 ps"'
BAD = [
    ("5 pJ", "time", f'{FIELD}: {TIME} (got "5 pJ")'),
    ("3 dB", "time", f'{FIELD}: {TIME} (got "3 dB")'),
    ("200 parsec", "time", f'{FIELD}: {TIME} (got "200 parsec"); unknown unit "parsec"; '
                           "known units: s with a prefix f p n u m k M G, min, h, day"),
    ("200 PS", "time", f'{FIELD}: {TIME} (got "200 PS"); unknown unit "PS"; '
                       "known units: s with a prefix f p n u m k M G, min, h, day"),
    ("fast", "time", f'{FIELD}: {TIME} (got "fast")'),
    ("200 p s", "time", f'{FIELD}: {TIME} (got "200 p s")'),
    ("", "time", f'{FIELD}: {TIME} (got "")'),
    ("nan", "time", f'{FIELD}: {TIME} (got "nan")'),
    (math.nan, "time", f"{FIELD}: {TIME} (got nan)"),
    (True, "time", f"{FIELD}: {TIME} (got true)"),
    (False, "db", f'{FIELD}: must be a level in dB such as "3 dB" (got false)'),
    ([1, 2], "time", f"{FIELD}: {TIME} (got [1, 2])"),
    ("3 db", "db", f'{FIELD}: must be a level in dB such as "3 dB" (got "3 db"); '
                   'unknown unit "db"; known units: dB'),
    ("3 dB", "ratio", f'{FIELD}: must be a plain number such as "0.1" (got "3 dB")'),
    ("5 %", "ratio", f'{FIELD}: must be a plain number such as "0.1" (got "5 %"); '
                     'unknown unit "%"; known units: no unit'),
    ("2 mW", "energy", f'{FIELD}: must be an energy such as "5 pJ" (got "2 mW")'),
    (10 ** 400, "time", f"{FIELD}: must be a finite number (got an integer of 401 digits)"),
]


@pytest.mark.parametrize("value, dimension, message", BAD)
def test_parse_quantity_rejects(value, dimension, message):
    with pytest.raises(ConfigError) as info:
        parse_quantity(value, dimension, FIELD)
    assert str(info.value) == message
    assert info.value.field == FIELD
    assert isinstance(info.value, ValueError)


def test_unknown_dimension_is_a_programming_error():
    with pytest.raises(ValueError, match="unknown dimension 'volume'; known: time, energy"):
        parse_quantity("1 l", "volume", FIELD)


FORMATS = [
    (200e-12, "time", "200 ps"),
    (1.5e-6, "time", "1.5 us"),
    (0.85e-6, "time", "850 ns"),
    (31e-3, "time", "31 ms"),
    (20.0, "time", "20 s"),
    (90.0, "time", "1.5 min"),
    (3600.0, "time", "1 h"),
    (86400.0, "time", "1 day"),
    (0.0, "time", "0 s"),
    (-1e-9, "time", "-1 ns"),
    (0.9999999e-9, "time", "1 ns"),  # rounded before the prefix is chosen
    (math.inf, "time", "inf s"),
    (5e-12, "energy", "5 pJ"),
    (22e-15, "energy", "22 fJ"),
    (2e-3, "power", "2 mW"),
    (10e9, "frequency", "10 GHz"),
    (3.0, "db", "3 dB"),
    (math.inf, "db", "inf dB"),
    (0.1, "ratio", "0.1"),
    (1e9, "ratio", "1e+09"),
    (0.5, "angle", "0.5 rad"),
]


@pytest.mark.parametrize("si, dimension, text", FORMATS)
def test_format_quantity(si, dimension, text):
    assert format_quantity(si, dimension) == text


@pytest.mark.parametrize("si, dimension", [(3.5e-12, "time"), (2.18e-6, "time"), (1.2e-6, "time"),
                                           (7200.0, "time"), (4e-15, "energy"), (0.01, "power"),
                                           (25.0, "db"), (0.008, "ratio")])
def test_format_then_parse_round_trips(si, dimension):
    assert parse_quantity(format_quantity(si, dimension), dimension, FIELD) == pytest.approx(si)


@pytest.mark.parametrize("value,dimension,expected", [
    (4e-11, "time", ("ps", 1e-12)), (1.2e-6, "time", ("us", 1e-6)), (0.0, "time", ("s", 1.0)),
    (90.0, "time", ("min", 60.0)), (5e-12, "energy", ("pJ", 1e-12)), (3.0, "ratio", ("", 1.0)),
])
def test_display_unit_is_the_unit_format_quantity_shows(value, dimension, expected):
    unit, size = display_unit(value, dimension)
    assert unit == expected[0] and size == pytest.approx(expected[1])
    if value:
        assert format_quantity(value, dimension).endswith(unit)
