"""Validation studies and benchmarks (installed as ``relaxsim.validation``).

Each module is runnable alone, e.g. ``python -m relaxsim.validation.bench``.
"""
