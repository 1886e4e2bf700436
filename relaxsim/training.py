"""Minibatch training with analytical gradients, validation-based model selection and metrics."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np
from tqdm.auto import tqdm

from .config import Config
from .model import Network
from .optim import OPTIMIZERS
from .tasks import Dataset


@dataclass
class TrainResult:
    """The best parameters (by validation accuracy) and what training measured on the way."""

    params: dict[str, np.ndarray]
    best_epoch: int
    metrics: list[dict[str, float]] = field(default_factory=list)


def batches(n: int, batch_size: int, rng: np.random.Generator):
    """Shuffled index batches covering ``range(n)`` once; the last batch may be shorter."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train(cfg: Config, net: Network, data: Dataset, quiet: bool = False) -> TrainResult:
    """Train ``net`` on ``data`` as ``cfg.training`` says; deterministic for a given seed.

    One generator, seeded by ``training.seed``, draws the initial weights and then every shuffle.
    """
    tc = cfg.training
    rng = np.random.default_rng(tc.seed)
    params = net.init_params(rng)
    opt = OPTIMIZERS.get(tc.optimizer)(params, lr=tc.lr, momentum=tc.momentum)
    x_train = np.ascontiguousarray(data.x_train, dtype=net.dtype)
    n = len(data.y_train)
    best = TrainResult(params={k: v.copy() for k, v in params.items()}, best_epoch=0)
    best_acc = -1.0
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(range(1, tc.epochs + 1), desc="training", unit="epoch", disable=not show,
               leave=False)
    for epoch in bar:
        t0 = time.perf_counter()
        loss_sum = 0.0
        for idx in batches(n, tc.batch_size, rng):
            loss, grads = net.loss_and_grad(params, x_train[idx], data.y_train[idx])
            opt.step(params, grads)
            loss_sum += loss * len(idx)
        train_loss = loss_sum / n
        val_loss, val_acc = net.evaluate(params, data.x_val, data.y_val)
        best.metrics.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                             "val_accuracy": val_acc, "seconds": time.perf_counter() - t0})
        if val_acc > best_acc:
            best_acc = val_acc
            best.params = {k: v.copy() for k, v in params.items()}
            best.best_epoch = epoch
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}")
    bar.close()
    return best
