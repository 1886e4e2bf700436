"""The wear study (``validation/wear.py``): a sequence of programming events on four differential
pairs against the writes, stuck devices, stuck values and write energy worked out by hand; a wrong
hand count is caught; and the accuracy measurement runs (one epoch, a tiny network)."""

from __future__ import annotations

import csv

import pytest

from relaxsim.validation import suite, wear


def test_the_events_match_the_hand_count():
    rows = wear.exact_rows()
    assert len(rows) == len(wear.EVENTS) == len(wear.HAND)
    assert [r["mismatches"] for r in rows] == [[]] * len(rows)
    assert [r["written"] for r in rows] == [8, 3, 4, 3, 0]  # the repeated event writes nothing
    assert set(rows[-1]["stuck"]) == {"a+", "b-", "d+", "d-"}
    summary = rows[-1]["summary"]
    assert summary["tracked"] and summary["device_writes"] == 18
    assert summary["writes_per_device_max"] == wear.EXACT_ENDURANCE + 1  # the failed write
    assert summary["write_energy_j"] == pytest.approx(18 * 0.96e-12, rel=1e-12)


def test_the_same_weights_twice_write_nothing():
    assert wear.repeat_writes() == (8, 0)


def replaced(event: int, **fields) -> tuple:
    return tuple({**h, **fields} if i == event else h for i, h in enumerate(wear.HAND))


@pytest.mark.parametrize("hand, stuck_at, summary, expect", [
    # d- sticks at the third event: counted as a third write, not left at 2
    (replaced(2, writes=((2, 1), (1, 2), (2, 1), (3, 2))), None, None, "writes"),
    (replaced(3, stuck=("a+", "d+", "d-")), None, None, "stuck"),
    (replaced(1, held=(5.3, -3, 0, -10)), None, None, "weights held"),
    (replaced(3, mask=(1, 0, 1, 0)), None, None, "mask"),
    (replaced(4, written=1), None, None, "devices written"),
    # failure = "last": a+ keeps the level before its failing write (7), not the one asked (9)
    (wear.HAND, {**wear.HAND_STUCK_AT, "a+": 9}, None, "a+ stuck at 7"),
    (wear.HAND, None, {**wear.HAND_SUMMARY, "device_writes": 17}, "device_writes"),
])
def test_a_wrong_hand_count_fails(hand, stuck_at, summary, expect):
    rows = wear.exact_rows(hand=hand, stuck_at=stuck_at, summary=summary)
    found = [m for r in rows for m in r["mismatches"]]
    assert found and any(expect in m for m in found), found


def test_a_wrong_hand_count_fails_the_check(tmp_path, monkeypatch):
    monkeypatch.setattr(wear, "HAND", replaced(0, written=7))
    monkeypatch.setattr(wear, "QUICK", {**wear.QUICK, "epochs": (1,), "hidden": 2, "batch": 256,
                                        "update_every": (1,), "endurances": (30,)})
    result = wear.check(True, tmp_path)
    assert not result.passed and "MISMATCHES" in result.summary


def test_the_measurement_runs(tmp_path):
    plan = {"epochs": (1,), "seeds": (0,), "hidden": 2, "batch": 16, "update_every": (1, 10),
            "endurances": (wear.SOURCED_ENDURANCE, 1)}
    rows = wear.accuracy_rows(plan)
    assert [(r["machine"], r["endurance"], r["update_every"]) for r in rows] == [
        ("hardware_aware", 6000, 1), ("hardware_aware", 6000, 10), ("hardware_aware", 1, 1),
        ("hardware_aware", 1, 10), ("ideal", None, None)]
    for r in rows:
        assert 0.0 <= r["mean"] <= 1.0 and 0.0 <= r["last_val"] <= 1.0
    sourced, tiny = rows[0], rows[2]
    assert sourced["worn_out_share"] == 0 and 0 < sourced["writes_max"] < 6000
    assert tiny["worn_out_share"] > 0 and tiny["writes_max"] == 2  # 1 + the failed write
    # a bank programmed every 10 batches is written at most as often as every batch
    assert rows[1]["events"] < rows[0]["events"]
    assert wear.accuracy_figure(rows, plan)[:8] == b"\x89PNG\r\n\x1a\n"
    name = wear.write_accuracy(tmp_path, rows, plan)
    with open(tmp_path / name, newline="") as fh:
        table = list(csv.reader(fh))
    assert len(table) == 1 + len(rows) and table[-1][0] == "ideal" and table[-1][11] == ""


def test_the_study_is_registered():
    assert "wear" in suite.STUDIES and suite.study("wear") is wear
    assert suite.STUDIES.index("wear") == suite.STUDIES.index("power") + 1
    assert wear.NAME == "wear" and callable(wear.check)
