"""The ReLaX-Net: built from a validated config, evaluated and differentiated by the kernels.

:class:`Network` holds the built description only (sizes, schedule, activation, per-step coupling
arrays); parameters are plain dicts of arrays passed in and out, so training, checkpoints and
scripts can hold them however they like.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from relaxsim.activations import ACTIVATIONS, Activation
from relaxsim.config import Config, ConfigError
from relaxsim.data.tasks import TaskInfo, task_info
from relaxsim.hardware import Coupling
from relaxsim.kernels import passes as kernels
from relaxsim.schedules import previous_banks, resolve

EVAL_BATCH = 1024  # rows per kernel call when evaluating a whole split: bounds the tape's memory

# How the initial banks are drawn (network.init); see Network.init_params.
INITS = ("normal", "orthogonal", "identity")


def orthogonal_banks(gauss: np.ndarray) -> np.ndarray:
    """Orthogonal matrices from standard Gaussian ones ``(L, N, N)``, each its own: the ``Q`` of
    ``A = Q R`` with column ``j`` multiplied by ``sign(R[j, j])`` (Mezzadri 2007), so that ``Q``
    is Haar-distributed; in float64, with one BLAS thread (the same bytes for any thread count)."""
    from threadpoolctl import threadpool_limits

    out = np.empty(gauss.shape, dtype=np.float64)
    with threadpool_limits(limits=1, user_api="blas"):
        for k, A in enumerate(np.asarray(gauss, dtype=np.float64)):
            Q, R = np.linalg.qr(A)
            signs = np.sign(np.diag(R))
            signs[signs == 0] = 1.0  # a zero pivot (probability 0): keep the column
            out[k] = Q * signs
    return out



@dataclass(frozen=True)
class Network:
    """A ReLaX-Net of ``banks`` weight banks of width ``hidden`` reused over ``steps`` steps.

    RNN (``banks = 1``) and DNN (``banks = steps``) are the same network with other sizes.
    ``coupling`` holds the per-step arrays and transfer function the kernels run with: by
    default the ideal machine's (``a = alpha``, ``c = 1``, each step on its bank alone,
    ``tr = 1``, the textbook activation). ``init`` names how :meth:`init_params` draws the banks
    (``INITS``).
    """

    hidden: int
    banks: int
    steps: int
    schedule: np.ndarray
    activation: Activation
    input_injection: str
    alpha: float
    n_inputs: int
    n_classes: int
    dtype: np.dtype = np.dtype(np.float64)
    coupling: Coupling | None = None  # None: the ideal machine
    prev: np.ndarray = field(init=False)
    eval_batch: int = EVAL_BATCH
    init: str = "normal"

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"init: expected one of {', '.join(INITS)} (got {self.init!r})")
        set_ = object.__setattr__
        set_(self, "schedule", np.asarray(self.schedule, dtype=np.int64))
        set_(self, "prev", previous_banks(self.schedule))
        if self.coupling is None:
            set_(self, "coupling",
                 Coupling.ideal(self.steps, self.alpha, self.activation, self.dtype))

    def on(self, coupling: Coupling) -> "Network":
        """The same network on a machine with ``coupling``."""
        return replace(self, coupling=coupling)

    # -- description ---------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        """Trainable parameters: banks ``L_W (N^2 + N)``, input layer ``N D``, readout ``C (N + 1)``."""
        N, D, C = self.hidden, self.n_inputs, self.n_classes
        counts = {"banks": self.banks * (N * N + N), "input": N * D, "readout": C * N + C}
        counts["total"] = sum(counts.values())
        return counts

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        N, L, D, C = self.hidden, self.banks, self.n_inputs, self.n_classes
        return {"W_in": (N, D), "W": (L, N, N), "b": (L, N), "W_out": (C, N), "b_out": (C,)}

    def init_params(self, seed: int | np.random.Generator = 0) -> dict[str, np.ndarray]:
        """Initial parameters: zero biases, Gaussian ``W_in`` and ``W_out`` of variance 1/fan-in,
        and banks as :attr:`init` says.

        The generator draws, in this order, ``W_in`` ``(N, D)``, one standard Gaussian ``(N, N)``
        per bank (bank 0 first) and ``W_out`` ``(C, N)``, whatever the init, so ``W_in``,
        ``W_out`` and every later draw of the generator are the same for every init:

        - ``normal``: each bank is its Gaussian divided by ``sqrt(N)`` (variance 1/N);
        - ``orthogonal``: each bank is the ``Q`` of the QR decomposition of its Gaussian, its
          columns multiplied by the signs of ``diag(R)`` (Mezzadri 2007: Haar-distributed);
        - ``identity``: each bank is the identity (its Gaussian is drawn and discarded).
        """
        rng = np.random.default_rng(seed)
        N, D = self.hidden, self.n_inputs
        shapes = self.param_shapes()
        W_in = rng.standard_normal(shapes["W_in"]) / np.sqrt(D)
        gauss = rng.standard_normal(shapes["W"])  # the banks' draws, bank after bank
        if self.init == "orthogonal":
            W = orthogonal_banks(gauss)
        elif self.init == "identity":
            W = np.broadcast_to(np.eye(N), shapes["W"]).copy()
        else:
            W = gauss / np.sqrt(N)
        params = {
            "W_in": W_in,
            "W": W,
            "b": np.zeros(shapes["b"]),
            "W_out": rng.standard_normal(shapes["W_out"]) / np.sqrt(N),
            "b_out": np.zeros(shapes["b_out"]),
        }
        return {k: v.astype(self.dtype) for k, v in params.items()}

    # -- inputs --------------------------------------------------------------------------------

    def input_slots(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Arrange a batch ``x`` as kernel input slots ``(S, B, D)`` and the slot of each step.

        ``x`` is ``(B, D)`` for ``every_step`` and ``first_step``, ``(B, L_T, D)`` for ``sequence``.
        """
        x = np.asarray(x)
        T = self.steps
        if self.input_injection == "sequence":
            if x.ndim != 3 or x.shape[1:] != (T, self.n_inputs):
                raise ValueError(f"x: expected shape (batch, {T}, {self.n_inputs}) for sequence "
                                 f"input (got {x.shape})")
            return np.ascontiguousarray(x.transpose(1, 0, 2), dtype=self.dtype), np.arange(T)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise ValueError(f"x: expected shape (batch, {self.n_inputs}) (got {x.shape})")
        slot = np.zeros(T, dtype=np.int64)
        if self.input_injection == "first_step":
            slot[1:] = -1
        return np.ascontiguousarray(x[None], dtype=self.dtype), slot

    # -- evaluation ----------------------------------------------------------------------------

    def _mix(self, eps, mix):
        """The banks' mixing of a call: ``mix`` given, else a two-bank leak ``eps`` given, else
        the coupling's (``None``: the ideal machine, each step on its bank alone)."""
        if mix is not None or eps is not None:
            return mix, eps
        return self.coupling.mix, None

    def _forward(self, params, x, noise=None, det=None, eps=None, mix=None, converters=None):
        X, slot = self.input_slots(x)
        cp = self.coupling
        mix, eps = self._mix(eps, mix)
        return kernels.forward(params, X, slot, self.schedule, self.prev, cp.a, cp.c, eps,
                               cp.code, noise, dtype=self.dtype, tr=cp.tr, det=det,
                               act_params=cp.act_params, mix=mix, converters=converters)

    def forward(self, params: dict[str, np.ndarray], x: np.ndarray, noise=None,
                det=None, eps=None, mix=None, converters=None) -> np.ndarray:
        """Logits ``(B, C)`` for the batch ``x`` (with element noise ``(T, B, N)`` and detector
        noise ``(B, N)`` draws, if given, and this batch's mixing of the banks ``mix``,
        ``(T, L_W)`` or ``(T, B, L_W)``, or a two-bank leak ``eps`` into the previous bank,
        ``(T,)`` or ``(T, B)``, in place of the coupling's; ``converters``: ``(fs_in, bits_in,
        fs_out, bits_out)`` of the input DAC and the readout ADC, :func:`kernels.forward`)."""
        return self._forward(params, x, noise, det, eps, mix, converters)[0]

    def loss_and_grad(self, params, x, y, noise=None, det=None, eps=None, mix=None,
                      converters=None) -> tuple[float, dict[str, np.ndarray]]:
        """Mean cross-entropy on ``(x, y)`` and its exact gradient (keys and shapes of ``params``),
        with the noise draws (if any) held fixed; arguments as :meth:`forward`."""
        X, slot = self.input_slots(x)
        cp = self.coupling
        mix, eps = self._mix(eps, mix)
        return kernels.loss_and_grad(params, X, slot, self.schedule, self.prev, cp.a, cp.c,
                                     eps, cp.code, y, noise, dtype=self.dtype, tr=cp.tr,
                                     det=det, act_params=cp.act_params, mix=mix,
                                     converters=converters)

    def full_scales(self, params, x) -> tuple[float, float]:
        """``(max |W_in x|, max |h_T|)`` over the batch ``x`` on this network's coupling, without
        noise or converters: the full scales a DAC of the injected drive and an ADC at the
        readout are calibrated to."""
        X, _ = self.input_slots(x)
        W_in = np.ascontiguousarray(params["W_in"], dtype=self.dtype)
        drive = 0.0
        for slot in X:  # the kernels' BLAS (one thread), as the forward pass computes it
            D = np.empty((slot.shape[0], W_in.shape[0]), dtype=self.dtype)
            kernels.gemm(False, True, 1.0, np.ascontiguousarray(slot), W_in, 0.0, D)
            drive = max(drive, float(np.max(np.abs(D))))
        _, tape = self._forward(params, x)
        return drive, float(np.max(np.abs(tape.HR)))

    @staticmethod
    def score(Z, y) -> tuple[float, int]:
        """Mean cross-entropy of logits ``Z`` and the number of correct predictions."""
        return kernels.loss(Z, y)[0], int(np.sum(np.argmax(Z, axis=1) == y))

    def evaluate(self, params, x, y, batch: int | None = None) -> tuple[float, float]:
        """Mean cross-entropy and accuracy over a whole split, in chunks of ``batch`` rows."""
        batch = batch or self.eval_batch
        total_loss, correct = 0.0, 0
        for start in range(0, len(y), batch):
            yb = y[start:start + batch]
            loss, hits = self.score(self.forward(params, x[start:start + batch]), yb)
            total_loss += loss * len(yb)
            correct += hits
        return total_loss / len(y), correct / len(y)


def build(cfg: Config, info: TaskInfo | None = None) -> Network:
    """Build the network that ``cfg`` describes, sized for its task (or for ``info``)."""
    net = cfg.network
    if info is None:
        info = task_info(cfg)
    if net.input_injection == "sequence" and not getattr(info, "sequence", False):
        raise ConfigError("network.input_injection",
                          f"'sequence' needs a task whose samples are sequences "
                          f"(task.name = {cfg.task.name!r} gives one input vector per sample)",
                          "'sequence'")
    return Network(
        hidden=net.hidden,
        banks=net.banks,
        steps=net.steps,
        schedule=resolve(net.schedule, net.banks, net.steps),
        activation=ACTIVATIONS.get(net.activation, field="network.activation"),
        input_injection=net.input_injection,
        alpha=net.alpha,
        n_inputs=info.n_inputs,
        n_classes=info.n_classes,
        dtype=np.dtype(net.dtype),
        init=net.init,
    )
