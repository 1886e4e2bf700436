"""Exceptions raised by relaxsim.

Every error a user can cause with bad input subclasses :class:`RelaxsimError` and the matching
builtin, so scripts can catch either. The command line prints the message of a
:class:`RelaxsimError` on one line and exits with status 2.
"""

from __future__ import annotations


class RelaxsimError(Exception):
    """Base class of every error relaxsim raises for bad input."""


class ConfigError(RelaxsimError, ValueError):
    """A config value is missing, of the wrong type or out of range.

    The message reads ``section.key: must be ... (got ...)``.
    """

    def __init__(self, field: str, requirement: str, got: object | None = None, hint: str = ""):
        self.field, self.requirement, self.got, self.hint = field, requirement, got, hint
        msg = f"{field}: {requirement}"
        if got is not None:
            msg += f" (got {got})"
        if hint:
            msg += f"; {hint}"
        super().__init__(msg)


class UnknownNameError(RelaxsimError, KeyError):
    """A name looked up in a registry (activation, schedule, task, optimizer) does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class DataError(RelaxsimError, ValueError):
    """A data file is missing, unreadable or malformed."""


class OutputExistsError(RelaxsimError, FileExistsError):
    """A run would overwrite existing results."""


class RelaxsimWarning(UserWarning):
    """Base class of relaxsim's warnings; the command line prints each on one line,
    ``relaxsim: warning: ...`` (``LABEL`` is the word before the message)."""

    LABEL = "warning: "


class HardwareWarning(RelaxsimWarning):
    """The machine as configured gives numbers a designer should not trust without a look: a
    clock that leaves the switch leaking or the active element carrying over more than
    :data:`relaxsim.hardware.SETTLE_WARNING`, or a setting that has no effect. The command line
    prints each on one line (``relaxsim: warning: ...``)."""
