"""The ``relaxsim`` command: one module per command, shared helpers in :mod:`~relaxsim.cli.common`.
Nothing outside this package imports it (the console script calls :func:`main`)."""

try:
    from relaxsim.cli.app import main
except KeyboardInterrupt:
    # Ctrl-C while the command starts, before its main can catch anything: one line and status
    # 130, as everywhere else in the command.
    import sys as _sys

    print("relaxsim: interrupted", file=_sys.stderr)
    raise SystemExit(130) from None

__all__ = ["main"]
