"""One training step (forward, backward, Adam) done three ways, for ``relaxsim bench``.

- :class:`OursStep`: relaxsim's own path, as ``relaxsim run`` trains: the network built from a
  config, its engine (ideal, or hardware-aware with every physical effect on: programming with
  quantisation, programming noise and drift, read noise, per-sample switch leak from timing jitter,
  carry-over, insertion loss, element and detector noise, the SOA transfer function) and Adam.
- :class:`TorchStep`: the same model in PyTorch on the CPU (autograd, ``torch.optim.Adam``), with
  the same effects drawn the same way (same shapes of random draws; different numbers).
- :func:`blas_products`: the matrix products such a step needs, done with numpy on the same
  shapes: the BLAS bound of the step.
"""

from __future__ import annotations

import numpy as np

INPUTS = 64
CLASSES = 10
STEPS = 8
BANKS = 4

# The machine of the "every effect on" variant: a carrier-injection switch with 10 ps jitter
# clocked before it settles (per-sample leak into the previous bank, 1 dB loss per pass), PCM
# weights (6 bits, programming and read noise, power-law drift), SOA active elements (gain saturation, ASE
# and detector noise), reprogrammed every batch.
PHYSICS = {"hardware.mode": "hardware_aware", "hardware.switch": "si_mzi_carrier",
           "hardware.weights.preset": "pcm", "hardware.clock": "60 ps",
           # explicit noise: the PCM crossbar is electrical, where 'auto' noise has no budget
           "hardware.active": {"preset": "soa", "noise": 0.02, "detector_noise": 0.01},
           "hardware.drift_time": "1 s", "hardware.update_every": 1, "hardware.weights.bits": 6}


def config(N: int, B: int, dtype: str, physics):
    """The config of a benchmark step: digits-sized inputs, ``L_T = 8``, ``L_W = 4``, cyclic;
    ``physics``: False (ideal), True (:data:`PHYSICS`, every effect on) or ``"default"`` (the
    default experiment's machine)."""
    import relaxsim

    overrides = {"network.hidden": N, "network.steps": STEPS, "network.banks": BANKS,
                 "network.schedule": "cyclic", "network.dtype": dtype,
                 "network.activation": "tanh", "training.batch_size": B,
                 "training.optimizer": "adam", "hardware.mode": "ideal"}
    if physics == "default":  # the default machine's devices (relaxsim/default.toml)
        overrides["hardware.mode"] = "hardware_aware"
    elif physics:
        overrides.update(PHYSICS)
    return relaxsim.load_config(overrides=overrides)


def data(B: int, dtype: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((B, INPUTS)).astype(dtype),
            rng.integers(0, CLASSES, B).astype(np.int64))


class OursStep:
    """relaxsim's training step: ``engine.loss_and_grad`` then ``Adam.step``."""

    def __init__(self, N: int, B: int, dtype: str, physics: bool, seed: int = 0):
        from relaxsim.assembly import assemble
        from relaxsim.data.tasks import TaskInfo
        from relaxsim.training.engine import engines_for
        from relaxsim.training.optim import OPTIMIZERS

        cfg = config(N, B, dtype, physics)
        machine = assemble(cfg, TaskInfo(n_inputs=INPUTS, n_classes=CLASSES))
        net = machine.network
        self.engine = engines_for(machine, seed)[0]
        self.params = net.init_params(seed)
        self.opt = OPTIMIZERS.get("adam")(self.params, lr=1e-3)
        self.x, self.y = data(B, dtype, seed)

    def __call__(self) -> float:
        loss, grads = self.engine.loss_and_grad(self.params, self.x, self.y)
        self.opt.step(self.params, grads)
        return loss


class TorchStep:
    """The same step in PyTorch: autograd through the unrolled network, ``torch.optim.Adam``."""

    def __init__(self, N: int, B: int, dtype: str, physics: bool, seed: int = 0):
        import torch

        from relaxsim.assembly import assemble
        from relaxsim.data.tasks import TaskInfo

        self.torch = torch
        self.td = {"float64": torch.float64, "float32": torch.float32}[dtype]
        cfg = config(N, B, dtype, physics)
        machine = assemble(cfg, TaskInfo(n_inputs=INPUTS, n_classes=CLASSES))
        net = machine.network
        params = net.init_params(seed)
        self.P = {k: torch.tensor(v, dtype=self.td, requires_grad=True)
                  for k, v in params.items()}
        self.opt = torch.optim.Adam(list(self.P.values()), lr=1e-3)
        x, y = data(B, dtype, seed)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.schedule = [int(k) for k in net.schedule]
        self.prev = [int(k) for k in net.prev]
        self.alpha = net.alpha
        self.physics = physics
        self.gen = torch.Generator().manual_seed(seed)
        if physics:
            hw, cp = machine.hardware, machine.coupling
            self.hw, self.cp = hw, cp
            self.a = [float(v) for v in cp.a]
            self.c = [float(v) for v in cp.c]
            self.tr = [float(v) for v in cp.tr]
            self.gain, self.sat, _ = cp.act_params
            w = hw.weights
            self.levels = 2 ** w.bits - 1 if np.isfinite(w.bits) else 0
            self.w_range = w.w_max
            self.prog_sigma, self.read_sigma = w.program_noise * w.w_max, w.read_sigma()
            nu = w.drift_exponents(P_shape := params["W"].shape, np.random.default_rng(seed))
            self.drift = torch.tensor(w.drift_factor(1.0, P_shape, nu=nu), dtype=self.td)
            self.noise, self.det = hw.element_sigma, hw.detector_sigma
            self.jitter = hw.switch.jitter_s

    def _program(self, W):
        """Clip, quantise and add programming noise (no gradient: straight through)."""
        torch = self.torch
        with torch.no_grad():
            r = self.w_range
            Wc = W.clamp(-r, r)
            if self.levels:
                step = 2 * r / self.levels
                Wc = torch.round(Wc / step) * step
            return Wc + self.prog_sigma * torch.randn(W.shape, generator=self.gen, dtype=self.td)

    def __call__(self) -> float:
        torch = self.torch
        P, x, B = self.P, self.x, self.x.shape[0]
        N = P["W"].shape[1]
        self.opt.zero_grad(set_to_none=True)
        if self.physics:
            prog = self._program(P["W"])
            # straight-through: the forward pass sees the programmed, read weights
            W = P["W"] + (self.drift * prog + self.read_sigma * torch.randn(
                P["W"].shape, generator=self.gen, dtype=self.td) - P["W"]).detach()
            # the banks' mixing with one jitter draw per step for the batch, as ours draws it
            # (hardware.jitter_draws = "batch"): every bank's share, one mixed bank per step
            z = torch.randn((len(self.schedule), 1), generator=self.gen, dtype=torch.float64)
            r = self.hw.switch.jittered_remainder(self.cp.gaps, z.numpy())
            mix = torch.tensor(self.cp.router.mix(r)[:, 0], dtype=self.td)
        else:
            W = P["W"]
        h = torch.zeros(B, N, dtype=self.td)
        xin = x @ P["W_in"].T
        for t, k in enumerate(self.schedule):
            if self.physics:
                m = mix[t]
                W_eff = (m[:, None, None] * W).sum(dim=0)
                u = self.tr[t] * (h @ W_eff.T) + m @ P["b"] + xin
                q = u / self.sat
                f = self.gain * u / torch.sqrt(1 + q * q)
                h = self.a[t] * h + self.c[t] * f + self.noise * torch.randn(
                    (B, N), generator=self.gen, dtype=self.td)
            else:
                h = self.alpha * h + torch.tanh(xin + h @ W[k].T + P["b"][k])
        if self.physics:
            h = h + self.det * torch.randn((B, N), generator=self.gen, dtype=self.td)
        z = h @ P["W_out"].T + P["b_out"]
        loss = torch.nn.functional.cross_entropy(z, self.y)
        loss.backward()
        self.opt.step()
        return float(loss.detach())


def product_shapes(N: int, B: int, physics: bool) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """``(A shape, B shape)`` of every matrix product one training step needs.

    Forward: the input layer once (every-step injection feeds the same ``W_in x``), a bank product
    per step after the first (``h_0 = 0``), the readout. Backward: the readout's two, one
    ``dh`` product and one weight-gradient product per step after the first, the input layer's
    gradient. With the per-sample switch leak, every step that changes bank needs a second
    product with the previous bank in each of the three places.
    """
    T, L, D, C = STEPS, BANKS, INPUTS, CLASSES
    switching = sum(1 for t in range(1, T) if t % L != (t - 1) % L) if physics else 0
    bank = (T - 1) + switching
    return ([((B, D), (D, N))] + [((B, N), (N, N))] * bank + [((B, N), (N, C))]
            + [((B, C), (C, N)), ((C, B), (B, N))]
            + [((B, N), (N, N))] * bank + [((N, B), (B, N))] * bank
            + [((N, B), (B, D))])


def blas_products(N: int, B: int, dtype: str, physics: bool):
    """A function doing the step's matrix products with numpy (preallocated outputs)."""
    rng = np.random.default_rng(0)
    pairs = [(rng.standard_normal(a).astype(dtype), rng.standard_normal(b).astype(dtype),
              np.empty((a[0], b[1]), dtype=dtype)) for a, b in product_shapes(N, B, physics)]

    def run():
        for a, b, out in pairs:
            np.matmul(a, b, out=out)
    return run
