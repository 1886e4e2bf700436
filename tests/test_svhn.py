"""The svhn task: the official ``.mat`` layout, the ``.npy`` cache, splits, features, streaming,
learning, and every bad input (as a one-line DataError, and through the CLI)."""

from __future__ import annotations

import json
import os
import tracemalloc

import numpy as np
import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.data.svhn import SVHN, cache_paths, load_images, read_mat
from relaxsim.data.tasks import load_task
from relaxsim.errors import ConfigError, DataError
from relaxsim.model import build
from relaxsim.training.loop import train
from tests.datafiles import leftovers, svhn_arrays, write_mat, write_svhn


def svhn_cfg(path, **overrides):
    return relaxsim.load_config(overrides={"task.name": "svhn", "task.path": str(path),
                                           **overrides})


@pytest.fixture(scope="module")
def svhn_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("svhn")
    arrays = write_svhn(directory, (("train", 60), ("test", 30), ("extra", 20)))
    return directory, arrays


@pytest.fixture
def fresh_dir(tmp_path):
    """A private copy of small SVHN files (tests that write or check the cache)."""
    arrays = write_svhn(tmp_path / "svhn", (("train", 40), ("test", 20)))
    return tmp_path / "svhn", arrays


# -- the file format -------------------------------------------------------------------------


def test_read_mat_layout_and_label_mapping(tmp_path):
    X, y, _ = svhn_arrays(12, np.random.default_rng(3), digits=[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 9])
    assert y[0, 0] == 10 and y[1, 0] == 1  # SVHN's convention: 10 is digit 0
    X_read, digits = read_mat(write_mat(tmp_path / "t.mat", X=X, y=y))
    np.testing.assert_array_equal(X_read, X)
    assert digits.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 9]


def test_load_images_is_sample_major(fresh_dir):
    directory, arrays = fresh_dir
    X, _, digits = arrays["train"]
    images, labels = load_images(directory / "train_32x32.mat")
    assert images.shape == (40, 32, 32, 3) and images.dtype == np.uint8
    for k in (0, 7, 39):
        np.testing.assert_array_equal(images[k], X[..., k])
    np.testing.assert_array_equal(labels, digits)


def test_cache_is_written_once_and_reused(fresh_dir):
    directory, _ = fresh_dir
    mat = directory / "train_32x32.mat"
    x_path, y_path = cache_paths(mat)
    assert not x_path.exists()
    first = load_images(mat)
    assert x_path.is_file() and y_path.is_file() and leftovers(directory) == []
    stamp = x_path.stat().st_mtime_ns
    again = load_images(mat)
    assert isinstance(again[0], np.memmap)  # read from the cache, memory-mapped
    assert x_path.stat().st_mtime_ns == stamp  # not rewritten
    np.testing.assert_array_equal(again[0], first[0])
    np.testing.assert_array_equal(again[1], first[1])


def test_cache_is_rebuilt_when_the_mat_file_is_newer(fresh_dir):
    directory, _ = fresh_dir
    mat = directory / "train_32x32.mat"
    load_images(mat)
    X, y, digits = svhn_arrays(40, np.random.default_rng(99))
    write_mat(mat, X=X, y=y)
    later = cache_paths(mat)[0].stat().st_mtime_ns + 10**9
    os.utime(mat, ns=(later, later))
    images, labels = load_images(mat)
    np.testing.assert_array_equal(images[5], X[..., 5])
    np.testing.assert_array_equal(labels, digits)


def test_failed_cache_write_leaves_nothing_behind(fresh_dir, monkeypatch):
    directory, arrays = fresh_dir

    def broken_fsync(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("relaxsim.io.os.fsync", broken_fsync)
    images, labels = load_images(directory / "train_32x32.mat")  # still works, uncached
    np.testing.assert_array_equal(images[3], arrays["train"][0][..., 3])
    assert leftovers(directory) == []
    assert sorted(p.name for p in directory.iterdir()) == ["test_32x32.mat", "train_32x32.mat"]


# -- splits ----------------------------------------------------------------------------------


def test_splits_sizes_and_no_overlap(svhn_dir):
    directory, arrays = svhn_dir
    data = load_task(svhn_cfg(directory))
    assert data.sizes() == {"train": 51, "val": 9, "test": 30}  # val = round(60 * 0.15)
    train_rows = data._where["train"][1]
    val_rows = data._where["val"][1]
    assert set(train_rows).isdisjoint(val_rows)
    assert sorted([*train_rows, *val_rows]) == list(range(60))
    np.testing.assert_array_equal(data.labels("test"), arrays["test"][2])
    np.testing.assert_array_equal(data.labels("val"), arrays["train"][2][val_rows])


def test_split_is_fixed_by_the_seed(svhn_dir):
    directory, _ = svhn_dir
    val = load_task(svhn_cfg(directory))._where["val"][1]
    assert np.array_equal(val, load_task(svhn_cfg(directory))._where["val"][1])
    other = load_task(svhn_cfg(directory, **{"task.split_seed": 1}))._where["val"][1]
    assert not np.array_equal(val, other)


def test_extra_split_joins_training(svhn_dir):
    directory, arrays = svhn_dir
    data = load_task(svhn_cfg(directory, **{"task.train_set": "train+extra"}))
    assert data.sizes() == {"train": 51 + 20, "val": 9, "test": 30}
    np.testing.assert_array_equal(data.labels("train")[51:], arrays["extra"][2])
    # a batch that spans both files keeps the order of its indices
    idx = np.array([60, 0, 70, 3])
    images = data.images("train", idx)
    train_rows = data._where["train"][1]
    np.testing.assert_array_equal(images[0], arrays["extra"][0][..., 9])
    np.testing.assert_array_equal(images[1], arrays["train"][0][..., train_rows[0]])
    np.testing.assert_array_equal(images[2], arrays["extra"][0][..., 19])
    np.testing.assert_array_equal(images[3], arrays["train"][0][..., train_rows[3]])


# -- features --------------------------------------------------------------------------------


@pytest.mark.parametrize("overrides, n_inputs", [
    ({}, 3072),
    ({"task.color": "gray"}, 1024),
    ({"task.downsample": 2}, 768),
    ({"task.color": "gray", "task.downsample": 4}, 64),
    ({"task.projection": "random", "task.projected_inputs": 40}, 40),
    ({"task.projection": "pca", "task.projected_inputs": 12, "task.downsample": 4}, 12),
])
def test_input_dimension_and_standardised_batches(svhn_dir, overrides, n_inputs):
    directory, _ = svhn_dir
    cfg = svhn_cfg(directory, **overrides)
    assert SVHN.info(cfg.task).n_inputs == n_inputs and SVHN.info(cfg.task).n_classes == 10
    assert build(cfg).param_counts()["input"] == cfg.network.hidden * n_inputs
    data = load_task(cfg)
    assert data.info.n_inputs == n_inputs
    x = data.batch("train", np.arange(data.size("train")), np.float64)
    assert x.shape == (51, n_inputs) and x.flags.c_contiguous
    np.testing.assert_allclose(x.mean(axis=0), 0, atol=0.35 if "task.projection" in overrides
                               else 1e-9)
    if "task.projection" not in overrides:
        varying = x.std(axis=0) > 0
        np.testing.assert_allclose(x.std(axis=0)[varying], 1, rtol=1e-9)
    assert data.batch("val", np.arange(3), np.float32).dtype == np.float32


def test_grayscale_and_downsampling_values():
    from relaxsim.data.images import raw_features

    images = np.zeros((1, 32, 32, 3), np.uint8)
    images[0, :2, :2] = [[[10, 20, 30], [10, 20, 30]], [[50, 60, 70], [50, 60, 70]]]
    gray = raw_features(images, "gray", 2)
    assert gray.shape == (1, 256)
    assert gray[0, 0] == pytest.approx(0.299 * 30 + 0.587 * 40 + 0.114 * 50)
    rgb = raw_features(images, "rgb", 1)
    assert rgb[0, :3].tolist() == [10, 20, 30]  # (row, column, channel) order


def test_pca_whitens_the_training_features(svhn_dir):
    directory, _ = svhn_dir
    cfg = svhn_cfg(directory, **{"task.projection": "pca", "task.projected_inputs": 8,
                                 "task.downsample": 4})
    data = load_task(cfg)
    x = data.batch("train", np.arange(51))
    np.testing.assert_allclose(x.T @ x / 51, np.eye(8), atol=1e-8)
    again = load_task(cfg).batch("train", np.arange(51))
    np.testing.assert_array_equal(x, again)  # deterministic, signs included


# -- streaming -------------------------------------------------------------------------------


def test_dataset_holds_the_images_as_uint8_only(svhn_dir):
    directory, _ = svhn_dir
    data = load_task(svhn_cfg(directory, **{"task.train_set": "train+extra"}))
    for segs in data._segments.values():
        for seg in segs:
            assert seg.images.dtype == np.uint8
    features = data.features
    assert features.mean.shape == features.std.shape == (3072,) and features.projection is None


def test_training_never_holds_a_float_copy(tmp_path):
    """One epoch plus validation allocates far less than one float64 copy of the images."""
    directory = tmp_path / "svhn"
    write_svhn(directory, (("train", 1200), ("test", 20)))
    cfg = svhn_cfg(directory, **{"training.epochs": 1, "network.hidden": 8,
                                 "task.val_fraction": 0.05})
    data = load_task(cfg)
    net = build(cfg, data.info)
    float_copy = data.size("train") * 3072 * 8
    train(cfg, net, data, quiet=True)  # first: numba compiles the kernels (not the data's memory)
    tracemalloc.start()
    try:
        train(cfg, net, data, quiet=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < float_copy / 4, (peak, float_copy)


# -- learning --------------------------------------------------------------------------------


def test_a_few_epochs_learn_above_chance(svhn_dir, tmp_path):
    directory, _ = svhn_dir
    cfg = svhn_cfg(directory, **{"training.epochs": 10, "network.hidden": 32,
                                 "training.lr": 0.005})
    result = relaxsim.run(cfg, out=tmp_path / "run")
    assert result["test_accuracy"] > 0.5  # chance: 0.1
    assert result["task"] == {"name": "svhn", "n_inputs": 3072, "n_classes": 10,
                              "sizes": {"train": 51, "val": 9, "test": 30}}
    assert "test_bits_per_char" not in result
    saved = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    assert saved["test_accuracy"] == result["test_accuracy"]


def test_cli_run_on_svhn(svhn_dir, tmp_path, capsys):
    directory, _ = svhn_dir
    status = main(["run", "--quiet", "--out", str(tmp_path / "out"), "--set", "task.name=svhn",
                   "--set", f"task.path={directory}", "--set", "training.epochs=2",
                   "--set", "network.hidden=8", "--set", "task.color=gray"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.splitlines()[0].startswith("ReLaX-Net on svhn: N = 8")


# -- bad input -------------------------------------------------------------------------------


def bad_mat(tmp_path, **arrays):
    directory = tmp_path / "bad"
    write_svhn(directory, (("test", 10),))
    write_mat(directory / "train_32x32.mat", **arrays)
    return directory


def _good(n=10):
    X, y, _ = svhn_arrays(n, np.random.default_rng(0))
    return X, y


BAD_FILES = {
    "no-X": (lambda: {"y": _good()[1]},
             "train_32x32.mat': has no variable 'X' (found: y); not an SVHN cropped-digits file"),
    "no-y": (lambda: {"X": _good()[0], "labels": _good()[1]},
             "has no variable 'y' (found: X, labels)"),
    "X-wrong-shape": (lambda: {"X": _good()[0][:, :, :2], "y": _good()[1]},
                      "X must have shape (32, 32, 3, n) (got (32, 32, 2, 10))"),
    "X-three-dims": (lambda: {"X": _good()[0][..., 0], "y": _good()[1]},
                     "X must have shape (32, 32, 3, n) (got (32, 32, 3))"),
    "y-wrong-length": (lambda: {"X": _good()[0], "y": _good(12)[1]},
                       "y must have shape (n, 1) with n = 10 images (got (12, 1))"),
    "label-0": (lambda: {"X": _good()[0], "y": np.zeros((10, 1), np.uint8)},
                "labels must be 1..10, 10 for digit 0 (got 0)"),
    "label-11": (lambda: {"X": _good()[0], "y": np.full((10, 1), 11.0)},
                 "labels must be 1..10, 10 for digit 0 (got 11.0)"),
    "pixels-out-of-range": (lambda: {"X": _good()[0] * 2.0, "y": _good()[1]},
                            "X must hold 8-bit pixel values 0..255 (got dtype float64)"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_mat_file_is_a_one_line_error(case, tmp_path):
    arrays, fragment = BAD_FILES[case]
    directory = bad_mat(tmp_path, **arrays())
    with pytest.raises(DataError) as info:
        load_task(svhn_cfg(directory))
    message = str(info.value)
    assert fragment in message and "\n" not in message
    assert message.startswith(f"SVHN file '{directory / 'train_32x32.mat'}': ")
    assert not cache_paths(directory / "train_32x32.mat")[0].exists()  # nothing cached
    assert leftovers(directory) == []


def test_not_a_mat_file(tmp_path):
    directory = tmp_path / "bad"
    write_svhn(directory, (("test", 10),))
    (directory / "train_32x32.mat").write_bytes(b"<html>404 Not Found</html>")
    with pytest.raises(DataError, match="32.mat': not a readable MATLAB .mat file") as info:
        load_task(svhn_cfg(directory))
    assert "relaxsim data download svhn" in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_files_name_the_remedy(tmp_path):
    with pytest.raises(DataError) as info:
        load_task(svhn_cfg(tmp_path))
    assert str(info.value) == (
        f"task.path: SVHN files train_32x32.mat, test_32x32.mat not found in '{tmp_path}'; get "
        "them with `relaxsim data download svhn` or set task.path to the directory holding them")


def test_missing_extra_file_names_the_extra_option(tmp_path):
    write_svhn(tmp_path, (("train", 20), ("test", 10)))
    with pytest.raises(DataError, match="SVHN file extra_32x32.mat not found in .*"
                                        "`relaxsim data download svhn --extra`"):
        load_task(svhn_cfg(tmp_path, **{"task.train_set": "train+extra"}))


def test_default_location_is_the_cache_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("RELAXSIM_DATA", str(tmp_path / "cache"))
    cfg = relaxsim.load_config(overrides={"task.name": "svhn"})
    with pytest.raises(DataError, match=f"not found in '{tmp_path / 'cache' / 'svhn'}'"):
        load_task(cfg)
    write_svhn(tmp_path / "cache" / "svhn", (("train", 20), ("test", 10)))
    assert load_task(cfg).sizes() == {"train": 17, "val": 3, "test": 10}


def test_path_that_is_a_file(tmp_path):
    target = tmp_path / "train_32x32.mat"
    target.write_bytes(b"x")
    with pytest.raises(DataError, match="task.path: must be the directory holding "
                                        "train_32x32.mat and test_32x32.mat for task svhn"):
        load_task(svhn_cfg(target))


def test_too_few_images_for_a_validation_split(tmp_path):
    write_svhn(tmp_path, (("train", 1), ("test", 3)))
    with pytest.raises(DataError, match="1 images are too few to carve a validation split"):
        load_task(svhn_cfg(tmp_path))


@pytest.mark.parametrize("overrides, message", [
    ({"task.downsample": 3}, "task.downsample: must be one of 1, 2, 4 (got 3)"),
    ({"task.color": "grey"}, "task.color: must be one of rgb, gray (got 'grey')"),
    ({"task.projection": "svd"}, "task.projection: must be one of none, random, pca (got 'svd')"),
    ({"task.projected_inputs": 0}, "task.projected_inputs: must be >= 1 (got 0)"),
    ({"task.train_set": "extra"},
     "task.train_set: must be one of train, train+extra (got 'extra')"),
    ({"task.projection": "pca", "task.projected_inputs": 1025, "task.color": "gray"},
     "task.projected_inputs: must be <= the 1024 inputs before the projection (got 1025)"),
])
def test_bad_task_keys(overrides, message):
    with pytest.raises(ConfigError) as info:
        relaxsim.load_config(overrides={"task.name": "svhn", **overrides})
    assert str(info.value).startswith(message)


def test_projected_inputs_is_only_checked_with_a_projection():
    cfg = relaxsim.load_config(overrides={"task.name": "svhn", "task.projected_inputs": 5000})
    assert cfg.task.projected_inputs == 5000


# -- bad input through the command line -------------------------------------------------------


def run_cli(argv, capsys):
    capsys.readouterr()
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_one_line_error(status, out, err, *fragments):
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relaxsim: error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


def test_cli_missing_files(tmp_path, capsys):
    status, out, err = run_cli(["run", "--quiet", "--out", tmp_path / "out", "--set",
                                "task.name=svhn", "--set", f"task.path={tmp_path}"], capsys)
    assert_one_line_error(status, out, err, "task.path: SVHN files", "not found",
                          "`relaxsim data download svhn`")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case", ["no-X", "label-11", "X-wrong-shape"])
def test_cli_bad_mat_file(case, tmp_path, capsys):
    arrays, fragment = BAD_FILES[case]
    directory = bad_mat(tmp_path, **arrays())
    status, out, err = run_cli(["run", "--quiet", "--out", tmp_path / "out", "--set",
                                "task.name=svhn", "--set", f"task.path={directory}"], capsys)
    assert_one_line_error(status, out, err, fragment)
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in directory.iterdir()) == ["test_32x32.mat", "train_32x32.mat"]


def test_cli_bad_task_key(capsys):
    status, out, err = run_cli(["config", "--set", "task.downsample=3"], capsys)
    assert_one_line_error(status, out, err, "task.downsample: must be one of 1, 2, 4 (got 3)")


@pytest.mark.parametrize("case", ["missing", "label-11"])
def test_real_process_exits_2_without_traceback(case, tmp_path):
    import subprocess
    import sys

    if case == "missing":
        directory, fragment = tmp_path, "`relaxsim data download svhn`"
    else:
        arrays, fragment = BAD_FILES[case]
        directory = bad_mat(tmp_path, **arrays())
    proc = subprocess.run(
        [sys.executable, "-m", "relaxsim", "run", "--quiet", "--out", str(tmp_path / "out"),
         "--set", "task.name=svhn", "--set", f"task.path={directory}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relaxsim: error: ") and fragment in lines[0]
    assert not (tmp_path / "out").exists()
