"""One online pass, shared by the trainers that have no SDLM or checkpoints (the Fig. 9
baselines, the learned-combination C3): shuffled order from (seed, pass), chunks of samples
handed to a jitted step, a NaN/inf check and the progress bar after every chunk."""
import time

import numpy as np

from ..errors import Lenet5Error
from ..training.progress import Progress

CHUNK = 500  # samples per jitted call: the granularity of progress and of the NaN check


def online_pass(n, seed, epoch, step, theta, dtype, desc, progress=True):
    """step(order_chunk, losses_chunk) trains on those samples in order and fills their losses.
    Returns (per-sample losses, seconds)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    losses = np.zeros(n, dtype=dtype)
    bar = Progress(n, desc=desc, enabled=progress)
    start = time.perf_counter()
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        step(order[a:b], losses[a:b])
        if not (np.isfinite(losses[a:b]).all() and np.isfinite(theta).all()):
            raise Lenet5Error(f"training diverged: loss became NaN/inf in pass {epoch} within "
                              f"samples {a + 1}-{b} of {n}; try a smaller learning rate")
        bar.update(b - a, note=f"loss {losses[:b].mean():.4f}")
    bar.close()
    return losses, time.perf_counter() - start
