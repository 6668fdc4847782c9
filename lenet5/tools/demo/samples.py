"""Digits to try in the demo: the MNIST test set when its files are present, else ten MNIST
test digits shipped with the package (`samples.npz`, 8 KB; MNIST by Yann LeCun, Corinna
Cortes and Christopher J.C. Burges, licensed CC BY-SA 3.0).

The shipped file holds, for each class 0-9, the first test digit the shipped network labels
correctly through the demo's own path (`digit_from_ink` of the digit's 28x28 ink), so the
page's "random digit" button shows the network at work rather than its rare mistakes. It was
made with `python -m lenet5.tools.demo.samples MNIST_DIR CHECKPOINT`.
"""
import sys
from importlib import resources
from pathlib import Path

import numpy as np

from ...data.idx import FILES, SPLITS, parse_idx, read_verified
from ...errors import Lenet5Error
from ...files import save_npz_atomic

SHIPPED = "samples.npz"


class DigitSource:
    """A set of 28x28 uint8 MNIST digits with their labels and test-set indices."""

    def __init__(self, images, labels, indices, description):
        self.images, self.labels, self.indices = images, labels, indices
        self.description = description

    def __len__(self):
        return len(self.labels)

    def pick(self, rng):
        """A random digit as JSON-ready data: ink in [0, 1] (1 = ink), row-major."""
        i = int(rng.integers(len(self)))
        return {"pixels": (self.images[i].astype(np.float64) / 255).round(4).ravel().tolist(),
                "width": self.images.shape[2], "height": self.images.shape[1],
                "label": int(self.labels[i]), "index": int(self.indices[i]), "source": self.description}


def mnist_test(data_dir):
    """The 10,000 raw MNIST test digits from data_dir's verified .gz files, or None if absent."""
    images_name, labels_name = SPLITS["test"]
    try:
        images = parse_idx(read_verified(Path(data_dir) / images_name, *FILES[images_name]))
        labels = parse_idx(read_verified(Path(data_dir) / labels_name, *FILES[labels_name]))
    except Lenet5Error:
        return None
    return DigitSource(images, labels, np.arange(len(labels)), "MNIST test set")


def shipped():
    """The ten digits shipped with the package."""
    with resources.files(__package__).joinpath(SHIPPED).open("rb") as f, \
            np.load(f, allow_pickle=False) as data:
        return DigitSource(data["images"], data["labels"], data["indices"], "shipped MNIST test digits")


def digit_source(data_dir):
    """The MNIST test set if data_dir has it, else the shipped digits."""
    return (mnist_test(data_dir) if data_dir else None) or shipped()


def build_shipped(data_dir, checkpoint, path):
    """Write `path`: per class, the first MNIST test digit the network labels correctly."""
    from ...core.model import LeNet5
    from ...data.digits import digit_from_ink

    net = LeNet5.load(checkpoint)
    test = mnist_test(data_dir)
    if test is None:
        raise Lenet5Error(f"{data_dir}: no verified MNIST test files")
    chosen = []
    for digit in range(10):
        for i in np.flatnonzero(test.labels == digit):
            if net.forward(digit_from_ink(test.images[i] / 255.0))[0].argmin() == digit:
                chosen.append(int(i))
                break
    save_npz_atomic(path, {"images": test.images[chosen], "labels": test.labels[chosen].astype(np.int64),
                           "indices": np.array(chosen, dtype=np.int64)})
    return chosen


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m lenet5.tools.demo.samples MNIST_DIR CHECKPOINT")
    print(build_shipped(sys.argv[1], sys.argv[2], Path(__file__).with_name(SHIPPED)))
