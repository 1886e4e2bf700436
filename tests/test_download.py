"""Downloads: file:// and a local HTTP server stand in for the official addresses (no internet
here). Checksums, atomic writes, the cache directory and ``relaxsim data``."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import socket
import threading
from pathlib import Path

import pytest

from relaxsim.cli.app import main
from relaxsim.data.download import (
    SOURCES,
    DataSource,
    RemoteFile,
    data_dir,
    download,
    fetch,
    has_digest,
)
from relaxsim.errors import DataError
from tests.datafiles import leftovers

PAYLOAD = bytes(range(256)) * 5000  # 1.28 MB: several download chunks


def md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def served(tmp_path):
    """A directory with two files, and an HTTP server on localhost serving it."""
    root = tmp_path / "server"
    root.mkdir()
    (root / "a.bin").write_bytes(PAYLOAD)
    (root / "b.txt").write_bytes(b"to be or not to be\n")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


# -- fetch -----------------------------------------------------------------------------------


def test_fetch_over_http(served, tmp_path):
    _, base = served
    dest = fetch(f"{base}/a.bin", tmp_path / "out" / "a.bin", md5(PAYLOAD))
    assert dest.read_bytes() == PAYLOAD
    assert [p.name for p in dest.parent.iterdir()] == ["a.bin"]  # no temporary file left


def test_fetch_from_a_file_url_with_sha256(served, tmp_path):
    root, _ = served
    dest = fetch((root / "b.txt").as_uri(), tmp_path / "b.txt", sha256(b"to be or not to be\n"))
    assert dest.read_bytes() == b"to be or not to be\n"


def test_checksum_mismatch_keeps_nothing(served, tmp_path):
    _, base = served
    dest = tmp_path / "out" / "a.bin"
    wrong = "md5:e26dedcc434d2e4c54c9b2d4a06d8373"
    with pytest.raises(DataError) as info:
        fetch(f"{base}/a.bin", dest, wrong)
    message = str(info.value)
    assert message == (f"download of {base}/a.bin: md5 mismatch (got "
                       f"{hashlib.md5(PAYLOAD).hexdigest()}, expected "
                       "e26dedcc434d2e4c54c9b2d4a06d8373); the file was not kept, try again")
    assert list(dest.parent.iterdir()) == []  # neither the file nor a temporary


def test_checksum_mismatch_leaves_an_earlier_file_untouched(served, tmp_path):
    _, base = served
    dest = tmp_path / "a.bin"
    dest.write_bytes(b"earlier")
    with pytest.raises(DataError, match="sha256 mismatch"):
        fetch(f"{base}/a.bin", dest, sha256(b"something else"))
    assert dest.read_bytes() == b"earlier" and leftovers(tmp_path) == []


def test_http_error_is_one_line(served, tmp_path):
    _, base = served
    with pytest.raises(DataError) as info:
        fetch(f"{base}/missing.mat", tmp_path / "out" / "m.mat", md5(b""))
    assert str(info.value).startswith(f"download of {base}/missing.mat: failed (HTTP 404 ")
    assert "\n" not in str(info.value) and not (tmp_path / "out").exists()


def test_unreachable_server_is_one_line(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DataError, match=rf"download of http://127.0.0.1:{port}/x: failed \("):
        fetch(f"http://127.0.0.1:{port}/x", tmp_path / "x", md5(b""))
    assert list(tmp_path.iterdir()) == []


# -- download: data sets, the cache directory, mirrors ---------------------------------------


@pytest.fixture
def fake_source(monkeypatch, served):
    """``svhn`` replaced by two small files with their own checksums, one of them optional."""
    root, base = served
    source = DataSource("svhn", base, (
        RemoteFile("a.bin", f"{base}/a.bin", md5(PAYLOAD), "1 MB"),
        RemoteFile("b.txt", f"{base}/b.txt", md5(b"to be or not to be\n"), "1 kB", optional=True),
    ))
    monkeypatch.setitem(SOURCES._items, "svhn", source)
    return source


def test_data_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RELAXSIM_DATA", str(tmp_path))
    assert data_dir() == tmp_path
    assert SOURCES.get("svhn").directory() == tmp_path / "svhn"
    monkeypatch.delenv("RELAXSIM_DATA")
    assert data_dir() == Path.home() / ".cache" / "relaxsim"


def test_download_into_the_cache_and_skip_when_present(fake_source, monkeypatch, tmp_path):
    monkeypatch.setenv("RELAXSIM_DATA", str(tmp_path / "cache"))
    lines = []
    paths = download("svhn", log=lines.append)
    assert paths == [tmp_path / "cache" / "svhn" / "a.bin"]  # the optional file only on request
    assert paths[0].read_bytes() == PAYLOAD
    assert lines == [f"svhn: a.bin downloaded ({len(PAYLOAD):,} bytes, md5 ok): {paths[0]}"]
    lines.clear()
    download("svhn", optional=True, log=lines.append)
    assert lines[0] == f"svhn: a.bin already present (md5 ok): {paths[0]}"
    assert lines[1].startswith("svhn: b.txt downloaded")


def test_a_corrupt_file_is_fetched_again(fake_source, tmp_path):
    (tmp_path / "a.bin").write_bytes(b"truncated")
    download("svhn", directory=tmp_path, log=lambda line: None)
    assert has_digest(tmp_path / "a.bin", md5(PAYLOAD))


def test_mirror_directory_and_url(fake_source, served, tmp_path):
    root, base = served
    download("svhn", directory=tmp_path / "one", mirror=str(root), log=lambda line: None)
    assert (tmp_path / "one" / "a.bin").read_bytes() == PAYLOAD
    download("svhn", directory=tmp_path / "two", mirror=base + "/", log=lambda line: None)
    assert (tmp_path / "two" / "a.bin").read_bytes() == PAYLOAD


def test_official_checksums_are_the_published_ones():
    files = {f.name: f for f in SOURCES.get("svhn").files}
    assert files["train_32x32.mat"].digest == "md5:e26dedcc434d2e4c54c9b2d4a06d8373"
    assert files["test_32x32.mat"].digest == "md5:eb5a983be6a315427106f1b164d9cef3"
    assert files["extra_32x32.mat"].digest == "md5:a93ce644f1a588dc4d68dda5feec44a7"
    assert files["extra_32x32.mat"].optional and not files["train_32x32.mat"].optional
    assert all(f.url == "http://ufldl.stanford.edu/housenumbers/" + f.name for f in files.values())
    (text,) = SOURCES.get("shakespeare").files
    assert text.url.endswith("karpathy/char-rnn/master/data/tinyshakespeare/input.txt")


# -- relaxsim data ---------------------------------------------------------------------------


def invoke(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def test_cli_download(fake_source, served, tmp_path, capsys):
    root, _ = served
    status, out, err = invoke(["data", "download", "svhn", "--extra", "--quiet", "--mirror", root,
                               "--dir", tmp_path / "d"], capsys)
    assert status == 0, err
    assert len(out.splitlines()) == 2 and "b.txt downloaded" in out
    assert sorted(p.name for p in (tmp_path / "d").iterdir()) == ["a.bin", "b.txt"]


def test_cli_download_checksum_mismatch(served, tmp_path, capsys):
    """The real svhn record: the served files cannot match the official md5."""
    root, _ = served
    (root / "train_32x32.mat").write_bytes(b"not the real file")
    status, out, err = invoke(["data", "download", "svhn", "--quiet", "--mirror", root,
                               "--dir", tmp_path / "d"], capsys)
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("relaxsim: error: download of ") and "train_32x32.mat: md5 " \
        "mismatch (got " in lines[0] and "expected e26dedcc434d2e4c54c9b2d4a06d8373)" in lines[0]
    assert list((tmp_path / "d").iterdir()) == []


def test_cli_download_unknown_name(capsys):
    status, out, err = invoke(["data", "download", "mnist"], capsys)
    assert status == 2 and out == ""
    assert err == "relaxsim: error: unknown data set 'mnist'; known: shakespeare, svhn\n"


def test_cli_list(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("RELAXSIM_DATA", str(tmp_path))
    (tmp_path / "shakespeare").mkdir()
    (tmp_path / "shakespeare" / "input.txt").write_bytes(b"x" * 1234)
    status, out, _ = invoke(["data", "list"], capsys)
    assert status == 0
    assert f"data directory: {tmp_path}" in out
    assert f"present, 1,234 bytes: {tmp_path / 'shakespeare' / 'input.txt'}" in out
    assert f"missing: {tmp_path / 'svhn' / 'train_32x32.mat'}" in out
    assert "with --extra" in out


def test_dataclasses_are_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SOURCES.get("svhn").name = "x"
