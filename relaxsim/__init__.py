"""relaxsim: hardware co-simulation of ReLaX-Net physical neural networks.

The Python API::

    import relaxsim
    cfg = relaxsim.load_config("exp.toml", overrides={"network.banks": 2})
    net = relaxsim.build(cfg)
    machine = relaxsim.assemble(cfg)        # network, machine, timing and coupling, built once
    params = net.init_params(seed=0)
    logits = net.forward(params, x)
    loss, grads = net.loss_and_grad(params, x, y)
    result = relaxsim.run(cfg, out="runs/exp1")
    result = relaxsim.resume("runs/exp1")   # after an interruption: continue from the checkpoint
"""

__version__ = "0.4.0"

# The API, imported when first used: `import relaxsim.config` (validating a config) loads neither
# the numba kernels nor the datasets, and `relaxsim --help` starts without them.
_API = {
    "Config": "relaxsim.config", "load_config": "relaxsim.config",
    "ConfigError": "relaxsim.errors", "DataError": "relaxsim.errors",
    "RelaxsimError": "relaxsim.errors", "UnknownNameError": "relaxsim.errors",
    "Network": "relaxsim.model", "build": "relaxsim.model",
    "Assembly": "relaxsim.assembly", "assemble": "relaxsim.assembly",
    "resume": "relaxsim.runner", "run": "relaxsim.runner",
    "scan": "relaxsim.scans.execute",
}


def __getattr__(name: str):
    import importlib

    module = _API.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    else:  # a submodule, as `import relaxsim` made them all reachable: relaxsim.errors.X
        try:
            value = importlib.import_module(f"relaxsim.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"relaxsim.{name}":
                raise
            raise AttributeError(f"module 'relaxsim' has no attribute {name!r}") from None
    globals()[name] = value
    return value


def __dir__():
    return sorted([*globals(), *_API])


__all__ = ["Assembly", "Config", "ConfigError", "DataError", "Network", "RelaxsimError",
           "UnknownNameError", "assemble", "build", "load_config", "resume", "run", "scan",
           "__version__"]
