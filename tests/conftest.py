"""Shared helpers for the relaxsim test suite."""

from __future__ import annotations

import numpy as np
import pytest

import relaxsim.training.loop as training
from relaxsim.activations import ACTIVATIONS
from relaxsim.model import Network
from relaxsim.schedules import resolve


def make_net(banks=2, steps=4, schedule="cyclic", activation="tanh", injection="every_step",
             alpha=0.0, hidden=4, n_inputs=3, n_classes=3, dtype=np.float64) -> Network:
    """A small network built directly, without a config or a task."""
    return Network(hidden=hidden, banks=banks, steps=steps,
                   schedule=resolve(schedule, banks, steps),
                   activation=ACTIVATIONS.get(activation), input_injection=injection,
                   alpha=alpha, n_inputs=n_inputs, n_classes=n_classes, dtype=np.dtype(dtype))


def make_batch(net: Network, batch: int, rng: np.random.Generator):
    """Random inputs of the shape ``net`` expects and random labels."""
    if net.input_injection == "sequence":
        x = rng.standard_normal((batch, net.steps, net.n_inputs))
    else:
        x = rng.standard_normal((batch, net.n_inputs))
    return x, rng.integers(0, net.n_classes, batch)


def interrupt_at(monkeypatch, epoch: int, batch: int):
    """Make training raise KeyboardInterrupt in ``epoch`` after the optimizer step of ``batch``
    (mid-epoch, as a kill would land)."""
    check = training._check_weights

    def interrupting(params, e, b, lr):
        check(params, e, b, lr)
        if (e, b) == (epoch, batch):
            raise KeyboardInterrupt

    monkeypatch.setattr(training, "_check_weights", interrupting)


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


# Hypothesis (tests/test_properties.py) runs on every commit: the same examples every run
# (derandomize, and no example database), no per-example deadline (the machine may be loaded),
# a bounded number of examples per test (each test sets its own max_examples).
try:
    from hypothesis import settings as _hypothesis_settings
except ImportError:  # hypothesis is a test extra; only the property tests need it
    pass
else:
    _hypothesis_settings.register_profile("relaxsim", derandomize=True, deadline=None,
                                          max_examples=50, database=None, print_blob=False)
    _hypothesis_settings.load_profile("relaxsim")


CLUSTER_TIMEOUT_S = 120  # no test waits longer than this for a cluster


@pytest.fixture(scope="module")
def client():
    """One Dask LocalCluster per test module, started as scans start theirs (2 processes)."""
    distributed = pytest.importorskip("distributed")
    from relaxsim.scans.execute import local_cluster

    with local_cluster(2) as cluster, \
            distributed.Client(cluster, timeout=CLUSTER_TIMEOUT_S) as c:
        c.wait_for_workers(2, timeout=CLUSTER_TIMEOUT_S)
        yield c


def tls_args(client, directory) -> list[str]:
    """The ``--tls-*`` options with which a ``relaxsim scan`` subprocess connects to the TLS
    cluster of ``client`` (relaxsim's local clusters make their own credentials): its CA,
    certificate and key written as PEM files into ``directory``."""
    from pathlib import Path

    sec = client.security
    files = []
    for name, pem in (("ca", sec.tls_ca_file), ("cert", sec.tls_client_cert),
                      ("key", sec.tls_client_key)):
        path = Path(directory) / f"{name}.pem"
        path.write_text(pem)
        files.append(str(path))
    return ["--tls-ca-file", files[0], "--tls-cert", files[1], "--tls-key", files[2]]
