"""Minibatch training with analytical gradients, validation-based model selection and metrics."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from tqdm.auto import tqdm

from relaxsim.config import Config
from relaxsim.data.tasks import Dataset
from relaxsim.errors import RelaxsimError
from relaxsim.kernels import passes as kernels
from relaxsim.model import EVAL_BATCH, Network
from relaxsim.training.engine import Engine
from relaxsim.training.optim import OPTIMIZERS, LearningRate, clip_gradients


class DivergedError(RelaxsimError, FloatingPointError):
    """The loss or the weights became NaN or infinite; no result file is written."""


@dataclass
class TrainResult:
    """The best parameters (by validation accuracy) and what training measured on the way."""

    params: dict[str, np.ndarray]
    best_epoch: int
    metrics: list[dict[str, float]] = field(default_factory=list)


@dataclass
class TrainState:
    """Everything training carries from one epoch to the next: what a checkpoint saves.

    (The machine's state lives in the engines; see ``Engine.state``. The optimizer step count
    that sets the learning rate is not kept: it follows from ``epoch`` and the batches per
    epoch.)
    """

    epoch: int                      # epochs done
    params: dict[str, np.ndarray]   # the current weights
    rng: np.random.Generator        # drew the initial weights; draws every shuffle
    optimizer: object               # an OPTIMIZERS entry, with its moments
    best: TrainResult               # best weights so far, and the metrics of every epoch done
    best_accuracy: float            # validation accuracy of ``best`` (-1 before the first epoch)


def initial_state(cfg: Config, net: Network) -> TrainState:
    """The state before the first epoch: one generator, seeded by ``training.seed``, draws the
    initial weights (and later every shuffle)."""
    tc = cfg.training
    rng = np.random.default_rng(tc.seed)
    params = net.init_params(rng)
    opt = OPTIMIZERS.get(tc.optimizer)(params, lr=tc.lr, momentum=tc.momentum,
                                       weight_decay=tc.weight_decay)
    best = TrainResult(params={k: v.copy() for k, v in params.items()}, best_epoch=0)
    return TrainState(epoch=0, params=params, rng=rng, optimizer=opt, best=best,
                      best_accuracy=-1.0)


def batches(n: int, batch_size: int, rng: np.random.Generator):
    """Shuffled index batches covering ``range(n)`` once; the last batch may be shorter."""
    order = rng.permutation(n)
    for start in range(0, n, batch_size):
        yield order[start:start + batch_size]


def train(cfg: Config, net: Network, data: Dataset, quiet: bool = False,
          engines: tuple[Engine, Engine] | None = None, state: TrainState | None = None,
          after_epoch: Callable[[TrainState], None] | None = None) -> TrainResult:
    """Train ``net`` on ``data`` as ``cfg.training`` says; deterministic for a given seed.

    ``engines`` (for training, for validation) run the network on a machine (default: ideal).
    ``state`` continues an interrupted training (default: :func:`initial_state`); training ends
    with the same bytes as an uninterrupted one when the engines hold the state they had.
    ``after_epoch(state)`` is called after every epoch (the runner writes checkpoints there).
    A loss, or a weight after an optimizer step, that is NaN or infinite raises
    :class:`DivergedError` naming the epoch and the batch.

    Each step's gradients are clipped to the global norm ``training.clip_norm`` (unless
    ``"inf"``), and the optimizer steps with the rate :class:`LearningRate` gives for its step
    ``t = (epoch - 1) * batches_per_epoch + batch - 1`` (``training.schedule``,
    ``training.warmup`` epochs); it applies ``training.weight_decay`` itself.
    """
    train_engine, val_engine = engines or (Engine(net), Engine(net))
    tc = cfg.training
    state = state or initial_state(cfg, net)
    params, best = state.params, state.best
    y_train = data.labels("train")
    n = len(y_train)
    per_epoch = -(-n // tc.batch_size)  # batches (optimizer steps) per epoch
    rate = LearningRate.of(tc, per_epoch)
    clip = None if tc.clip_norm == "inf" else float(tc.clip_norm)
    show = not quiet and sys.stderr.isatty()
    bar = tqdm(range(state.epoch + 1, tc.epochs + 1), desc="training", unit="epoch",
               disable=not show, leave=False, initial=state.epoch, total=tc.epochs)
    for epoch in bar:
        t0 = time.perf_counter()
        loss_sum = 0.0
        train_engine.calibrate(params, data)  # the converters' full scales, per epoch
        for batch, idx in enumerate(batches(n, tc.batch_size, state.rng), start=1):
            x = data.batch("train", idx, net.dtype)  # built per batch: no float copy of the data
            loss, grads = train_engine.loss_and_grad(params, x, y_train[idx])
            if not np.isfinite(loss):
                raise DivergedError(
                    f"training diverged at epoch {epoch}, batch {batch}: the loss is {loss}; "
                    f"try a smaller training.lr (got {tc.lr})")
            if clip is not None:
                clip_gradients(grads, clip)
            if rate.constant:  # the optimizer's own rate, as an optimizer without a schedule
                state.optimizer.step(params, grads)
            else:
                state.optimizer.step(params, grads, rate((epoch - 1) * per_epoch + batch - 1))
            _check_weights(params, epoch, batch, tc.lr)
            loss_sum += loss * len(idx)
        train_loss = float(loss_sum / n)
        val_loss, val_acc = evaluate(val_engine, params, data, "val")
        best.metrics.append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss,
                             "val_accuracy": val_acc, "seconds": time.perf_counter() - t0})
        if val_acc > state.best_accuracy:
            state.best_accuracy = val_acc
            best.params = {k: v.copy() for k, v in params.items()}
            best.best_epoch = epoch
        state.epoch = epoch
        bar.set_postfix(loss=f"{train_loss:.4f}", val_acc=f"{val_acc:.4f}")
        if after_epoch is not None:
            after_epoch(state)
    bar.close()
    return best


def _check_weights(params: dict[str, np.ndarray], epoch: int, batch: int, lr: float) -> None:
    """Raise :class:`DivergedError` when an optimizer step left a weight NaN or infinite."""
    for key, value in params.items():
        if not np.isfinite(value).all():
            bad = value[~np.isfinite(value)].flat[0]
            raise DivergedError(
                f"training diverged at epoch {epoch}, batch {batch}: the weights {key} hold "
                f"{bad} after the optimizer step; try a smaller training.lr (got {lr})")


def evaluate(engine: Engine | Network, params: dict[str, np.ndarray], data: Dataset, split: str,
             rows: int = EVAL_BATCH) -> tuple[float, float]:
    """Mean cross-entropy (nats) and accuracy of ``params`` on ``split`` of ``data``, on the
    machine of ``engine`` (a bare Network: the ideal one), computed in chunks of ``rows`` samples
    built by ``data.batch`` (a large split is never held as floats)."""
    if isinstance(engine, Network):
        engine = Engine(engine)
    engine.calibrate(params, data)
    engine.begin_evaluation(params)
    total_loss, correct, n = 0.0, 0, 0
    for x, y in data.chunks(split, rows, engine.net.dtype):
        Z = engine.logits(params, x)
        total_loss += kernels.loss(Z, y)[0] * len(y)
        correct += int(np.sum(np.argmax(Z, axis=1) == y))
        n += len(y)
    return total_loss / n, correct / n
