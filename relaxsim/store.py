"""The results store of a scan: a directory with the spec and one JSON file per point.

::

    DIR/scan.toml              the spec, self-contained (base inlined); `relaxsim scan DIR` resumes
    DIR/points/<id>.json       one point: id, status (done or failed), fields, labels, and the
                               result dict of relaxsim.run (done) or config, error and traceback

``<id>`` is :func:`relaxsim.scanspec.config_id` of the point's resolved config. Files are written
atomically (temporary file, fsync, rename), so a killed scan leaves whole files or none. A file that
cannot be read, or whose content does not belong to its name, is reported as a warning and treated
as missing (and moved aside to ``<id>.json.corrupt`` when the point is recomputed).
"""

from __future__ import annotations

import csv
import io
import json
import os
import warnings
from pathlib import Path
from typing import Any, Iterable

from .config import validate
from .errors import RelaxsimError
from .io import write_json, write_text
from .scanspec import Point, ScanSpec, config_id, load_spec

SPEC_FILE = "scan.toml"
POINTS_DIR = "points"
STATUSES = ("done", "failed")


class ScanWarning(UserWarning):
    """Something in a scan store is wrong but the scan can go on (e.g. a corrupt result file)."""


class Store:
    """A scan's results directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.points_dir = self.root / POINTS_DIR

    # -- the spec -----------------------------------------------------------------------------

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_FILE

    def exists(self) -> bool:
        return self.spec_path.is_file()

    def spec(self) -> ScanSpec:
        """The spec the store keeps; an error if the directory is not a scan store."""
        if not self.exists():
            raise RelaxsimError(f"{self.root}: not a scan directory (no {SPEC_FILE}); "
                                "run `relaxsim scan SCAN.toml --out DIR` first")
        return load_spec(self.spec_path)

    def attach(self, spec: ScanSpec, points: list[Point]) -> int:
        """Make this directory the store of ``spec``, creating it if need be.

        A directory holding another scan is refused unless ``spec`` extends it: every point of
        the stored spec is a point of ``spec`` (more grid values, seeds or points). The stored
        spec is then replaced by ``spec``. Returns the number of points added by the extension.
        """
        if self.root.exists() and not self.root.is_dir():
            raise RelaxsimError(f"--out {str(self.root)!r}: is a file, not a directory")
        if not self.exists():
            if self.root.is_dir() and any(self.root.iterdir()):
                raise RelaxsimError(
                    f"--out {str(self.root)!r}: not empty and not a scan directory (no "
                    f"{SPEC_FILE}); choose a new or empty directory")
            self.points_dir.mkdir(parents=True, exist_ok=True)
            write_text(self.spec_path, spec.to_toml())
            return 0
        stored = self.spec()
        if stored.to_dict() == spec.to_dict():
            self.points_dir.mkdir(exist_ok=True)
            return 0
        old = {p.id for p in stored.expand()}
        new = {p.id for p in points}
        if not old <= new:
            raise RelaxsimError(
                f"{self.root}: holds another scan ({len(old - new)} of its {len(old)} points are "
                f"not in {spec.source}); choose another --out, or extend the stored spec "
                f"({self.spec_path}) without removing points")
        self.points_dir.mkdir(exist_ok=True)
        write_text(self.spec_path, spec.to_toml())
        return len(new - old)

    # -- the points ---------------------------------------------------------------------------

    def path(self, pid: str) -> Path:
        return self.points_dir / f"{pid}.json"

    def load(self, pid: str, then: str = "it will be recomputed") -> dict | None:
        """The record of point ``pid``, or None when missing or corrupt (with a warning)."""
        path = self.path(pid)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            return self._corrupt(path, f"cannot read it: {exc}", then)
        try:
            record = json.loads(text)
        except json.JSONDecodeError as exc:
            return self._corrupt(path, f"invalid JSON: {exc}", then)
        problem = _check_record(record, pid)
        return self._corrupt(path, problem, then) if problem else record

    def _corrupt(self, path: Path, problem: str, then: str) -> None:
        warnings.warn(f"{path}: corrupt result file ({problem}); {then}", ScanWarning,
                      stacklevel=3)
        return None

    def set_aside(self, pid: str) -> None:
        """Move a corrupt file out of the way (kept for inspection as ``<id>.json.corrupt``)."""
        path = self.path(pid)
        if path.exists():
            os.replace(path, path.with_name(path.name + ".corrupt"))

    def save(self, record: dict) -> None:
        write_json(self.path(record["id"]), record)

    def status(self, points: Iterable[Point], then: str = "counted as missing"
               ) -> dict[str, list[tuple[Point, dict | None]]]:
        """``{"done": [...], "failed": [...], "missing": [...]}`` of ``(point, record)`` pairs."""
        out: dict[str, list] = {"done": [], "failed": [], "missing": []}
        for point in points:
            record = self.load(point.id, then)
            out[record["status"] if record else "missing"].append((point, record))
        return out

    def strays(self, points: Iterable[Point]) -> list[Path]:
        """Result files in the store that belong to no point of the spec."""
        ids = {p.id for p in points}
        if not self.points_dir.is_dir():
            return []
        return sorted(p for p in self.points_dir.glob("*.json") if p.stem not in ids)


def _check_record(record: Any, pid: str) -> str:
    """What is wrong with a stored record, or ``""``."""
    if not isinstance(record, dict):
        return "not a JSON object"
    if record.get("id") != pid:
        return f"its id {record.get('id')!r} is not its file name"
    status = record.get("status")
    if status not in STATUSES:
        return f"status {status!r} is not done or failed"
    if status == "done":
        result = record.get("result")
        if not isinstance(result, dict) or not isinstance(result.get("config"), dict):
            return "no result with its config"
        config = result["config"]
    else:
        if not isinstance(record.get("error"), str):
            return "a failed point without its error"
        config = record.get("config")
    for key in ("fields", "labels"):
        if not isinstance(record.get(key), dict):
            return f"no {key}"
    try:
        if config_id(validate(config)) != pid:
            return "its config does not hash to its file name"
    except (RelaxsimError, TypeError, AttributeError, ValueError) as exc:
        return f"its config is invalid ({exc})"
    return ""


# -- export -----------------------------------------------------------------------------------

def flatten_metrics(result: dict, prefix: str = "") -> dict[str, Any]:
    """The scalar entries of a result dict, nested dicts flattened (``params.total``,
    ``hardware.latency_s``); the config (given by the varied fields) and lists are left out."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if not prefix and key == "config":
            continue
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif value is None or isinstance(value, (bool, int, float, str)):
            out[name] = value
    return out


def csv_text(records: list[dict]) -> str:
    """One row per record: id, status, labels, varied fields, metrics, error."""
    def cell(value):
        if isinstance(value, (list, dict)):
            return json.dumps(value, separators=(",", ":"))
        return "" if value is None else value

    rows = []
    for rec in records:
        row = {"id": rec["id"], "status": rec["status"]}
        row.update(rec.get("labels", {}))
        row.update(rec.get("fields", {}))
        row.update(flatten_metrics(rec.get("result") or {}))
        if rec.get("error"):
            row["error"] = rec["error"].splitlines()[0] if rec["error"] else ""
        rows.append({k: cell(v) for k, v in row.items()})
    columns = list(dict.fromkeys(k for row in rows for k in row))
    if "error" in columns:  # last, after every metric
        columns.remove("error")
        columns.append("error")
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def export_csv(records: list[dict], path: str | Path) -> Path:
    """Write :func:`csv_text` of ``records`` to ``path`` atomically."""
    path = Path(path)
    write_text(path, csv_text(records))
    return path
