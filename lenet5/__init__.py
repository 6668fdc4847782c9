"""lenet5: LeNet-5 exactly as in LeCun, Bottou, Bengio, Haffner (1998), with Numba kernels."""
from .core.model import LeNet5
from .errors import Lenet5Error

__all__ = ["LeNet5", "Lenet5Error"]
__version__ = "0.1.0"
