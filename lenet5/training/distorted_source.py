"""The paper's distorted training set as a source of training samples, drawn pass by pass."""
import numpy as np


class DistortedSource:
    """The paper's distorted training set: the originals plus `copies` randomly distorted
    copies made once (deterministically by index, rendered when a chunk needs them, so the
    540,000 copies never sit in memory). Each pass draws `per_pass` samples (the size of the
    original set) from a stream of shuffles of the whole pool, so 20 passes of 60,000 see each
    of the 600,000 samples about twice."""

    def __init__(self, images, labels, copies, seed):
        from ..data.distort import DistortedPool

        self.pool = DistortedPool(images, labels, n_copies=copies, seed=seed)
        self.per_pass, self.seed = len(images), seed

    def __len__(self):
        return len(self.pool)

    def images(self, indices):
        return self.pool.images(indices)

    def pass_order(self, epoch):
        """Pool indices for pass `epoch` (1-based): positions [(epoch-1)*n, epoch*n) of the
        concatenated shuffles, shuffle c drawn from (seed, c) alone (so resume is exact)."""
        size = len(self.pool)
        start, stop = (epoch - 1) * self.per_pass, epoch * self.per_pass
        parts = []
        for cycle in range(start // size, (stop - 1) // size + 1):
            perm = np.random.default_rng([self.seed, 1998, cycle]).permutation(size)
            lo, hi = max(start - cycle * size, 0), min(stop - cycle * size, size)
            parts.append(perm[lo:hi])
        return np.concatenate(parts)

    def chunk(self, indices):
        """(images, labels) of the given pool indices, rendered now."""
        return self.pool.images(indices), self.pool.labels(indices)
