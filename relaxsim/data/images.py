"""Image datasets streamed from uint8 arrays: the fixed feature map and the minibatch source.

A large image set (SVHN with its extra split: about 600,000 images of 32x32x3 bytes) stays in its
uint8 form, memory-mapped from disk; :class:`Features` turns the images of one minibatch into the
network's float inputs (grayscale, downsampling, standardisation with training statistics, an
optional fixed projection). No float copy of the whole data set is ever made: the statistics and
the projection are computed in passes over chunks of :data:`CHUNK_ROWS` images.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import scipy.linalg

from relaxsim.data.tasks import Dataset, TaskInfo, check_split

GRAY_WEIGHTS = np.array([0.299, 0.587, 0.114])  # ITU-R BT.601 luma from R, G, B
CHUNK_ROWS = 2048  # images per chunk in statistics passes: bounds the float temporaries (~50 MB)
PROJECTION_FIT_IMAGES = 10_000  # the projection is fitted on at most this many training images
MIN_STD = 1e-8  # features with a smaller spread in the training split are only centred


def raw_features(images: np.ndarray, color: str, downsample: int) -> np.ndarray:
    """Float64 features ``(B, D0)`` of uint8 images ``(B, H, W, 3)``: luma if ``color = "gray"``,
    ``downsample x downsample`` blocks averaged, flattened in (row, column, channel) order."""
    x = images.astype(np.float64)
    if color == "gray":
        x = (x @ GRAY_WEIGHTS)[..., None]
    if downsample > 1:
        B, H, W, C = x.shape
        k = downsample
        x = x.reshape(B, H // k, k, W // k, k, C).mean(axis=(2, 4))
    return x.reshape(len(x), -1)


def n_raw_features(shape: tuple[int, int, int], color: str, downsample: int) -> int:
    """The number of features :func:`raw_features` gives for images of ``shape`` (H, W, C)."""
    H, W, C = shape
    return (H // downsample) * (W // downsample) * (1 if color == "gray" else C)


@dataclass(frozen=True)
class Features:
    """The fixed map from uint8 images to network inputs, fitted on the training split.

    ``z = (raw - mean) / std``; with a ``projection`` matrix ``(D0, P)``, the inputs are
    ``z @ projection``, whose columns are scaled so that every input has unit variance on the
    training images it was fitted on.
    """

    color: str
    downsample: int
    mean: np.ndarray
    std: np.ndarray
    projection: np.ndarray | None = None

    @property
    def n_inputs(self) -> int:
        return len(self.mean) if self.projection is None else self.projection.shape[1]

    def standardised(self, images: np.ndarray) -> np.ndarray:
        return (raw_features(images, self.color, self.downsample) - self.mean) / self.std

    def __call__(self, images: np.ndarray, dtype=np.float64) -> np.ndarray:
        z = self.standardised(images)
        if self.projection is not None:
            z = z @ self.projection
        return np.ascontiguousarray(z, dtype=dtype)


@dataclass(frozen=True)
class Segment:
    """Rows ``rows`` of one uint8 image array ``(n, H, W, C)`` with its labels ``(n,)``."""

    images: np.ndarray
    labels: np.ndarray
    rows: np.ndarray


class ImageDataset(Dataset):
    """Splits made of segments of uint8 image arrays (one split may span several files).

    Holds the uint8 images (memory-mapped where they come from a cache file), the labels and the
    index maps; :meth:`batch` gathers a minibatch's images and applies the :class:`Features`.
    """

    def __init__(self, name: str, info: TaskInfo, splits: dict[str, list[Segment]],
                 features: Features):
        self.name, self.info, self.features = name, info, features
        self._segments = {s: list(segs) for s, segs in splits.items()}
        self._labels, self._where = {}, {}
        for split, segs in self._segments.items():
            self._labels[split] = np.concatenate([s.labels[s.rows] for s in segs]).astype(np.int64)
            which = np.concatenate([np.full(len(s.rows), i, np.int64) for i, s in enumerate(segs)])
            self._where[split] = (which, np.concatenate([s.rows for s in segs]))

    def labels(self, split: str) -> np.ndarray:
        return self._labels[check_split(split)]

    def images(self, split: str, idx: np.ndarray) -> np.ndarray:
        """The uint8 images ``(B, H, W, C)`` of the samples ``idx`` of ``split``, in order."""
        segs = self._segments[check_split(split)]
        which, rows = self._where[split]
        idx = np.asarray(idx, dtype=np.int64)
        out = np.empty((len(idx), *segs[0].images.shape[1:]), dtype=np.uint8)
        for i, seg in enumerate(segs):
            mask = which[idx] == i
            if mask.any():
                out[mask] = seg.images[rows[idx[mask]]]
        return out

    def batch(self, split: str, idx: np.ndarray, dtype=np.float64) -> np.ndarray:
        return self.features(self.images(split, idx), dtype)


# -- fitting the features on the training split ------------------------------------------------


def fit_features(data: ImageDataset, color: str, downsample: int, projection: str,
                 n_projected: int, rng: np.random.Generator) -> Features:
    """Fit the standardisation on all training images, then the projection (``"none"``,
    ``"random"`` or ``"pca"``) on at most :data:`PROJECTION_FIT_IMAGES` of them drawn with ``rng``.

    ``data`` is the dataset to fit on; its own features are not used.
    """
    n = data.size("train")
    total = total_sq = 0.0
    for start in range(0, n, CHUNK_ROWS):
        raw = raw_features(data.images("train", np.arange(start, min(start + CHUNK_ROWS, n))),
                           color, downsample)
        total = total + raw.sum(axis=0)
        total_sq = total_sq + np.square(raw).sum(axis=0)
    mean = total / n
    std = np.sqrt(np.maximum(total_sq / n - mean * mean, 0.0))
    std[std < MIN_STD] = 1.0
    features = Features(color, downsample, mean, std)
    if projection == "none":
        return features
    fit_rows = np.sort(rng.choice(n, size=min(n, PROJECTION_FIT_IMAGES), replace=False))
    if projection == "random":
        matrix = rng.standard_normal((len(mean), n_projected))
    elif projection == "pca":
        matrix = _principal_axes(data, features, fit_rows, n_projected)
    else:
        raise ValueError(f"projection: must be one of none, random, pca (got {projection!r})")
    # Scale each column to unit variance over the fitting images (for PCA: whitening).
    second = np.zeros(n_projected)
    for start in range(0, len(fit_rows), CHUNK_ROWS):
        z = features.standardised(data.images("train", fit_rows[start:start + CHUNK_ROWS]))
        second += np.square(z @ matrix).sum(axis=0)
    scale = np.sqrt(second / len(fit_rows))
    scale[scale < MIN_STD] = 1.0
    return dataclasses.replace(features, projection=matrix / scale)


def _principal_axes(data, features, rows, n_axes) -> np.ndarray:
    """The ``n_axes`` leading eigenvectors ``(D0, n_axes)`` of the second-moment matrix of the
    standardised features of ``rows``; each column's largest entry made positive (a fixed sign)."""
    D0 = len(features.mean)
    moment = np.zeros((D0, D0))
    for start in range(0, len(rows), CHUNK_ROWS):
        z = features.standardised(data.images("train", rows[start:start + CHUNK_ROWS]))
        moment += z.T @ z
    # Only the leading pairs (LAPACK's MRRR driver): several times faster than a full eigh.
    _, vectors = scipy.linalg.eigh(moment, subset_by_index=[D0 - n_axes, D0 - 1], driver="evr")
    axes = vectors[:, ::-1]  # by descending eigenvalue
    signs = np.sign(axes[np.argmax(np.abs(axes), axis=0), np.arange(n_axes)])
    return axes * np.where(signs == 0, 1.0, signs)
