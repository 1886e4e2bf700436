"""One config and seed, the same answer from every entry point: ``relaxsim run`` on the command
line, ``relaxsim.run(cfg, out=...)`` and a scan that keeps its weights, on 1 and on 2 local
workers: the same bytes of ``weights.npz`` and the same metrics (all but the wall-clock
``seconds``), for an ideal and a hardware_aware machine."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

import relaxsim  # noqa: E402
from relaxsim.cli.app import main  # noqa: E402
from relaxsim.scans.execute import scan  # noqa: E402
from relaxsim.scans.spec import load_spec  # noqa: E402

BASE = {"network": {"hidden": 8}, "training": {"epochs": 2, "batch_size": 16}}
SPEC = {"base": BASE, "grid": {"hardware.mode": ["ideal", "hardware_aware"]}, "seeds": [0, 3]}


def metrics(result: dict) -> dict:
    """A result as JSON gives it back, without the wall time."""
    return {k: v for k, v in json.loads(json.dumps(result)).items() if k != "seconds"}


def epochs(path: Path) -> list[dict]:
    """metrics.csv without its seconds column."""
    rows = csv.DictReader(io.StringIO(path.read_text()))
    return [{k: v for k, v in row.items() if k != "seconds"} for row in rows]


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    """The spec scanned with weights on 1 and on 2 local workers (each its own cluster)."""
    root = tmp_path_factory.mktemp("scans")
    return {n: scan(SPEC, out=root / f"w{n}", workers=n, save_weights=True) for n in (1, 2)}


def test_a_scan_gives_the_same_bytes_on_one_and_two_workers(scans):
    one, two = scans[1], scans[2]
    assert [r["status"] for r in one] == ["done"] * 4
    assert [metrics(r["result"]) for r in one] == [metrics(r["result"]) for r in two]
    for a, b in zip(one, two):
        pa, pb = (s.out / "points" / f"{a['id']}.weights.npz" for s in (one, two))
        assert pa.read_bytes() == pb.read_bytes()
        assert a["weights_sha256"] == b["weights_sha256"]
    assert len({r["weights_sha256"] for r in one}) == 4  # the comparison can see a difference


@pytest.mark.parametrize("index", range(4), ids=lambda i: ["ideal-0", "ideal-3",
                                                           "hw_aware-0", "hw_aware-3"][i])
def test_cli_api_and_scan_give_the_same_weights_and_metrics(scans, tmp_path, index):
    point = load_spec(SPEC).expand()[index]
    record = scans[2][index]
    assert record["id"] == point.id
    cfg = point.config
    api = relaxsim.run(cfg, out=tmp_path / "api")
    assert main(["run", "--out", str(tmp_path / "cli"), "--quiet",
                 "--set", "network.hidden=8", "--set", "training.epochs=2",
                 "--set", "training.batch_size=16",
                 "--set", f'hardware.mode="{cfg.hardware.mode}"',
                 "--set", f"training.seed={cfg.training.seed}"]) == 0
    cli = json.loads((tmp_path / "cli" / "result.json").read_text())
    assert cli["config"] == cfg.to_dict()  # the same config reached by both roads
    weights = (tmp_path / "api" / "weights.npz").read_bytes()
    assert (tmp_path / "cli" / "weights.npz").read_bytes() == weights
    assert (scans[2].out / "points" / f"{point.id}.weights.npz").read_bytes() == weights
    assert metrics(cli) == metrics(api) == metrics(record["result"])
    assert json.loads((tmp_path / "api" / "result.json").read_text())["seconds"] == api["seconds"]
    assert epochs(tmp_path / "cli" / "metrics.csv") == epochs(tmp_path / "api" / "metrics.csv")
    if cfg.hardware.mode == "hardware_aware":  # the machine's noise is in play, and seeded
        assert api["hardware"]["programming_events"] > 0
