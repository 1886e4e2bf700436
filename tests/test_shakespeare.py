"""The shakespeare task: contiguous splits, vocabulary, one-hot sequence batches, bits per
character, learning, the input-injection requirement and every bad input."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import relaxsim
from relaxsim.cli.app import main
from relaxsim.data.tasks import load_task
from relaxsim.data.text import read_corpus, split_text
from relaxsim.errors import ConfigError, DataError
from tests.datafiles import make_text, write_text

SEQ = {"task.name": "shakespeare", "network.input_injection": "sequence"}


def text_cfg(path, **overrides):
    return relaxsim.load_config(overrides={**SEQ, "task.path": str(path), **overrides})


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    return write_text(tmp_path_factory.mktemp("text") / "input.txt")


# -- splits and vocabulary -------------------------------------------------------------------


def test_split_text_is_contiguous():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    parts = split_text(text, 0.15, 0.2)
    assert [len(parts[s]) for s in ("train", "val", "test")] == [650, 150, 200]
    assert parts["train"] + parts["val"] + parts["test"] == text
    half = split_text(text, 0.15, 0.2, text_fraction=0.5)
    assert half["train"] + half["val"] + half["test"] == text[:500]


def test_samples_come_from_their_own_part_only(text_file):
    cfg = text_cfg(text_file, **{"network.steps": 5})
    data = load_task(cfg)
    text = text_file.read_text(encoding="utf-8")
    parts = split_text(text, 0.15, 0.2)
    vocab = data.corpus.vocabulary
    for split in ("train", "val", "test"):
        part = parts[split]
        assert data.size(split) == len(part) - 5
        idx = np.array([0, data.size(split) - 1])
        windows = data.windows(split, idx)
        labels = data.labels(split)[idx]
        for w, label, start in zip(windows, labels, idx):
            assert "".join(vocab[t] for t in w) + vocab[label] == part[start:start + 6]


def test_vocabulary_comes_from_the_training_part(tmp_path):
    # "z" and "q" occur only after the training part: they share one unknown symbol
    path = write_text(tmp_path / "t.txt", "abcab cba\n" * 20 + "zzq" * 10)
    corpus = read_corpus(text_cfg(path).task)
    assert corpus.vocabulary == "\n abc"
    assert corpus.unknown and corpus.n_symbols == 6
    assert set(corpus.tokens["test"][-30:].tolist()) == {5}
    assert set(corpus.tokens["train"].tolist()) == {0, 1, 2, 3, 4}
    info = relaxsim.data.tasks.TASKS.get("shakespeare").info(text_cfg(path).task)
    assert (info.n_inputs, info.n_classes, info.sequence, info.text) == (6, 6, True, True)


def test_no_unknown_symbol_when_every_character_is_known(text_file):
    corpus = read_corpus(text_cfg(text_file).task)
    assert not corpus.unknown
    assert corpus.n_symbols == len(set(make_text())) == len(corpus.vocabulary)


def test_one_hot_batches(text_file):
    data = load_task(text_cfg(text_file, **{"network.steps": 7}))
    idx = np.array([3, 0, 100])
    x = data.batch("train", idx, np.float32)
    V = data.info.n_inputs
    assert x.shape == (3, 7, V) and x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x.sum(axis=2), 1)
    np.testing.assert_array_equal(x.argmax(axis=2), data.windows("train", idx))
    # the label is the character after the window: the first token of the window one step on
    np.testing.assert_array_equal(data.labels("train")[idx], data.windows("train", idx + 1)[:, -1])


def test_text_fraction_uses_a_prefix(text_file):
    full = load_task(text_cfg(text_file)).sizes()
    part = load_task(text_cfg(text_file, **{"task.text_fraction": 0.5})).sizes()
    assert part["train"] < full["train"] / 2 + 10 and part["train"] > full["train"] / 2 - 10


def test_directory_path_and_default_location(text_file, tmp_path, monkeypatch):
    assert load_task(text_cfg(text_file.parent)).sizes() == load_task(text_cfg(text_file)).sizes()
    monkeypatch.setenv("RELAXSIM_DATA", str(tmp_path))
    write_text(tmp_path / "shakespeare" / "input.txt")
    cfg = relaxsim.load_config(overrides=SEQ)
    assert load_task(cfg).sizes() == load_task(text_cfg(text_file)).sizes()


# -- learning and metrics --------------------------------------------------------------------


def test_a_few_epochs_learn_above_chance(text_file, tmp_path):
    cfg = text_cfg(text_file, **{"network.steps": 6, "network.banks": 3, "network.hidden": 32,
                                 "training.epochs": 2, "task.text_fraction": 0.5})
    result = relaxsim.run(cfg, out=tmp_path / "run")
    V = result["task"]["n_classes"]
    assert result["test_accuracy"] > 0.5 > 1 / V
    assert result["test_bits_per_char"] == pytest.approx(result["test_loss"] / math.log(2))
    assert result["val_bits_per_char"] == pytest.approx(result["val_loss"] / math.log(2))
    assert result["test_bits_per_char"] < math.log2(V)
    assert result["params"]["input"] == 32 * V and result["params"]["readout"] == V * 33
    saved = json.loads((tmp_path / "run" / "result.json").read_text(encoding="utf-8"))
    for key in ("test_accuracy", "test_loss", "val_accuracy", "val_loss", "train_loss",
                "best_epoch", "epochs", "params", "task", "seconds", "config",
                "test_bits_per_char", "val_bits_per_char"):
        assert key in saved


# -- the input-injection requirement ---------------------------------------------------------


@pytest.mark.parametrize("injection", ["every_step", "first_step"])
def test_shakespeare_needs_sequence_injection(injection):
    with pytest.raises(ConfigError) as info:
        relaxsim.load_config(overrides={"task.name": "shakespeare",
                                        "network.input_injection": injection})
    assert info.value.field == "network.input_injection"
    assert str(info.value) == (
        "network.input_injection: must be 'sequence' for task.name = 'shakespeare', which feeds "
        f"one character per step (got '{injection}'); set network.input_injection = \"sequence\"")


def test_shakespeare_picks_sequence_injection_when_not_set():
    """``--set task.name=shakespeare`` alone is enough; the resolved config says what was used."""
    cfg = relaxsim.load_config(overrides={"task.name": "shakespeare"})
    assert cfg.network.input_injection == "sequence"
    assert relaxsim.load_config().network.input_injection == "every_step"


def test_cli_shakespeare_with_static_injection_exits_2(capsys):
    status = main(["run", "--quiet", "--set", "task.name=shakespeare",
                   "--set", "network.input_injection=every_step"])
    out, err = capsys.readouterr()
    assert status == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith("relaxsim: error: network.input_injection: must be 'sequence'")


# -- bad input -------------------------------------------------------------------------------


def test_missing_file_names_the_remedy(tmp_path):
    with pytest.raises(DataError) as info:
        load_task(text_cfg(tmp_path / "nope.txt"))
    assert str(info.value) == (
        f"task.path: text file '{tmp_path / 'nope.txt'}' not found; get tiny Shakespeare with "
        "`relaxsim data download shakespeare` or set task.path to a plain text file")


@pytest.mark.parametrize("content, steps, fragment", [
    (b"", 4, "': is empty"),
    (b"abc", 1, "too short for the context length: the val part has 0 characters, "
                "network.steps = 1 needs at least 2"),
    ("abcdefghij" * 10, 16, "too short for the context length: the val part has 15 characters, "
                            "network.steps = 16 needs at least 17"),
    (b"ab\xff\xfecd" * 10, 1, "not UTF-8 text (byte 0xff at offset 2)"),
])
def test_bad_text(tmp_path, content, steps, fragment):
    path = tmp_path / "bad.txt"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    with pytest.raises(DataError) as info:
        load_task(text_cfg(path, **{"network.steps": steps, "network.banks": 1}))
    message = str(info.value)
    assert message.startswith(f"text file '{path}'") and fragment in message
    assert "\n" not in message


def test_text_fraction_checks():
    for bad, got in ((-0.5, "-0.5"), (1.5, "1.5")):
        with pytest.raises(ConfigError, match=rf"task\.text_fraction: must be in \(0, 1\] "
                                              rf"\(got {got}\)"):
            relaxsim.load_config(overrides={**SEQ, "task.text_fraction": bad})


@pytest.mark.parametrize("path_kind, fragment", [
    ("missing", "not found; get tiny Shakespeare with `relaxsim data download shakespeare`"),
    ("short", "too short for the context length"),
])
def test_cli_bad_text_exits_2_with_one_line(tmp_path, capsys, path_kind, fragment):
    path = tmp_path / "t.txt"
    if path_kind == "short":
        path.write_text("to be or not to be", encoding="utf-8")
    capsys.readouterr()
    status = main(["run", "--quiet", "--out", str(tmp_path / "out"),
                   "--set", "task.name=shakespeare",
                   "--set", "network.input_injection=sequence", "--set", f"task.path={path}"])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("relaxsim: error: ") and fragment in lines[0]
    assert not (tmp_path / "out").exists()
