"""Character-level text: next-character prediction from a plain text file (tiny Shakespeare).

The text (UTF-8) is cut into contiguous train, validation and test parts, in that order, so that
no character of one part appears in another part's samples. The vocabulary is the sorted set of
the training part's characters; characters of the other parts outside it share one extra
"unknown" symbol (added only when there are such characters). A sample is a window of
``L_T = network.steps`` characters, fed one per step as one-hot vectors
(``network.input_injection = "sequence"``); its label is the character that follows the window.
Every window position of a part is a sample. The one-hot inputs are built per minibatch from the
token ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from relaxsim.data.download import SOURCES
from relaxsim.data.tasks import SPLITS, Dataset, TaskInfo, check_split
from relaxsim.errors import ConfigError, DataError

TEXT_FILE = "input.txt"  # the file name in a directory given as task.path (as char-rnn names it)


def text_path(task_cfg) -> Path:
    """``task.path`` (a text file, or a directory holding ``input.txt``), or the cache's copy."""
    if not task_cfg.path:
        return SOURCES.get("shakespeare").directory() / TEXT_FILE
    path = Path(task_cfg.path).expanduser()
    return path / TEXT_FILE if path.is_dir() else path


def read_text(path: Path) -> str:
    """The text of ``path``; a missing, unreadable, non-UTF-8 or empty file is a DataError."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"task.path: text file '{path}' not found; get tiny Shakespeare with "
                        "`relaxsim data download shakespeare` or set task.path to a plain text "
                        "file") from None
    except OSError as exc:
        raise DataError(f"text file '{path}': cannot read ({exc.strerror or exc})") from None
    except ValueError as exc:  # a name the system cannot take (a NUL character)
        raise DataError(f"task.path: text file {str(path)!r}: not a valid file name "
                        f"({exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"text file '{path}': not UTF-8 text (byte {raw[exc.start]:#04x} at "
                        f"offset {exc.start})") from None
    if not text:
        raise DataError(f"text file '{path}': is empty")
    return text


def split_text(text: str, val_fraction: float, test_fraction: float,
               text_fraction: float = 1.0) -> dict[str, str]:
    """The first ``text_fraction`` of ``text`` cut into contiguous train, val and test parts."""
    text = text[:round(len(text) * text_fraction)]
    n = len(text)
    n_val, n_test = round(n * val_fraction), round(n * test_fraction)
    n_train = n - n_val - n_test
    return {"train": text[:n_train], "val": text[n_train:n_train + n_val],
            "test": text[n_train + n_val:]}


@dataclass(frozen=True)
class Corpus:
    """The token ids of each part and the vocabulary they index."""

    path: Path
    vocabulary: str  # the training characters, sorted; id i is vocabulary[i]
    unknown: bool  # whether id len(vocabulary) stands for characters outside it
    tokens: dict[str, np.ndarray]  # split -> (n,) int32

    @property
    def n_symbols(self) -> int:
        return len(self.vocabulary) + self.unknown

    def check_length(self, steps: int) -> None:
        """Every part must hold at least one sample: ``steps`` characters and the next one."""
        for split in SPLITS:
            n = len(self.tokens[split])
            if n < steps + 1:
                raise DataError(
                    f"text file '{self.path}': too short for the context length: the {split} "
                    f"part has {n} characters, network.steps = {steps} needs at least "
                    f"{steps + 1} (use a longer text, fewer steps or other task.*_fraction)")


def read_corpus(task_cfg) -> Corpus:
    """Read, split and encode the text of ``task_cfg``."""
    path = text_path(task_cfg)
    parts = split_text(read_text(path), task_cfg.val_fraction, task_cfg.test_fraction,
                       task_cfg.text_fraction)
    vocabulary = "".join(sorted(set(parts["train"])))
    ids = {ch: i for i, ch in enumerate(vocabulary)}
    unknown_id = len(vocabulary)
    tokens = {split: np.fromiter((ids.get(ch, unknown_id) for ch in part), dtype=np.int32,
                                 count=len(part))
              for split, part in parts.items()}
    unknown = any(np.any(t == unknown_id) for t in tokens.values())
    corpus = Corpus(path, vocabulary, unknown, tokens)
    corpus.check_length(1)
    return corpus


class TextDataset(Dataset):
    """Windows of ``steps`` characters and the character after each, from a :class:`Corpus`."""

    def __init__(self, name: str, corpus: Corpus, steps: int):
        corpus.check_length(steps)
        self.name, self.corpus, self.steps = name, corpus, steps
        V = corpus.n_symbols
        self.info = TaskInfo(n_inputs=V, n_classes=V, sequence=True, text=True)
        self._offsets = np.arange(steps)
        self._labels = {split: t[steps:].astype(np.int64) for split, t in corpus.tokens.items()}

    def labels(self, split: str) -> np.ndarray:
        return self._labels[check_split(split)]

    def size(self, split: str) -> int:
        return len(self.corpus.tokens[check_split(split)]) - self.steps

    def windows(self, split: str, idx: np.ndarray) -> np.ndarray:
        """The token ids ``(B, L_T)`` of the samples ``idx`` of ``split``."""
        return self.corpus.tokens[check_split(split)][np.asarray(idx)[:, None] + self._offsets]

    def batch(self, split: str, idx: np.ndarray, dtype=np.float64) -> np.ndarray:
        tokens = self.windows(split, idx)
        B, T = tokens.shape
        x = np.zeros((B, T, self.corpus.n_symbols), dtype=dtype)
        x[np.arange(B)[:, None], self._offsets, tokens] = 1
        return x


class Shakespeare:
    """Tiny Shakespeare (about 1.1 million characters): predict the next character.
    Registered by name in :mod:`relaxsim.data.tasks` (this module is imported when first used)."""

    sequence = True
    # one character per step, unless the user asked for something else (then check() refuses)
    defaults = {"network.input_injection": "sequence"}

    @classmethod
    def info(cls, task_cfg) -> TaskInfo:
        V = read_corpus(task_cfg).n_symbols
        return TaskInfo(n_inputs=V, n_classes=V, sequence=True, text=True)

    @classmethod
    def check(cls, cfg: dict) -> None:
        injection = cfg["network"]["input_injection"]
        if injection != "sequence":
            raise ConfigError("network.input_injection",
                              f"must be 'sequence' for task.name = {cfg['task']['name']!r}, "
                              "which feeds one character per step", repr(injection),
                              hint="set network.input_injection = \"sequence\"")

    @classmethod
    def load(cls, task_cfg, steps: int = 1) -> TextDataset:
        return TextDataset("shakespeare", read_corpus(task_cfg), steps)
