"""How the switches route the signal through the banks: the share of every bank in a step.

A step selects bank ``k``; the step before selected ``p``. The routing side (the switch in front of
the banks) sends a power fraction ``P_j`` of the signal towards each bank ``j``; the collecting
side (a second, mirrored switch, or a passive ``L_W x 1`` combiner) brings the paths together
again. What the kernels run is the mixing vector ``m[t, j]`` of :mod:`relaxsim.kernels.passes`:
``W_eff,t = sum_j m[t, j] W_j``.

Port powers (``e = 10^(-ER/10)``, the extinction floor; ``r`` the share of a switching
transition still to go when the signal passes, :meth:`Switch.remainder`):

- ``star``: one lossless ``1 x L_W`` device. Settled, every other port carries ``e`` and the
  selected one the rest, ``on = 1 - (L_W - 1) e``. During a transition from ``p`` to ``k``:
  ``P_k = e + (on - e)(1 - r)``, ``P_p = e + (on - e) r``, the others ``e`` (the powers sum to 1).
- ``tree``: ``ceil(log2 L_W)`` levels of lossless ``1 x 2`` stages (``on = 1 - e``), every stage
  of a level driven by the same bit of the bank index. Bank ``j``'s power is the product over the
  levels of its stage port's share: ``on`` where its bit equals the selected bank's bit, ``e``
  where not; on a level whose bit changes, ``e + (on - e)(1 - r)`` towards the new bit and
  ``e + (on - e) r`` towards the old one. Banks beyond ``L_W`` (when it is not a power of 2) are
  unused ports.

Signal domain (:attr:`WeightElement.signal` or ``hardware.signal``), with the collecting side:

- ``coherent`` (optical fields): a path carrying power fraction ``P`` contributes field
  amplitude ``sqrt(P)``, times ``cos(phi_j - phi_k)`` for its phase relative to the selected path
  (``leak_phase = "in_phase"``: 1, the worst case; ``"random"``: ``phi_j`` drawn once per bank
  from the seed; the quadrature part is not detected). ``m_j = sqrt(P_j)`` through a combiner,
  ``P_j`` through a mirrored switch (``sqrt(P_j)`` twice).
- ``incoherent`` (optical powers add): ``m_j = P_j`` (combiner) or ``P_j^2`` (switch).
- ``electrical`` (voltages or currents settle as amplitudes): a switch passes its on path whole
  (``on = 1``: an electrical switch conserves no power between its ports) and leaks the
  amplitude floor ``a = 10^(-ER/20)`` (its off isolation) into each off path, ``r`` applied to
  the amplitude; ``m_j = A_j`` (combiner) or ``A_j^2`` (switch).

Steady-state leak of a star with a combiner, into every other bank: ``m_other / m_selected =
sqrt(e / (1 - (L_W - 1) e))`` coherent in phase, ``e / (1 - (L_W - 1) e)`` incoherent (for two
banks ``sqrt(e / (1 - e))`` and ``e / (1 - e)``), ``a`` electrical.

Path loss (:func:`transmission`): ``IL`` per switch stage passed, on both sides with a mirrored
switch, and ``10 log10(L_W)`` dB for a combiner; as an amplitude ``10^(-IL/20)`` (coherent,
electrical) or a power ``10^(-IL/10)`` (incoherent). One bank (``L_W = 1``) has no switch.
"""

from __future__ import annotations

import math

import numpy as np

SIGNALS = ("coherent", "incoherent", "electrical")
TOPOLOGIES = ("star", "tree")
MUXES = ("switch", "combiner")
LEAK_PHASES = ("in_phase", "random")


def stages(banks: int, topology: str) -> int:
    """Switch stages a signal passes on one side: 0 for one bank, 1 for a star,
    ``ceil(log2 L_W)`` for a tree."""
    if banks <= 1:
        return 0
    return 1 if topology == "star" else math.ceil(math.log2(banks))


def _on(banks: int, topology: str, floor: float, electrical: bool) -> float:
    """Share of a settled switch's selected port: 1 for an electrical switch; else what a
    lossless device leaves after its off ports' floor (``1 - (L_W - 1) e`` for a star,
    ``1 - e`` for a tree's 1 x 2 stage)."""
    if electrical:
        return 1.0
    return 1.0 - ((banks - 1) if topology == "star" else 1) * floor


def port_powers(banks: int, k: int, p: int, r, topology: str, floor: float,
                electrical: bool = False) -> np.ndarray:
    """Share of the signal the routing side sends towards each bank, ``r.shape + (L_W,)``, for a
    step on bank ``k`` after bank ``p`` with transition remainder ``r`` (a number or an array;
    ignored when ``k == p``), extinction floor ``floor`` (a power, or with ``electrical`` an
    amplitude)."""
    return port_powers_steps(banks, np.array([k]), np.array([p]), np.asarray(r)[None],
                             topology, floor, electrical)[0]


def port_powers_steps(banks: int, k, p, r, topology: str, floor: float,
                      electrical: bool = False) -> np.ndarray:
    """:func:`port_powers` of every step at once: banks ``k``, ``p`` ``(T,)``, remainders ``r``
    ``(T,)`` or ``(T, W)``; returns ``r.shape + (L_W,)`` (one pass of whole-array operations:
    it runs on every training batch with jitter)."""
    k, p = np.asarray(k), np.asarray(p)
    r = np.asarray(r, dtype=np.float64)
    shape = r.shape + (banks,)
    if banks == 1:
        return np.ones(shape)
    f, on = floor, _on(banks, topology, floor, electrical)
    pad = (slice(None),) + (None,) * (r.ndim - 1)  # (T,) -> broadcast over r's other axes
    rise = (f + (on - f) * (1.0 - r))[..., None]
    fall = (f + (on - f) * r)[..., None]
    j = np.arange(banks)
    if topology == "star":
        ks, ps = k[pad][..., None], p[pad][..., None]
        same = (k == p)[pad][..., None]
        selected = np.where(same, on, rise)
        return np.where(j == ks, selected, np.where((j == ps) & ~same, fall, f)) * np.ones(shape)
    out = np.ones(shape)
    for level in range(stages(banks, topology)):
        bk, bp, bj = (k >> level) & 1, (p >> level) & 1, (j >> level) & 1
        bk, bp = bk[pad][..., None], bp[pad][..., None]
        settled = np.where(bj == bk, on, f)
        moving = np.where(bj == bk, rise, fall)
        out *= np.where(bk == bp, settled, moving)
    return out


def mixing(banks: int, k: int, p: int, r, *, topology: str, mux: str, signal: str,
           power_floor: float, amplitude_floor: float, phases=None) -> np.ndarray:
    """The mixing vector ``m[j]`` (``r.shape + (L_W,)``) of a step on bank ``k`` after ``p``
    with transition remainder ``r`` (see the module's formulas); ``phases``: each bank path's
    phase (``None``: all in phase)."""
    electrical = signal == "electrical"
    P = port_powers(banks, k, p, r, topology, amplitude_floor if electrical else power_floor,
                    electrical)
    return _domain(P, mux, signal, None if phases is None
                   else np.cos(np.asarray(phases) - phases[k]))


def _domain(P, mux: str, signal: str, cos_phase=None):
    """Port powers (or amplitudes) to the mixing vector of ``signal`` through ``mux``."""
    if signal == "coherent":
        m = P if mux == "switch" else np.sqrt(P)
        return m if cos_phase is None else m * cos_phase
    return P * P if mux == "switch" else P


def mixing_steps(banks: int, k, p, r, *, topology: str, mux: str, signal: str,
                 power_floor: float, amplitude_floor: float, phases=None) -> np.ndarray:
    """:func:`mixing` of every step at once (``k``, ``p`` ``(T,)``; ``r`` ``(T,)`` or
    ``(T, W)``), in one compiled pass (:func:`relaxsim.kernels.programming.mixing`: it runs on
    every training batch with jitter)."""
    from relaxsim.kernels.programming import mixing as compiled

    args = mixing_args(banks, k, p, topology=topology, mux=mux, signal=signal,
                       power_floor=power_floor, amplitude_floor=amplitude_floor, phases=phases)
    r = np.asarray(r, dtype=np.float64)
    r2 = np.ascontiguousarray(r.reshape(len(args[0]), -1))
    out = np.empty(r2.shape + (banks,))
    compiled(args[0], args[1], r2, *args[2:], out)
    return out.reshape(r.shape + (banks,))


def mixing_args(banks: int, k, p, *, topology: str, mux: str, signal: str, power_floor: float,
                amplitude_floor: float, phases=None) -> tuple:
    """The arguments of :func:`relaxsim.kernels.programming.mixing` but the remainders and the
    output: ``(k, p, banks, levels, on, floor, square, root, cos_phase)``, fixed for a machine
    and a schedule (worked out once, used on every batch)."""
    k = np.ascontiguousarray(k, dtype=np.int64)
    p = np.ascontiguousarray(p, dtype=np.int64)
    electrical = signal == "electrical"
    floor = amplitude_floor if electrical else power_floor
    on = _on(banks, topology, floor, electrical)
    levels = 0 if topology == "star" else stages(banks, topology)
    cos_phase = np.zeros((0, banks))
    if phases is not None and signal == "coherent":
        ph = np.asarray(phases, dtype=np.float64)
        cos_phase = np.ascontiguousarray(np.cos(ph[None, :] - ph[k][:, None]))
    return (k, p, banks, levels, on, floor, mux == "switch" and signal != "coherent",
            mux == "combiner" and signal == "coherent", cos_phase)


def transmission(banks: int, topology: str, mux: str, signal: str,
                 insertion_loss_db: float) -> float:
    """Transmission of the path through the switches (and combiner), :func:`path_loss_db`, in
    the domain's unit: an amplitude ``10^(-IL/20)`` (coherent, electrical) or a power
    ``10^(-IL/10)``."""
    loss = path_loss_db(banks, topology, mux, insertion_loss_db)
    return 10.0 ** (-loss / (10.0 if signal == "incoherent" else 20.0))


def path_loss_db(banks: int, topology: str, mux: str, insertion_loss_db: float) -> float:
    """Loss of the switching path in dB (both sides)."""
    n = stages(banks, topology)
    if banks <= 1:
        return 0.0
    return insertion_loss_db * n + (insertion_loss_db * n if mux == "switch"
                                    else 10.0 * math.log10(banks))


def path_phases(banks: int, leak_phase: str, seed: int):
    """Each bank path's phase: ``None`` in phase, else uniform in ``[0, 2 pi)``, drawn once from
    ``seed``."""
    if leak_phase == "in_phase":
        return None
    return np.random.default_rng([int(seed), 0x9A5E]).uniform(0.0, 2.0 * math.pi, banks)
