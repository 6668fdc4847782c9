"""Random network inputs for tests: n 32x32 images uniform over the paper's input range
(background -0.1 .. ink 1.175), reproducible from `seed`."""
import numpy as np

from lenet5.core.paper import BACKGROUND, INK


def images(n, seed=0, dtype=np.float64):
    return np.random.default_rng(seed).uniform(BACKGROUND, INK, (n, 32, 32)).astype(dtype)
