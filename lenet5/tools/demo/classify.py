"""A drawing -> LeNet-5's answer and every layer's maps, as plain JSON-ready data.

The drawing arrives as "ink" (H x W numbers in [0, 1], 1 = ink) and goes through
`lenet5.data.digits.digit_from_ink` -- the same crop, 20-pixel fit, centre of mass and
padding as `lenet5 predict` -- then through `LeNet5.layers`, the engine's per-sample forward
pass (the one `forward` and `lenet5 evaluate` run). The answer is the smallest of the ten RBF
outputs; it is "rejected" when the gap between the two smallest is below the checkpoint's
threshold for 0.5% error on the rest of the MNIST test set (`lenet5.tools.rejection`).

Thread safety: a `Classifier` is never modified after construction, `digit_from_ink` is plain
numpy on its own arrays, and `LeNet5.layers` allocates fresh buffers per call (the jitted
kernels keep no state), so one Classifier serves concurrent requests.
"""
from pathlib import Path

import numpy as np

from ...core.model import LeNet5
from ...data.digits import digit_from_ink
from ...errors import Lenet5Error
from ..rejection import as_dict, rejection_threshold, top2_gap

MIN_SIDE, MAX_SIDE = 8, 512  # allowed width and height of a drawing, in pixels
SHOWN_LAYERS = ("C1", "S2", "C3", "S4", "C5", "F6")
DECIMALS = 4  # layer maps are rounded for the page (tanh outputs lie in +-1.7159)


class BadRequest(Lenet5Error):
    """A request the demo cannot answer; `status` is the HTTP status to reply with."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def ink_from_request(payload):
    """{"pixels": [H*W numbers in 0..1], "width": W, "height": H} -> float64 (H, W) ink.
    Anything else raises BadRequest saying what is wrong."""
    if not isinstance(payload, dict):
        raise BadRequest('expected a JSON object {"pixels": [...], "width": W, "height": H}')
    missing = [k for k in ("pixels", "width", "height") if k not in payload]
    if missing:
        raise BadRequest(f"missing {', '.join(missing)}")
    width, height = (_side(payload, k) for k in ("width", "height"))
    pixels = payload["pixels"]
    if not isinstance(pixels, list):
        raise BadRequest("pixels must be a flat list of numbers")
    if len(pixels) != width * height:
        raise BadRequest(f"pixels has {len(pixels)} values, width x height = {width * height}")
    try:
        ink = np.array(pixels)
    except ValueError:  # ragged nested lists
        ink = None
    if ink is None or ink.ndim != 1 or ink.dtype.kind not in "iuf":
        raise BadRequest("pixels must be a flat list of numbers")
    ink = ink.astype(np.float64)
    if not np.isfinite(ink).all():
        raise BadRequest("pixels must be finite numbers (no NaN or infinity)")
    if ink.min() < 0 or ink.max() > 1:
        raise BadRequest(f"pixels must lie in [0, 1], got {ink.min():.4g}..{ink.max():.4g}")
    return ink.reshape(height, width)


def _side(payload, key):
    value = payload[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"{key} must be an integer")
    if not MIN_SIDE <= value <= MAX_SIDE:
        raise BadRequest(f"{key} must be {MIN_SIDE}..{MAX_SIDE}, got {value}")
    return value


def _rounded(a):
    return np.round(np.asarray(a, dtype=np.float64), DECIMALS).tolist()


class Classifier:
    """One network and its rejection threshold (None when unknown); read-only after __init__."""

    def __init__(self, net, threshold=None, name="network"):
        if net.variant.arch != "lenet5":  # the page draws LeNet-5's layers
            raise Lenet5Error(f"the demo shows LeNet-5 networks; this one is {net.variant.arch}")
        if net.prototypes.shape != (10, 84):
            raise Lenet5Error("the demo needs a network with LeNet-5's RBF output (10 x 84 prototypes)")
        self.net, self.threshold, self.name = net, threshold, name

    @classmethod
    def from_checkpoint(cls, path, data_dir=None):
        """Load a checkpoint and its threshold (the sidecar, else the MNIST test set if present)."""
        net = LeNet5.load(path)
        return cls(net, rejection_threshold(path, data_dir), name=Path(str(path)).name)

    def info(self):
        """What the page shows once: the checkpoint, the threshold and the ten prototypes."""
        return {"checkpoint": self.name, "threshold": as_dict(self.threshold),
                "prototypes": self.net.prototypes.astype(np.float64).tolist(),
                "limits": {"min_side": MIN_SIDE, "max_side": MAX_SIDE}}

    def classify(self, ink):
        """ink (H, W) -> {digit, distances, gap, rejected, input, layers, prototype}.
        No ink raises BadRequest (422)."""
        try:
            image = digit_from_ink(ink)
        except Lenet5Error as e:
            raise BadRequest(str(e), status=422) from None
        maps = self.net.layers(image)
        distances = np.asarray(maps["OUT"], dtype=np.float64)
        digit = int(np.argmin(distances))
        gap = float(top2_gap(distances))
        return {
            "digit": digit,
            "distances": distances.tolist(),
            "gap": gap,
            "rejected": None if self.threshold is None else not self.threshold.accepts(gap),
            "threshold_gap": None if self.threshold is None else self.threshold.gap,
            "input": _rounded(maps["input"]),
            "layers": {name: _rounded(maps[name]) for name in SHOWN_LAYERS},
            "prototype": self.net.prototypes[digit].astype(np.float64).tolist(),
        }
