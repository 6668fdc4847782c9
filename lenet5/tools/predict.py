"""Classifying a user's image files: read (Pillow), turn into the network's input the way MNIST
was made (`lenet5.data.digits`), run the network, and say "confident" or "reject" by the
checkpoint's rejection threshold (`lenet5.tools.rejection`)."""
from dataclasses import dataclass

import numpy as np

from ..data.digits import digit_from_ink, ink_from_grayscale
from ..data.image_files import pillow_image, read_grayscale
from ..errors import Lenet5Error
from ..files import printable
from .rejection import top2_gap, verdict


def input_from_file(path, command="lenet5 predict"):
    """The (32, 32) network input of an image file; Lenet5Error(reason) if it has none."""
    return digit_from_ink(ink_from_grayscale(read_grayscale(path, command)))


@dataclass
class Failure:
    file: str
    reason: str

    def as_json(self):
        return {"file": self.file, "error": self.reason}

    def as_line(self):
        return f"{printable(self.file)}: {self.reason}"


@dataclass
class Prediction:
    file: str
    digit: int
    distances: list  # the ten RBF outputs, smaller = closer to that digit's prototype
    gap: float  # second-smallest minus smallest distance
    verdict: str  # "confident", "reject", or "unknown" (no threshold for this checkpoint)
    threshold: float | None

    def as_json(self):
        return {"file": self.file, "digit": self.digit, "verdict": self.verdict, "gap": self.gap,
                "threshold": self.threshold, "distances": self.distances}

    def as_line(self):
        rule = f"gap {self.gap:.2f}"
        if self.threshold is not None:
            rule += f", threshold {self.threshold:.2f}"
        distances = " ".join(f"{d}:{v:.1f}" for d, v in enumerate(self.distances))
        return f"{printable(self.file)}: {self.digit} {self.verdict} ({rule}); distances {distances}"


def classify_files(net, paths, threshold):
    """[Prediction or Failure] per path, in order: a bad file does not stop the others."""
    pillow_image()  # a missing extra fails the command, not each file
    inputs, results = {}, {}
    for i, path in enumerate(paths):
        try:
            inputs[i] = input_from_file(path)
        except Lenet5Error as e:
            results[i] = Failure(str(path), str(e))
    if inputs:
        y = net.forward(np.stack(list(inputs.values()))).astype(np.float64)
        for (i, _), row in zip(inputs.items(), y, strict=True):
            gap = float(top2_gap(row))
            results[i] = Prediction(str(paths[i]), int(row.argmin()), [float(v) for v in row], gap,
                                    verdict(gap, threshold), threshold.gap if threshold else None)
    return [results[i] for i in range(len(paths))]
