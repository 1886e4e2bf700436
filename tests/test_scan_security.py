"""Only the scan's own processes get into its cluster: a local cluster that relaxsim starts speaks
TLS with credentials made for it, refuses every client without them (no task of theirs runs) and
serves relaxsim's own; ``--address`` with TLS credentials from options or Dask's configuration;
the option errors, one line and exit status 2, before anything connects."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest
import tomli_w

distributed = pytest.importorskip("distributed")
pytest.importorskip("cryptography")  # Security.temporary() makes its key pair with it

import dask  # noqa: E402
from distributed import Client, Security  # noqa: E402

from relaxsim.cli.app import main  # noqa: E402
from relaxsim.errors import RelaxsimError  # noqa: E402
from relaxsim.scans import execute  # noqa: E402
from relaxsim.scans.execute import connect, local_cluster, scan, tls_security  # noqa: E402

TIMEOUT_S = 60  # no test waits longer than this for a cluster or a result
REFUSE_S = 3  # a connection attempt that should fail is given this long
TINY = {"network": {"hidden": 8}, "training": {"epochs": 1}, "hardware": {"mode": "ideal"}}
NO_TLS_CONFIG = {"distributed.comm.tls.ca-file": None, "distributed.comm.tls.client.cert": None,
                 "distributed.comm.tls.client.key": None,
                 "distributed.client.security-loader": None}
# what distributed raises for a connection that fails: the comm's errors are OSErrors
# (CommClosedError, FatalCommClosedError), ssl.SSLError too; a client without any TLS context
# for a tls:// address is refused before it sends a byte (TypeError)
REFUSED = (OSError, TimeoutError, ssl.SSLError, TypeError)


@pytest.fixture(scope="module")
def cluster():
    """A local cluster as relaxsim starts it (one worker process), closed at the end."""
    with local_cluster(1) as c:
        yield c


@pytest.fixture(scope="module")
def own(cluster):
    """relaxsim's own client of it, as the scan makes it."""
    with Client(cluster, timeout=TIMEOUT_S, security=cluster.security) as c:
        c.wait_for_workers(1, timeout=TIMEOUT_S)
        yield c


def host_port(address: str) -> tuple[str, int]:
    host, port = address.split("://", 1)[1].rsplit(":", 1)
    return host, int(port)


def pem_files(directory: Path, security: Security, ca: str | None = None) -> dict[str, Path]:
    """``security``'s client certificate and key (and ``ca``, default its own CA) as files."""
    files = {"ca": directory / "ca.pem", "cert": directory / "client.pem",
             "key": directory / "client.key"}
    files["ca"].write_text(ca or security.tls_ca_file)
    files["cert"].write_text(security.tls_client_cert)
    files["key"].write_text(security.tls_client_key)
    return files


def touch(path: str) -> str:
    Path(path).touch()
    return path


def intrude(address: str, security, marker: Path) -> None:
    """Connect as an outsider and try to run ``touch(marker)``: must raise before it runs."""
    with dask.config.set(NO_TLS_CONFIG):
        c = Client(address, timeout=REFUSE_S, security=security)
    try:  # not reached when refused; if it is, the test fails below
        c.submit(touch, str(marker), pure=False).result(timeout=REFUSE_S)
    finally:
        c.close()


def test_the_local_cluster_listens_on_tls_only(cluster, own):
    assert cluster.scheduler_address.startswith("tls://127.0.0.1:")
    assert cluster.security.require_encryption
    workers = own.scheduler_info()["workers"]
    assert len(workers) == 1 and all(a.startswith("tls://") for a in workers)


def test_relaxsims_own_clients_run_tasks(cluster, own):
    assert own.submit(pow, 2, 10, pure=False).result(timeout=TIMEOUT_S) == 1024
    # connect() finds the credentials of a cluster this process started
    with connect(cluster.scheduler_address) as c:
        assert c.submit(pow, 3, 3, pure=False).result(timeout=TIMEOUT_S) == 27


def _foreign_cert(tmp_path: Path, cluster) -> Security:
    """The cluster's (public) CA, but a certificate and key of another CA."""
    foreign = Security.temporary()
    files = pem_files(tmp_path, foreign, ca=cluster.security.tls_ca_file)
    return Security(tls_ca_file=str(files["ca"]), tls_client_cert=str(files["cert"]),
                    tls_client_key=str(files["key"]), require_encryption=True)


@pytest.mark.parametrize("who", ["plain tcp", "no security", "other temporary", "other cert"])
def test_a_client_without_the_credentials_is_refused_and_runs_nothing(cluster, own, tmp_path,
                                                                      who):
    marker = tmp_path / "intruder-ran"
    address = cluster.scheduler_address
    security = None
    if who == "plain tcp":  # the same port, without TLS
        address = "tcp://" + address.split("://", 1)[1]
    elif who == "other temporary":
        security = Security.temporary()
    elif who == "other cert":  # the server itself must turn the certificate down
        security = _foreign_cert(tmp_path, cluster)
    clients_before = set(cluster.scheduler.clients)
    with pytest.raises(REFUSED):
        intrude(address, security, marker)
    assert not marker.exists()
    assert set(cluster.scheduler.clients) == clients_before  # no client joined
    assert not [k for k in cluster.scheduler.tasks if "touch" in str(k)]
    # and the cluster still serves its own client
    assert own.submit(pow, 2, 3, pure=False).result(timeout=TIMEOUT_S) == 8


@pytest.mark.parametrize("with_cert", [False, True])
def test_a_tls_handshake_without_the_clusters_certificate_fails(cluster, tmp_path, with_cert):
    """Below Dask: a TLS client that trusts any server, with no certificate or another CA's, gets
    an alert from the scheduler, not a connection."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    if with_cert:
        files = pem_files(tmp_path, Security.temporary())
        context.load_cert_chain(files["cert"], files["key"])
    with pytest.raises((ssl.SSLError, OSError)):
        with socket.create_connection(host_port(cluster.scheduler_address), timeout=REFUSE_S) \
                as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"\0" * 16)
            if not tls.recv(16):  # closed without an alert: refused all the same
                raise ConnectionResetError("closed by the scheduler")


def test_connect_with_tls_credentials_from_files_or_dask_config(cluster, tmp_path, monkeypatch):
    files = pem_files(tmp_path, cluster.security)
    address = cluster.scheduler_address
    # not found among this process's clusters: the credentials must come from elsewhere
    monkeypatch.delitem(execute._OWN_CLUSTERS, address)
    with dask.config.set(NO_TLS_CONFIG):
        with pytest.raises(RelaxsimError, match="--tls-ca-file and --tls-cert"):
            connect(address)
        security = tls_security(files["ca"], files["cert"], files["key"])
        with connect(address, security=security) as c:
            assert c.submit(pow, 5, 2, pure=False).result(timeout=TIMEOUT_S) == 25
    with dask.config.set({"distributed.comm.tls.ca-file": str(files["ca"]),
                          "distributed.comm.tls.client.cert": str(files["cert"]),
                          "distributed.comm.tls.client.key": str(files["key"])}):
        with connect(address) as c:  # the Client reads Dask's configuration itself
            assert c.submit(pow, 7, 2, pure=False).result(timeout=TIMEOUT_S) == 49


def test_connect_with_another_clusters_credentials_is_one_line(cluster, tmp_path):
    files = pem_files(tmp_path, Security.temporary())
    security = tls_security(files["ca"], files["cert"], files["key"])
    with pytest.raises(RelaxsimError) as err:
        connect(cluster.scheduler_address, timeout_s=REFUSE_S, security=security)
    message = str(err.value)
    assert "\n" not in message and "TLS handshake failed" in message


def test_the_command_line_runs_a_scan_with_the_tls_options(cluster, own, tmp_path, capsys,
                                                           monkeypatch):
    files = pem_files(tmp_path, cluster.security)
    monkeypatch.delitem(execute._OWN_CLUSTERS, cluster.scheduler_address)
    spec = tmp_path / "tiny.toml"
    spec.write_text(tomli_w.dumps({"base": TINY}), encoding="utf-8")
    with dask.config.set(NO_TLS_CONFIG):
        assert main(["scan", str(spec), "--out", str(tmp_path / "s"), "--quiet",
                     "--address", cluster.scheduler_address, "--tls-ca-file", str(files["ca"]),
                     "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]) == 0
    assert "1 done, 0 failed" in capsys.readouterr().out


# -- the options' errors: one line, exit status 2, nothing stored, nothing connected ------------

@pytest.fixture
def spec(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(tomli_w.dumps({"base": TINY}), encoding="utf-8")
    return path


@pytest.fixture
def pems(tmp_path) -> dict[str, Path]:
    directory = tmp_path / "pems"
    directory.mkdir()
    return pem_files(directory, Security.temporary())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_line_error(capsys, argv: list[str]) -> str:
    with dask.config.set(NO_TLS_CONFIG):
        assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("relaxsim: error: ") and captured.err.count("\n") == 1, \
        captured.err
    return captured.err


def test_a_tls_address_without_credentials_names_the_options(spec, tmp_path, capsys,
                                                              monkeypatch):
    address = f"tls://127.0.0.1:{_free_port()}"
    monkeypatch.setattr(distributed, "Client", None)  # must not even try
    err = one_line_error(capsys, ["scan", str(spec), "--out", str(tmp_path / "s"),
                                  "--address", address])
    assert f"--address {address}: a tls:// scheduler needs credentials" in err
    assert "--tls-ca-file and --tls-cert" in err and "distributed.comm.tls.ca-file" in err
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("option", ["--tls-ca-file", "--tls-cert", "--tls-key"])
@pytest.mark.parametrize("problem", ["missing", "a directory"])
def test_an_unreadable_file_names_its_option_and_path(spec, pems, tmp_path, capsys, monkeypatch,
                                                      option, problem):
    bad = tmp_path / "nowhere.pem" if problem == "missing" else tmp_path
    paths = {"--tls-ca-file": pems["ca"], "--tls-cert": pems["cert"], "--tls-key": pems["key"],
             option: bad}
    monkeypatch.setattr(distributed, "Client", None)  # checked before connecting
    err = one_line_error(capsys, ["scan", str(spec), "--out", str(tmp_path / "s"), "--address",
                                  f"tls://127.0.0.1:{_free_port()}",
                                  *[str(w) for kv in paths.items() for w in kv]])
    assert err.startswith(f"relaxsim: error: {option} {bad}: cannot be read (")
    assert not (tmp_path / "s").exists()


def test_a_file_that_is_not_pem_names_its_option(spec, pems, tmp_path, capsys):
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    address = f"tls://127.0.0.1:{_free_port()}"
    err = one_line_error(capsys, ["scan", str(spec), "--address", address, "--tls-ca-file",
                                  str(junk), "--tls-cert", str(pems["cert"])])
    assert f"--tls-ca-file {junk}: not a PEM CA certificate" in err
    err = one_line_error(capsys, ["scan", str(spec), "--address", address, "--tls-ca-file",
                                  str(pems["ca"]), "--tls-cert", str(junk)])
    assert f"--tls-cert {junk}" in err


@pytest.mark.parametrize("argv, expected", [
    (["--tls-cert", "{cert}"], "--tls-cert: for a cluster at --address"),
    (["--address", "{tls}", "--tls-cert", "{cert}"], "--tls-cert: needs --tls-ca-file too"),
    (["--address", "{tls}", "--tls-ca-file", "{ca}"], "--tls-ca-file: needs --tls-cert too"),
    (["--address", "{tls}", "--tls-ca-file", "{ca}", "--tls-key", "{key}"],
     "--tls-key: the key of --tls-cert; give --tls-cert too"),
    (["--address", "{tcp}", "--tls-ca-file", "{ca}", "--tls-cert", "{cert}", "--tls-key", "{key}"],
     "TLS credentials are for a tls:// scheduler"),
])
def test_the_options_that_go_together(spec, pems, tmp_path, capsys, argv, expected):
    values = {"cert": pems["cert"], "ca": pems["ca"], "key": pems["key"],
              "tls": f"tls://127.0.0.1:{_free_port()}", "tcp": f"tcp://127.0.0.1:{_free_port()}"}
    err = one_line_error(capsys, ["scan", str(spec), "--out", str(tmp_path / "s"),
                                  *[w.format(**values) for w in argv]])
    assert expected in err
    assert not (tmp_path / "s").exists()


def test_the_python_api_takes_security_for_an_address_only(tmp_path):
    with pytest.raises(RelaxsimError, match="security: for the scheduler at address="):
        scan({"base": TINY}, security=Security.temporary())
    assert not (tmp_path / "s").exists()


def test_the_resume_command_keeps_the_tls_options(tmp_path):
    import argparse

    from relaxsim.cli.scan import resume_command
    from relaxsim.scans.store import Store

    args = argparse.Namespace(target=str(tmp_path), workers=None, address="tls://h:8786",
                              tls_ca_file="ca.pem", tls_cert="me.pem", tls_key=None,
                              retry_failed=False, save_weights=False, quiet=True)
    assert resume_command(args, Store(tmp_path)) == (
        f"relaxsim scan {tmp_path} --address tls://h:8786 --tls-ca-file ca.pem "
        "--tls-cert me.pem --quiet")
