"""relaxsim: hardware co-simulation of ReLaX-Net physical neural networks.

The Python API::

    import relaxsim
    cfg = relaxsim.load_config("exp.toml", overrides={"network.banks": 2})
    net = relaxsim.build(cfg)
    params = net.init_params(seed=0)
    logits = net.forward(params, x)
    loss, grads = net.loss_and_grad(params, x, y)
    result = relaxsim.run(cfg, out="runs/exp1")
    result = relaxsim.resume("runs/exp1")   # after an interruption: continue from the checkpoint
"""

__version__ = "0.1.0"

try:
    from relaxsim.config import Config, load_config  # noqa: E402
    from relaxsim.errors import ConfigError, DataError, RelaxsimError, UnknownNameError  # noqa: E402
    from relaxsim.model import Network, build  # noqa: E402
    from relaxsim.runner import resume, run  # noqa: E402
    from relaxsim.scan.execute import scan  # noqa: E402
except KeyboardInterrupt:
    # Ctrl-C while the `relaxsim` command (or `python -m relaxsim...`) starts, before its main
    # can catch anything: one line and status 130, as everywhere else in the command. In any
    # other program that imports relaxsim, the interrupt is that program's.
    import os as _os
    import sys as _sys

    if _os.path.basename(_sys.argv[0]) in ("relaxsim", "-m"):
        print("relaxsim: interrupted", file=_sys.stderr)
        raise SystemExit(130) from None
    raise

__all__ = ["Config", "ConfigError", "DataError", "Network", "RelaxsimError", "UnknownNameError",
           "build", "load_config", "resume", "run", "scan", "__version__"]
