"""The switch-leak study's closed forms (``validation/leak.py``): every machine's mixing vectors
against the settled port powers worked out by hand, and the coherent leak of a star with a
combiner is the square root of the incoherent one."""

from __future__ import annotations

import math

from relaxsim.validation import leak, suite


def test_mixing_vectors_match_the_closed_forms():
    rows = leak.closed_form_rows()
    assert len(rows) == len(leak.CASES) * len(leak.ERS_DB)
    for r in rows:
        assert r["steps"] > 0 and r["switching_steps"] > 0
        assert r["error"] < 1e-6, r
        assert math.isclose(r["ratio"], r["expected_ratio"], rel_tol=1e-6), r


def test_coherent_leak_is_the_square_root_of_the_incoherent_one():
    rows = leak.closed_form_rows(ers_db=(15.0,))
    star = {r["signal"]: r["ratio"] for r in rows
            if (r["topology"], r["mux"]) == ("star", "combiner")}
    e = 10.0 ** (-1.5)
    on = 1 - (leak.BANKS - 1) * e  # a lossless star: the selected port keeps the rest
    assert math.isclose(star["incoherent"], e / on, rel_tol=1e-9)
    assert math.isclose(star["coherent"], math.sqrt(e / on), rel_tol=1e-9)
    # a coherent leak computed as powers (e / on) would be 5x smaller at 15 dB
    assert star["coherent"] > 5 * star["incoherent"]


def test_the_study_is_registered():
    assert "leak" in suite.STUDIES and suite.study("leak") is leak
