"""The power-budget study's closed forms (``validation/power.py``): the default machine's SNR,
element and detector noise and shot-noise limit against the detector worked out by hand, from
1 nW to 100 mW per channel, and element noise falling as the laser power rises."""

from __future__ import annotations

import itertools
import math

from relaxsim.validation import power, suite


def test_budget_matches_the_closed_forms():
    rows = power.closed_form_rows()
    assert len(rows) == len(power.CLOSED_POWERS_W) >= 10
    assert min(r["laser_w"] for r in rows) == 1e-9 and max(r["laser_w"] for r in rows) == 0.1
    for r in rows:
        assert all(e < 1e-9 for e in r["errors"].values()), r
        assert r["error"] < 1e-9 and r["shot_error"] < 1e-9, r
        assert math.isclose(r["element_sigma"], 1.0 / r["snr"], rel_tol=1e-12), r
        assert r["shot_snr"] >= r["snr"]  # shot noise alone is the best the detector can do


def test_element_noise_falls_with_laser_power():
    rows = power.closed_form_rows()
    assert power.monotone(rows)
    sigmas = [r["element_sigma"] for r in sorted(rows, key=lambda r: r["laser_w"])]
    assert all(b < a for a, b in itertools.pairwise(sigmas))
    # thermal noise dominates at the lowest power, not at the highest
    assert rows[0]["dominant"] == "thermal" and rows[-1]["dominant"] != "thermal"


def test_the_study_is_registered():
    assert "power" in suite.STUDIES and suite.study("power") is power
    assert power.NAME == "power" and callable(power.check)
