"""The ``relaxsim`` command: one module per command, shared helpers in :mod:`~relaxsim.cli.app`.
Nothing outside this package imports it (the console script calls :func:`main`)."""

from relaxsim.cli.app import main

__all__ = ["main"]
