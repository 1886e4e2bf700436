"""relaxsim: hardware co-simulation of ReLaX-Net physical neural networks."""

__version__ = "0.1.0"
