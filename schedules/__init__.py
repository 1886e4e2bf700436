"""Multiplexing schedules: which of the ``L_W`` weight banks is switched in at each of the ``L_T`` steps.

A schedule is registered under a name as a function ``(banks, steps) -> list of bank indices``.
A config may also give an explicit list. :func:`resolve` turns either into an integer array and
checks it: every entry is a valid bank, and every bank is used at least once (a bank that is never
switched in would hold parameters that are never trained).
"""

from __future__ import annotations

import numpy as np

from relaxsim.errors import ConfigError
from relaxsim.registry import Registry

SCHEDULES: Registry = Registry("schedule")


@SCHEDULES.register("cyclic")
def cyclic(banks: int, steps: int) -> list[int]:
    """ReLaX-Net's default: bank ``t mod L_W`` at step t (0, 1, ..., L_W-1, 0, 1, ...)."""
    return [t % banks for t in range(steps)]


@SCHEDULES.register("blocked")
def blocked(banks: int, steps: int) -> list[int]:
    """Each bank used for one contiguous run of steps, runs as equal as possible (0, 0, 1, 1, 2, ...)."""
    return [t * banks // steps for t in range(steps)]


def resolve(spec, banks: int, steps: int, field: str = "network.schedule") -> np.ndarray:
    """Return the schedule ``spec`` (a registered name or a list of bank indices) as an int64 array."""
    if isinstance(spec, str):
        builder = SCHEDULES.get(spec, field=field)
        if banks > steps:
            raise ConfigError(
                "network.banks",
                f"must be <= network.steps for the {spec} schedule",
                f"{banks} > {steps}",
            )
        return np.asarray(builder(banks, steps), dtype=np.int64)
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(
            field, f"must be one of {', '.join(SCHEDULES.names())} or a list of bank indices",
            repr(spec))
    odd = [k for k in spec if isinstance(k, bool) or not isinstance(k, int)]
    if odd:
        raise ConfigError(field, "entries must be integer bank indices",
                          f"{odd[0]!r} in {list(spec)}")
    if len(spec) != steps:
        raise ConfigError(field, f"must list one bank per step, network.steps = {steps}",
                          f"{len(spec)} entries")
    bad = [k for k in spec if not 0 <= k < banks]
    if bad:
        raise ConfigError(field, f"entries must be bank indices in 0..{banks - 1}", bad[0])
    unused = sorted(set(range(banks)) - set(spec))
    if unused:
        raise ConfigError(field, f"must use every one of the {banks} banks",
                          f"bank {unused[0]} never used in {list(spec)}")
    return np.asarray(spec, dtype=np.int64)


def previous_banks(schedule: np.ndarray) -> np.ndarray:
    """Bank switched in at the step before each step (the first step's own bank for step 0)."""
    prev = np.empty_like(schedule)
    prev[0] = schedule[0]
    prev[1:] = schedule[:-1]
    return prev
