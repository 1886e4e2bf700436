"""Training and evaluation: the loop (:mod:`~relaxsim.training.loop`), optimizers
(:mod:`~relaxsim.training.optim`), the engine that runs a network on its machine
(:mod:`~relaxsim.training.engine`), checkpoints (:mod:`~relaxsim.training.checkpoint`) and the
evaluation of saved weights (:mod:`~relaxsim.training.evaluate`)."""
