"""Every numba function of relaxsim, and the numpy twins they are tested against.

- :mod:`~relaxsim.kernels.passes`: the network's forward pass, loss and exact backward pass;
- :mod:`~relaxsim.kernels.rng`: counter-based random draws (normal, uniform), bit-identical for any
  thread count;
- :mod:`~relaxsim.kernels.programming`: writing banks into weight elements (range, quantisation,
  programming noise) and the per-step switch draws;
- :mod:`~relaxsim.kernels.threads`: the thread count and BLAS pinning;
- :mod:`~relaxsim.kernels.reference`: the numpy twins of the passes;
- :mod:`~relaxsim.kernels.tuning`: the tuning constants and fast-math flags.

This package imports nothing from the config, the devices, the timing model, training or the
command line: the callers hand it arrays and numbers.
"""
