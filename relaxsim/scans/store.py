"""The results store of a scan: a directory with the spec and one JSON file per point.

::

    DIR/scan.toml              the spec, self-contained (base inlined); `relaxsim scan DIR` resumes
    DIR/points/<id>.json       one point: id, status (done or failed), fields, labels, and the
                               result dict of relaxsim.run (done) or config, error and traceback
    DIR/points/<id>.weights.npz   the point's best weights, when the spec has save_weights

``<id>`` is :func:`relaxsim.scans.spec.config_id` of the point's resolved config (quantities in SI
units); a store written before that names its points by :func:`~relaxsim.scans.spec.legacy_config_id`:
reading falls back to those names, and a scan resumed in it renames them (:meth:`Store.migrate`).
The export (:func:`csv_text`) writes quantities as SI floats under names that end in their unit
(``hardware.switch.rise_time_s``). Files are written
atomically (temporary file, fsync, rename), so a killed scan leaves whole files or none, and a
point's weights are written before its JSON, which holds their sha256: a JSON file means the point
is complete. A file that cannot be read, or whose content does not belong to its name (or weights
whose hash is not the one their JSON holds), is reported as a warning and treated as missing (and
moved aside to ``<name>.corrupt`` when the point is recomputed). One driver at a time runs a scan
in a store (:meth:`Store.session` holds a lock); the temporary files of a killed one are removed.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable

from relaxsim.config import DEVICE_KINDS, validate
from relaxsim.devices.fields import UNIT_SUFFIXES
from relaxsim.errors import RelaxsimError, RelaxsimWarning
from relaxsim.io import exclusive_lock, make_directory, write_json, write_npz, write_text
from relaxsim.scans.spec import (
    Point,
    ScanSpec,
    config_id,
    field_dimension,
    legacy_config_id,
    load_spec,
    si_value,
)

SPEC_FILE = "scan.toml"
POINTS_DIR = "points"
LOCK_FILE = ".lock"  # held (flock) by the driver running the scan; gone with its process
WEIGHTS_SUFFIX = ".weights.npz"
STATUSES = ("done", "failed")


class ScanWarning(RelaxsimWarning):
    """Something in a scan store is wrong but the scan can go on (e.g. a corrupt result file)."""


class ScanNotice(ScanWarning):
    """Something a scan did to its store that its user should know of (e.g. renamed files)."""

    LABEL = ""  # news, not a warning


class Store:
    """A scan's results directory."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.points_dir = self.root / POINTS_DIR
        self._bad: set[Path] = set()  # files load() found corrupt, for set_aside()

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
            if self.root.is_dir() and not self._unused():
                raise RelaxsimError(
                    f"--out {str(self.root)!r}: not empty and not a scan directory (no "
                    f"{SPEC_FILE}); choose a new or empty directory")
            make_directory(self.points_dir, f"--out {str(self.root)!r}")
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

    def _unused(self) -> bool:
        """True when the directory holds nothing but what a scan killed while creating the
        store may leave: an empty points directory, a lock, a temporary file."""
        for entry in self.root.iterdir():
            if entry.name == LOCK_FILE or (entry.name.startswith(".")
                                           and entry.name.endswith(".tmp")):
                continue
            if entry == self.points_dir and entry.is_dir() and not any(entry.iterdir()):
                continue
            return False
        return True

    @contextmanager
    def session(self, spec: ScanSpec, points: list[Point]):
        """:meth:`attach` ``spec``, and hold the store while a scan runs in it: another driver
        is refused (two would compute the same points), and the temporary files that a killed
        driver left behind are removed. The lock goes with the process, however it ends."""
        self.attach(spec, points)
        with _lock(self.root / LOCK_FILE):
            self.remove_temporaries()
            self.migrate(points)
            yield self

    def remove_temporaries(self) -> list[Path]:
        """Delete the half-written temporary files (``.<name>.*.tmp``) of a killed writer."""
        found = [p for d in (self.root, self.points_dir) if d.is_dir()
                 for p in d.glob(".*.tmp") if p.is_file()]
        for path in found:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
        return found

    # -- the points ---------------------------------------------------------------------------

    def path(self, pid: str) -> Path:
        return self.points_dir / f"{pid}.json"

    def weights_path(self, pid: str) -> Path:
        return self.points_dir / f"{pid}{WEIGHTS_SUFFIX}"

    def load(self, pid: str, then: str = "it will be recomputed", weights: bool = False,
             legacy: str | None = None) -> dict | None:
        """The record of point ``pid``, or None when missing or corrupt (with a warning).

        With ``weights`` (a scan that keeps them), a done point also needs its weights file,
        whole: bytes whose sha256 is the one its record holds. ``legacy``: the point's id in a
        store written before quantities were hashed in SI units (:func:`legacy_config_id`), read
        when there is no file under ``pid`` (the record is returned with ``pid`` as its id).
        """
        if legacy is not None and legacy != pid and not self.path(pid).exists() \
                and self.path(legacy).exists():
            record = self._load(legacy, then, weights, legacy_config_id)
            return None if record is None else {**record, "id": pid}
        return self._load(pid, then, weights, config_id)

    def _load(self, pid: str, then: str, weights: bool, digest) -> dict | None:
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
        problem = _check_record(record, pid, digest)
        if problem:
            return self._corrupt(path, problem, then)
        if stale := out_of_date(record):
            warnings.warn(f"{path}: {stale}; {then}", ScanWarning, stacklevel=2)
            self._bad.add(path)
            return None
        record = with_current_figures(record)
        if weights and record["status"] == "done":
            return self._check_weights(record, then)
        return record

    def _check_weights(self, record: dict, then: str) -> dict | None:
        path = self.weights_path(record["id"])
        digest = record.get("weights_sha256")
        if digest is None:
            warnings.warn(f"{self.path(record['id'])}: stored without its weights, which this "
                          f"scan keeps; {then}", ScanWarning, stacklevel=3)
            return None
        try:
            found = sha256_file(path)
        except FileNotFoundError:
            warnings.warn(f"{path}: missing; {then}", ScanWarning, stacklevel=3)
            return None
        except OSError as exc:
            return self._corrupt(path, f"cannot read it: {exc}", then, "weights")
        if found != digest:
            return self._corrupt(path, "its sha256 is not the one its result file holds",
                                 then, "weights")
        return record

    def _corrupt(self, path: Path, problem: str, then: str, what: str = "result") -> None:
        warnings.warn(f"{path}: corrupt {what} file ({problem}); {then}", ScanWarning,
                      stacklevel=3)
        self._bad.add(path)
        return None

    def set_aside(self, pid: str) -> None:
        """Move the corrupt files of point ``pid`` that :meth:`load` found out of the way (kept
        for inspection as ``<name>.corrupt``); its whole files stay until they are replaced."""
        for path in (self.path(pid), self.weights_path(pid)):
            if path in self._bad:
                self._bad.discard(path)
                if path.exists():
                    os.replace(path, path.with_name(path.name + ".corrupt"))

    def save(self, record: dict, weights: dict | None = None) -> None:
        """Store ``record``; with ``weights`` (arrays by name), write them first, atomically,
        and put their sha256 into ``record`` (the JSON, written last, marks the point done)."""
        if weights is not None:
            path = self.weights_path(record["id"])
            write_npz(path, weights)
            record["weights_sha256"] = sha256_file(path)
        write_json(self.path(record["id"]), record)

    def migrate(self, points: Iterable[Point]) -> int:
        """Rename the points stored under their :func:`legacy_config_id` (a store written before
        quantities were hashed in SI units) to their ids; returns how many, with one notice.

        Point by point, each step atomic, so that a migration killed at any moment is finished
        by the next one: the weights (if any) move first, then the record is written under its
        new name, then the old record goes. A corrupt old record stays (a warning; the point runs
        again). Needs the store's lock (:meth:`session` calls it)."""
        moved = 0
        for point in points:
            old = legacy_config_id(point.config)
            if old == point.id or not self.path(old).exists():
                continue
            if self.path(point.id).exists():  # the rename was done, the old record not removed
                self.path(old).unlink(missing_ok=True)
                self.weights_path(old).unlink(missing_ok=True)
                continue
            record = self._load(old, "the point will be run again", False, legacy_config_id)
            if record is None:
                continue
            if self.weights_path(old).exists():
                os.replace(self.weights_path(old), self.weights_path(point.id))
            write_json(self.path(point.id), {**record, "id": point.id})
            self.path(old).unlink()
            moved += 1
        if moved:
            warnings.warn(ScanNotice(
                f"{self.root}: {moved} stored point{'s' if moved != 1 else ''} renamed from the "
                "ids of an earlier version to ids that hash quantities in SI units (\"3.5 ps\" "
                "and 3.5e-12 are one point); nothing is run again"), stacklevel=2)
        return moved

    def status(self, points: Iterable[Point], then: str = "counted as missing",
               weights: bool = False) -> dict[str, list[tuple[Point, dict | None]]]:
        """``{"done": [...], "failed": [...], "missing": [...]}`` of ``(point, record)`` pairs
        (a done point whose weights the scan keeps but are missing or corrupt is missing)."""
        out: dict[str, list] = {"done": [], "failed": [], "missing": []}
        for point in points:
            record = self.load(point.id, then, weights, legacy_config_id(point.config))
            out[record["status"] if record else "missing"].append((point, record))
        return out

    def holds(self, point: Point) -> bool:
        """Whether a result file of ``point`` is stored, under its id or (a store not yet
        migrated) its :func:`legacy_config_id`; read or not."""
        return any(self.path(pid).is_file()
                   for pid in (point.id, legacy_config_id(point.config)))

    def strays(self, points: Iterable[Point]) -> list[Path]:
        """Result files in the store that belong to no point of the spec."""
        ids = {i for p in points for i in (p.id, legacy_config_id(p.config))}
        if not self.points_dir.is_dir():
            return []
        return sorted(p for p in self.points_dir.glob("*.json") if p.stem not in ids)


def sha256_file(path: Path) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _lock(path: Path):
    """The lock of the store whose lock file is ``path`` (see :func:`relaxsim.io.exclusive_lock`)."""
    return exclusive_lock(path, lambda holder: (
        f"{path.parent}: a scan is running in this store ({holder}); wait for it to finish, "
        "or choose another --out"))


def read_point_file(path: Path) -> tuple[dict | None, str]:
    """A stored point's record read from ``path`` and checked as a scan checks it (its id is
    its file name, under the current ids or those of earlier stores): ``(record, "")``, or
    ``(None, what is wrong)``."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"cannot read it ({exc})"
    problem = _check_record(record, path.stem)
    if problem == "its config does not hash to its file name":
        problem = _check_record(record, path.stem, legacy_config_id)
    problem = problem or out_of_date(record)
    return (None, problem) if problem else (with_current_figures(record), "")


# Results that a later version computes differently, by the version that fixed them: a point
# stored before is run again. 0.2.0: the active element's carry-over with a leak alpha > 0
# (a_t = rho + (1 - rho) alpha, was alpha + rho) on every machine but the ideal mode's. 0.3.0:
# the signal physics (leak into every bank, coherent fields, MZI response, both sides' loss, the
# active presets' noise from the power budget) on every machine but the ideal mode's.
FIXED_IN = (
    ((0, 2, 0), "the carry-over fix of 0.2.0",
     lambda cfg: cfg.get("network", {}).get("alpha", 0) > 0
     and cfg.get("hardware", {}).get("mode") != "ideal"),
    ((0, 3, 0), "the signal physics of 0.3.0",
     lambda cfg: cfg.get("hardware", {}).get("mode") != "ideal"),
    # 0.4.0: the weight elements as built (the thermo-optic mesh, PCM statistics, wear, a write
    # settled to half a level) change every machine's weights but the ideal mode's
    ((0, 4, 0), "the weight elements of 0.4.0",
     lambda cfg: cfg.get("hardware", {}).get("mode") != "ideal"),
)


def with_current_figures(record: dict) -> dict:
    """A done record of a version before :data:`relaxsim.runner.FIGURES_SINCE` with its
    machine's figures worked out by this one (:func:`relaxsim.runner.refigured`: timing,
    devices, energy, training cost; its accuracies as stored); any other record as it is. The
    file is not rewritten."""
    result = record.get("result")
    if record.get("status") != "done" or not isinstance(result, dict) \
            or not all(key in result for key in ("config", "task", "epochs")):
        return record  # nothing to work them out from
    from relaxsim.runner import FIGURES_SINCE, refigured

    if _version(result) >= FIGURES_SINCE:
        return record
    try:
        return {**record, "result": refigured(result)}
    except (RelaxsimError, KeyError, TypeError, ValueError) as exc:
        warnings.warn(f"point {record.get('id')}: its machine figures could not be worked out "
                      f"again ({exc}); kept as relaxsim {result.get('relaxsim_version')} wrote "
                      "them", ScanWarning, stacklevel=3)
        return record


def _version(result: dict) -> tuple:
    try:
        return tuple(int(part) for part in str(result.get("relaxsim_version", "0"))
                     .split(".")[:3])
    except ValueError:
        return (0,)


def out_of_date(record: dict) -> str:
    """Why a checked record's result is out of date (``""`` when it is not)."""
    result = record.get("result")
    if record.get("status") != "done" or not isinstance(result, dict):
        return ""
    version = str(result.get("relaxsim_version", "0"))
    number = _version(result)
    for fixed, fix, affects in FIXED_IN:
        if number < fixed and affects(result["config"]):
            return (f"written by relaxsim {version}, before {fix}, which changes this point's "
                    "results")
    return ""


def _check_record(record: Any, pid: str, digest=config_id) -> str:
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
        accuracy = result.get("test_accuracy")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)):
            return "no test accuracy in its result"
        if not isinstance(result.get("hardware", {}), dict):
            return "its result's hardware is not a table"
        config = result["config"]
    else:
        if not isinstance(record.get("error"), str):
            return "a failed point without its error"
        config = record.get("config")
    for key in ("fields", "labels"):
        if not isinstance(record.get(key), dict):
            return f"no {key}"
    try:
        if digest(validate(config)) != pid:
            return "its config does not hash to its file name"
    except (RelaxsimError, TypeError, AttributeError, ValueError) as exc:
        return f"its config is invalid ({exc})"
    return ""


# -- export -----------------------------------------------------------------------------------

def flatten_metrics(result: dict, prefix: str = "") -> dict[str, Any]:
    """The entries of a result dict, nested dicts flattened (``params.total``,
    ``hardware.latency_s``); a list (one value per step, say) is one entry, which the export
    writes as a JSON array in one cell. The config (given by the varied fields) is left out."""
    out: dict[str, Any] = {}
    for key, value in result.items():
        name = f"{prefix}{key}"
        if not prefix and key == "config":
            continue
        if isinstance(value, dict):
            out.update(flatten_metrics(value, name + "."))
        elif value is None or isinstance(value, (bool, int, float, str, list)):
            out[name] = value
    return out


# the unit a column name ends in, by dimension (the suffixes of the device records' fields)
UNIT_SUFFIX = {dimension: suffix for suffix, dimension in UNIT_SUFFIXES.items()}


def field_column(name: str) -> str:
    """The export column of the config field ``name``: a quantity's name ends in its SI unit
    (``hardware.switch.rise_time_s``, ``hardware.clock_s``); any other field keeps its name."""
    return name + UNIT_SUFFIX.get(field_dimension(name), "")


def export_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """A point's varied fields as export columns: a quantity as its SI float under
    :func:`field_column` (``"3.5 ps"`` -> ``hardware.switch.rise_time_s = 3.5e-12``; the clock's
    ``"auto"`` stays), a device table as one column per key (``hardware.switch.preset``, ...)."""
    out: dict[str, Any] = {}
    for name, value in fields.items():
        section, _, key = name.partition(".")
        if section == "hardware" and key in DEVICE_KINDS and isinstance(value, (str, dict)):
            table = {"preset": value} if isinstance(value, str) else value
            out.update(export_fields({f"{name}.{k}": v for k, v in table.items()}))
        else:
            out[field_column(name)] = si_value(name, value)
    return out


def csv_text(records: list[dict]) -> str:
    """One row per record: id, status, labels, varied fields (:func:`export_fields`), metrics
    (:func:`flatten_metrics`; lists as JSON arrays), error."""
    def cell(value):
        if isinstance(value, (list, dict)):
            return json.dumps(value, separators=(",", ":"))
        return "" if value is None else value

    rows = []
    for rec in records:
        row = {"id": rec["id"], "status": rec["status"]}
        row.update(rec.get("labels", {}))
        row.update(export_fields(rec.get("fields", {})))
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
