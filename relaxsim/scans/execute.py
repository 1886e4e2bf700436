"""Parameter scans on Dask: every point of a spec run by ``relaxsim.run`` on a worker process.

    results = relaxsim.scan("scan.toml")                       # local worker processes
    results = relaxsim.scan("scan.toml", out="scans/s1")      # ... stored, resumable
    results = relaxsim.scan(spec, client=Client("tcp://host:8786"))   # a cluster
    results = relaxsim.scan(spec, address="tls://host:8786",            # ... over TLS
                            security=tls_security("ca.pem", "client.pem", "client.key"))
    results.to_csv("results.csv")

The same code runs every point everywhere: ``run_point`` on a Dask worker, with one numba thread
(workers must not oversubscribe the cores; results do not depend on the thread count). Without a
client, a ``LocalCluster`` of processes is started (one thread each, ``NUMBA_NUM_THREADS=1``) and
closed at the end; it speaks TLS only, with credentials made for it in memory, so that no other
user of the machine can run code in it. The driver, never a worker, writes the store, so a cluster
needs no shared file system. ``distributed`` is imported only when a scan runs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import traceback
import uuid
import warnings
import weakref
from concurrent.futures import CancelledError
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from relaxsim.config import Config
from relaxsim.errors import RelaxsimError
from relaxsim.scans.spec import Point, ScanSpec, expand, load_spec
from relaxsim.scans.store import Store, export_csv

CONNECT_TIMEOUT_S = 5.0  # an unreachable scheduler is reported after this long
WORKER_WAIT_S = 10.0  # a scheduler without workers is reported (and waited for) after this long
CLUSTER_ATTEMPTS = 3  # starts of a local cluster before giving up (a worker may die starting)
PLUGIN_NAME = "relaxsim-one-numba-thread"
PRE_SPAWN = "distributed.nanny.pre-spawn-environ"

__all__ = ["ScanResults", "connect", "local_cluster", "run_point", "scan", "tls_security"]

# the local clusters this process started, by scheduler address: their credentials exist only in
# this process's memory, and connect() finds them here
_OWN_CLUSTERS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
TLS_OPTIONS = "--tls-ca-file and --tls-cert (and --tls-key unless the key is in the cert file)"
TLS_CONFIG = "distributed.comm.tls.ca-file and distributed.comm.tls.client.cert"


class ScanResults(list):
    """The records of a scan's points in spec order (each a dict as stored), and counts."""

    def __init__(self, records, out: Path | None = None, computed: int = 0, reused: int = 0):
        super().__init__(records)
        self.out = out
        self.computed = computed  # points run by this call
        self.reused = reused  # points found in the store

    @property
    def failed(self) -> list[dict]:
        return [r for r in self if r["status"] == "failed"]

    def to_csv(self, path: str | Path) -> Path:
        """One row per point: id, status, labels, varied fields, scalar metrics, error."""
        return export_csv(list(self), path)


def run_point(cfg: Config, weights: bool = False) -> dict[str, Any]:
    """Run one point on a worker: ``relaxsim.run(cfg)`` with one numba thread, never raising.

    Returns ``{"status": "done", "result": ...}`` (with ``weights``, also ``"weights"``: the
    arrays of the ``weights.npz`` that ``relaxsim run`` writes, by name, in its order) or
    ``{"status": "failed", "error": ..., "traceback": ...}``.
    """
    import numba

    numba.set_num_threads(1)  # per calling thread in numba: set where the point runs
    from relaxsim.errors import HardwareWarning
    from relaxsim.runner import run

    try:
        with warnings.catch_warnings():  # each is in its result (hardware.warnings) and report
            warnings.simplefilter("ignore", HardwareWarning)
            return _run_point(run, cfg, weights)
    except Exception as exc:  # noqa: BLE001  (a failed point is a result, not a crash)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()}


def _run_point(run, cfg: Config, weights: bool) -> dict[str, Any]:
    if not weights:
        return {"status": "done", "result": run(cfg, quiet=True)}
    # exactly what `relaxsim run --out` writes, in a directory of the worker's own (the
    # driver, maybe on another machine, stores them)
    with tempfile.TemporaryDirectory(prefix="relaxsim-point-") as tmp:
        result = run(cfg, out=tmp, quiet=True)
        with np.load(Path(tmp) / "weights.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    return {"status": "done", "result": result, "weights": arrays}


def _one_numba_thread_plugin():
    from distributed import WorkerPlugin

    class OneNumbaThread(WorkerPlugin):
        """Workers of any cluster start numba with one thread (run_point sets it again)."""

        def setup(self, worker):
            if "numba" not in sys.modules:
                os.environ["NUMBA_NUM_THREADS"] = "1"
            else:
                import numba

                numba.set_num_threads(1)

    return OneNumbaThread()


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        return os.cpu_count() or 1


def local_cluster(workers: int | None = None):
    """A LocalCluster of ``workers`` processes (default: the usable cores), one thread each, with
    ``NUMBA_NUM_THREADS=1`` in their environment.

    Its scheduler, nannies and workers listen on loopback and speak TLS only, with a certificate
    and key made for this cluster and held in memory (``distributed.Security.temporary()``): a
    process without them, another user's say, cannot connect, so cannot run code as this user.
    A ``distributed.Client(cluster)`` takes them from ``cluster.security``, and so does
    ``connect(cluster.scheduler_address)`` in this process."""
    import dask
    from distributed import LocalCluster, Security

    n = workers or default_workers()
    if n < 1:
        raise RelaxsimError(f"--workers: must be >= 1 (got {n})")
    try:
        security = Security.temporary()
    except ImportError:
        raise RelaxsimError("the local cluster's TLS credentials need the `cryptography` "
                            "package; install it (pip install cryptography)") from None
    for attempt in range(1, CLUSTER_ATTEMPTS + 1):
        try:
            # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in their workers, which hands
            # freed arrays back to the system at once: training, allocating and freeing arrays
            # every batch, took about twice as long for it (system time; measured on the example
            # scan, 264 s against 134 s on 2 cores). Left unset here; results are the same bytes.
            with dask.config.set({f"{PRE_SPAWN}.MALLOC_TRIM_THRESHOLD_": None}), \
                    _ctrl_c_for_the_driver_only():
                # the scheduler's HTTP server on a free local port: scans side by side never
                # clash
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                       dashboard_address="127.0.0.1:0",
                                       silence_logs=logging.CRITICAL,
                                       env={"NUMBA_NUM_THREADS": "1"},
                                       security=security)
        except RuntimeError as exc:
            # a worker process that dies while the cluster starts (killed, out of memory) fails
            # the whole start; the cluster closes the others, and a new start usually succeeds
            problem = exc
            continue
        if not cluster.scheduler_address.startswith("tls://"):  # never run without TLS
            address = cluster.scheduler_address
            cluster.close()
            raise RelaxsimError(f"the local cluster listens on {address}, not on a tls:// "
                                "address; refusing to run on it")
        _OWN_CLUSTERS[cluster.scheduler_address] = cluster
        return cluster
    raise RelaxsimError(
        f"could not start {n} local worker processes in {CLUSTER_ATTEMPTS} attempts "
        f"({problem}); a script that calls relaxsim.scan must do so under "
        "`if __name__ == \"__main__\":`") from None


@contextmanager
def _ctrl_c_for_the_driver_only():
    """Hold back Ctrl-C (SIGINT) in this thread while a local cluster starts.

    The cluster's event-loop thread, started here, inherits the blocked signal, and so do the
    worker processes it spawns, now and when it replaces a dead one: Ctrl-C at the terminal,
    sent to every process of the group, then reaches the driver alone, which closes the cluster
    (each worker used to print its own traceback). A Ctrl-C pressed meanwhile is delivered to the
    driver when the cluster has started. Only the main thread handles SIGINT; elsewhere, and
    where signal masks do not exist, nothing changes."""
    if (not hasattr(signal, "pthread_sigmask")
            or threading.current_thread() is not threading.main_thread()):
        yield
        return
    from multiprocessing import resource_tracker

    # started first, here: starting it later, in the loop thread, would unblock SIGINT there
    resource_tracker.ensure_running()
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def tls_security(ca_file: str | Path, cert: str | Path, key: str | Path | None = None):
    """The ``distributed.Security`` of a client of a TLS scheduler: the CA certificate that signed
    the cluster's certificates, this client's certificate and its key (``None``: in the cert file),
    PEM files all. A file that is missing, unreadable or not PEM is a one-line error naming its
    option (``--tls-ca-file``, ``--tls-cert``, ``--tls-key``), before anything connects."""
    import ssl

    from distributed import Security

    files = {"--tls-ca-file": ca_file, "--tls-cert": cert, "--tls-key": key}
    for option, path in files.items():
        if path is None:
            continue
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            raise RelaxsimError(f"{option} {path}: cannot be read "
                                f"({exc.strerror or type(exc).__name__})") from None
    try:
        ssl.create_default_context(cafile=str(ca_file))
    except (ssl.SSLError, ValueError) as exc:
        raise RelaxsimError(f"--tls-ca-file {ca_file}: not a PEM CA certificate ({exc})") from None
    try:
        ssl.create_default_context().load_cert_chain(str(cert), None if key is None else str(key))
    except (ssl.SSLError, ValueError) as exc:
        what = (f"--tls-cert {cert}" if key is None else f"--tls-cert {cert} with --tls-key {key}")
        raise RelaxsimError(f"{what}: not a PEM certificate and its private key ({exc})") from None
    return Security(tls_ca_file=str(ca_file), tls_client_cert=str(cert),
                    tls_client_key=None if key is None else str(key), require_encryption=True)


def _scheme(address: str) -> str:
    import dask

    if "://" in address:
        return address.split("://", 1)[0]
    return dask.config.get("distributed.comm.default-scheme", "tcp") or "tcp"


def _tls_in_dask_config() -> bool:
    """Whether Dask's configuration gives a client TLS credentials (``Client`` then uses them)."""
    import dask

    return bool(dask.config.get("distributed.client.security-loader", None)
                or (dask.config.get("distributed.comm.tls.ca-file", None)
                    and dask.config.get("distributed.comm.tls.client.cert", None)))


def _client_security(address: str, security):
    """The security of a client of ``address``: ``security`` if given, else that of a local
    cluster this process started there, else ``None`` (Dask's configuration). A tls:// address
    that none of them covers, or credentials for a plain one, is a one-line error."""
    scheme = _scheme(address)
    if security is not None:
        if scheme != "tls":
            raise RelaxsimError(f"--address {address}: TLS credentials are for a tls:// "
                                "scheduler; give its tls:// address, or leave the --tls-* "
                                "options out")
        return security
    if scheme != "tls":
        return None
    own = _OWN_CLUSTERS.get(address)
    if own is not None:
        return own.security
    if _tls_in_dask_config():
        return None
    raise RelaxsimError(f"--address {address}: a tls:// scheduler needs credentials; give "
                        f"{TLS_OPTIONS}, or set {TLS_CONFIG} in Dask's configuration")


def _tls_refused(exc: BaseException) -> bool:
    """Whether ``exc``, or an exception it comes from, is a failed TLS handshake."""
    import ssl

    from distributed.comm.core import FatalCommClosedError

    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, (ssl.SSLError, FatalCommClosedError)):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S, security=None):
    """A client of the scheduler at ``address``; an unreachable one is a one-line error after
    ``timeout_s`` seconds. ``security``: a ``distributed.Security`` (e.g. ``tls_security(...)``)
    for a tls:// scheduler; without it, Dask's configuration (``distributed.comm.tls.*``), or the
    credentials of a local cluster that this process started at ``address``."""
    from distributed import Client

    security = _client_security(address, security)
    try:
        return Client(address, timeout=timeout_s, security=security)
    except ValueError as exc:  # a malformed address: missing port, unknown scheme
        problem = f"not a scheduler address ({exc}); expected e.g. tcp://HOST:8786"
    except (OSError, TimeoutError) as exc:
        problem = (f"no Dask scheduler answered within {timeout_s:g} s; start one with "
                   "`dask scheduler`, or leave --address out for local workers")
        if _scheme(address) == "tls" and _tls_refused(exc):
            reason = (str(exc).splitlines() or [""])[0][:120]
            problem = (f"the TLS handshake failed ({reason}); check {TLS_OPTIONS}, or Dask's "
                       "distributed.comm.tls.* configuration")
    except Exception as exc:  # noqa: BLE001  (something answered, but not a scheduler)
        reason = (str(exc).splitlines() or [""])[0][:120]
        problem = (f"no Dask scheduler there ({type(exc).__name__}: {reason}); check the host "
                   "and port")
    raise RelaxsimError(f"--address {address}: {problem}")


def scan(spec: str | Path | Mapping | ScanSpec, client=None, *, out: str | Path | None = None,
         workers: int | None = None, address: str | None = None, retry_failed: bool = False,
         save_weights: bool = False, quiet: bool = True, security=None) -> ScanResults:
    """Run every point of ``spec`` (a TOML path, a dict or a ScanSpec) and return their records.

    ``client``: a ``distributed.Client`` to run on; else one for ``address`` (a scheduler), else
    a local cluster of ``workers`` processes, closed at the end. ``out``: a store directory; its
    finished points are not run again, its failed ones only with ``retry_failed``. Each record is
    ``{"id", "status", "fields", "labels", "result"}`` (done) or ``{..., "config", "error",
    "traceback"}`` (failed). A failed point does not stop the scan. ``save_weights`` (or the
    spec's ``save_weights = true``, which the store then keeps): each point's weights in
    ``out/points/<id>.weights.npz``, the bytes ``relaxsim run`` writes, and their sha256 in the
    record as ``weights_sha256``. ``security``: the ``distributed.Security`` of a tls:// scheduler
    at ``address`` (e.g. ``tls_security(ca_file, cert, key)``; without it, Dask's configuration).
    The local cluster makes its own credentials (see ``local_cluster``).
    """
    if security is not None and (client is not None or not address):
        raise RelaxsimError("security: for the scheduler at address=; a client brings its own, "
                            "and the local cluster makes its own")
    spec = load_spec(spec)
    if save_weights and not spec.save_weights:
        spec = dataclasses.replace(spec, save_weights=True)
    if spec.save_weights and out is None:
        raise RelaxsimError("save_weights: the weights are kept in a store; give out=DIR")
    points, _ = expand(spec)
    owned = None
    if client is None and address:  # before touching the store: a wrong address changes nothing
        client = owned = connect(address, security=security)
    try:
        store = Store(out) if out is not None else None
        with store.session(spec, points) if store else nullcontext():
            records, todo = _stored(store, spec, points, retry_failed)
            reused = len(records)
            if todo:
                records.update(_compute(todo, store, client, workers, address, quiet,
                                        spec.save_weights))
    finally:
        if owned is not None:
            owned.close()
    return ScanResults([records[p.id] for p in points], out=store.root if store else None,
                       computed=len(todo), reused=reused)


def _stored(store: Store | None, spec: ScanSpec, points: list[Point], retry_failed: bool
            ) -> tuple[dict[str, dict], list[Point]]:
    """The records ``store`` holds for ``points``, and the points still to run."""
    if store is None:
        return {}, list(points)
    records, todo = {}, []
    for point in points:
        record = store.load(point.id, weights=spec.save_weights)
        if record is None:
            store.set_aside(point.id)  # a corrupt file, if any, is kept beside the new one
            todo.append(point)
        elif record["status"] == "failed" and retry_failed:
            todo.append(point)
        else:
            records[point.id] = record
    return records, todo


def _compute(todo: list[Point], store: Store | None, client, workers, address,
             quiet: bool, weights: bool = False) -> dict[str, dict]:
    from distributed import Client, as_completed

    owned, futures = [], {}
    try:
        if client is None:
            cluster = local_cluster(workers)
            owned.append(cluster)
            client = Client(cluster, timeout=30, security=cluster.security)
            owned.insert(0, client)
        try:
            client.register_plugin(_one_numba_thread_plugin(), name=PLUGIN_NAME)
        except OSError:
            # a worker died while the plugin went out to the workers; the scheduler keeps it for
            # the workers that join later, and run_point sets one numba thread anyway
            pass
        if address and not client.scheduler_info().get("workers"):
            _warn_no_workers(client, address)
        token = uuid.uuid4().hex[:8]
        futures = {client.submit(run_point, p.config, weights,
                                 key=f"relaxsim-point-{p.id}-{token}", pure=False): p
                   for p in todo}
        records: dict[str, dict] = {}
        with _progress(len(todo), quiet) as bar:
            for future in as_completed(futures):
                point = futures.pop(future)
                outcome = _outcome(future, address)
                record = _record(point, outcome)
                if store is not None:
                    store.save(record, outcome.get("weights"))  # the weights first
                records[point.id] = record
                bar.count(record["status"])
        return records
    finally:
        if futures and not owned:  # interrupted on a client we do not own: free its workers
            client.cancel(list(futures))
        for thing in owned:
            try:
                thing.close()
            except Exception:  # noqa: BLE001  (closing after a failure must not hide it)
                pass


def _warn_no_workers(client, address: str) -> None:
    import warnings

    from relaxsim.scans.store import ScanWarning

    try:
        client.wait_for_workers(1, timeout=WORKER_WAIT_S)
    except TimeoutError:
        warnings.warn(f"--address {address}: no workers have joined the scheduler after "
                      f"{WORKER_WAIT_S:g} s; waiting for them", ScanWarning, stacklevel=3)


def _outcome(future, address) -> dict[str, Any]:
    from distributed import KilledWorker

    try:
        return future.result()
    except KilledWorker as exc:
        return {"status": "failed",
                "error": f"KilledWorker: the workers running this point died ({exc}); "
                         "out of memory, or a crash",
                "traceback": traceback.format_exc()}
    except CancelledError:
        where = f"the scheduler at {address}" if address else "the local cluster"
        raise RelaxsimError(f"lost {where}; the points finished so far are stored, run the "
                            "scan again to resume") from None
    except Exception as exc:  # noqa: BLE001  (the worker could not even start the point)
        return {"status": "failed",
                "error": f"{type(exc).__name__}: {exc} (is the same relaxsim installed on "
                         "the workers?)",
                "traceback": traceback.format_exc()}


def _record(point: Point, outcome: dict[str, Any]) -> dict[str, Any]:
    record = {"id": point.id, "status": outcome["status"], "fields": point.fields,
              "labels": point.labels}
    if outcome["status"] == "done":
        record["result"] = outcome["result"]
    else:
        record.update(config=point.config.to_dict(), error=outcome["error"],
                      traceback=outcome["traceback"])
    # through JSON, so that a fresh record equals the one read back from the store
    return json.loads(json.dumps(record))


class _progress:
    """A tqdm bar of points with done, failed and remaining (off when quiet or not a terminal)."""

    def __init__(self, total: int, quiet: bool):
        self.total, self.done, self.failed = total, 0, 0
        self.bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="point", desc="scan", file=sys.stderr,
                            dynamic_ncols=True)
            self._postfix()

    def _postfix(self):
        self.bar.set_postfix_str(refresh=False, s=f"done {self.done}, failed {self.failed}, "
                                 f"remaining {self.total - self.done - self.failed}")

    def count(self, status: str) -> None:
        if status == "done":
            self.done += 1
        else:
            self.failed += 1
        if self.bar is not None:
            self._postfix()
            self.bar.update(1)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
