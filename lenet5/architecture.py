"""LeNet-5's structure, stated once (LeCun, Bottou, Bengio, Haffner 1998, section II-B),
and the variants that can be put on top of it (`Variant`; the paper's is the default).

Everything else -- the kernels, the parameter layout, the audit, the CLI flags, the tests
and the README -- reads the layer sizes, the C3 connection table, the variant choices and
the paper's figures from here.
"""
import json
from dataclasses import asdict, dataclass, fields

import numpy as np

from .errors import Lenet5Error

INPUT_SIZE = 32  # 28x28 MNIST digits centred in a 32x32 field
KERNEL = 5  # every convolution is 5x5, 'valid', stride 1
POOL = 2  # every subsampling unit reads a non-overlapping 2x2 block

# f(a) = A tanh(S a), the paper's squashing function (Appendix A)
TANH_A = 1.7159
TANH_S = 2.0 / 3.0

# Table I: which S2 maps (columns) each C3 map (rows) reads.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def full_table(out_maps, in_maps):
    """Every output map reads every input map (C1 and C5)."""
    return tuple(tuple(range(in_maps)) for _ in range(out_maps))


def table_pairs(table):
    """The connected (output map, input map) pairs of a table, as the (P, 2) int64 array the
    sparse convolution kernels iterate over: only these pairs are ever computed."""
    return np.array([(m, c) for m, inputs in enumerate(table) for c in inputs], dtype=np.int64)


def table_mask(table, in_maps):
    """Boolean (out_maps, in_maps) mask of a connection table."""
    mask = np.zeros((len(table), in_maps), dtype=bool)
    for m, inputs in enumerate(table):
        mask[m, list(inputs)] = True
    return mask


# ---------------------------------------------------------------- variants
# Each choice: name -> what it means. The first of each is the paper's, and the default.
VARIANT_CHOICES = {
    "c3": {
        "table": "C3 reads the S2 maps of LeCun's Table I (60 of 96 kernels)",
        "full": "every C3 map reads every S2 map (96 kernels)",
    },
    "pooling": {
        "trainable": "S2/S4: 2x2 sum times a trainable coefficient, plus a trainable bias, squashed",
        "average": "S2/S4: fixed 2x2 average (coefficient 1/4, bias 0, never trained), squashed",
        "max": "S2/S4: 2x2 max, no parameters, no squashing (delta goes to the winning input)",
    },
    "activation": {
        "scaled-tanh": "f(a) = 1.7159 tanh(2a/3) (Appendix A)",
        "tanh": "f(a) = tanh(a)",
        "sigmoid": "f(a) = 1 / (1 + exp(-a)), the logistic function",
        "relu": "f(a) = max(0, a)",
    },
    "output": {
        "rbf": "Euclidean RBF units with fixed 7x12 prototypes (outputs are distances)",
        "softmax": "10 linear units on F6 and a softmax (outputs are -log p, criterion cross-entropy)",
    },
}


@dataclass(frozen=True)
class Variant:
    """The choices on top of LeNet-5's graph. `Variant()` is the paper's network."""
    c3: str = "table"
    pooling: str = "trainable"
    activation: str = "scaled-tanh"
    output: str = "rbf"

    def __post_init__(self):
        for f in fields(self):
            value, allowed = getattr(self, f.name), VARIANT_CHOICES[f.name]
            if value not in allowed:
                raise Lenet5Error(f"unknown {f.name} {value!r}: choose one of {', '.join(allowed)}")

    @property
    def is_paper(self):
        return self == PAPER

    def changes(self):
        """name -> choice for every choice that differs from the paper's."""
        return {k: v for k, v in asdict(self).items() if v != getattr(PAPER, k)}

    def describe(self):
        return ", ".join(f"{k}={v}" for k, v in self.changes().items()) or "the paper's LeNet-5"

    def to_json(self):
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        try:
            data = json.loads(text)
        except ValueError:
            raise Lenet5Error(f"variant is not JSON: {text[:80]!r}") from None
        if not isinstance(data, dict) or set(data) - set(VARIANT_CHOICES):
            raise Lenet5Error(f"variant must be an object with keys from {sorted(VARIANT_CHOICES)}")
        return cls(**data)

    @property
    def c3_table(self):
        return C3_TABLE if self.c3 == "table" else full_table(16, 6)


PAPER = Variant()


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # "conv", "subsample", "dense", "rbf" or "softmax"
    in_maps: int
    maps: int
    size: int  # output maps are size x size (1 for dense layers)
    table: tuple = None  # conv only: output map -> input maps
    pooling: str = "trainable"  # subsample only: a Variant.pooling choice

    @property
    def fan_in(self):
        """Inputs feeding one unit (for the paper's +-2.4/F initialisation)."""
        if self.kind == "conv":
            return [len(t) * KERNEL * KERNEL for t in self.table]
        if self.kind == "subsample":
            return [POOL * POOL] * self.maps
        return [self.in_maps] * self.maps

    @property
    def trainable(self):
        """Free parameters, counted from the structure (shared weights count once)."""
        if self.kind == "conv":
            return sum(len(t) * KERNEL * KERNEL + 1 for t in self.table)
        if self.kind == "subsample":  # a coefficient and a bias per map, unless fixed or max
            return 2 * self.maps if self.pooling == "trainable" else 0
        if self.kind in ("dense", "softmax"):
            return self.maps * (self.in_maps + 1)
        return 0  # the RBF prototypes are fixed

    @property
    def connections(self):
        """Multiply-add connections, biases included, as the paper counts them."""
        units = self.size * self.size
        if self.kind == "conv":
            return units * self.trainable
        if self.kind == "subsample":  # 4 inputs, plus the bias when there is one
            return self.maps * units * (POOL * POOL + (self.pooling == "trainable"))
        if self.kind in ("dense", "softmax"):
            return self.maps * (self.in_maps + 1)
        return self.maps * self.in_maps  # rbf: one connection per prototype pixel


def layers(variant=None):
    """The seven layers of LeNet-5 under `variant` (default: the paper's)."""
    v = variant or PAPER
    return (
        Layer("C1", "conv", 1, 6, 28, full_table(6, 1)),
        Layer("S2", "subsample", 6, 6, 14, pooling=v.pooling),
        Layer("C3", "conv", 6, 16, 10, v.c3_table),
        Layer("S4", "subsample", 16, 16, 5, pooling=v.pooling),
        Layer("C5", "conv", 16, 120, 1, full_table(120, 16)),
        Layer("F6", "dense", 120, 84, 1),
        Layer("OUT", v.output, 84, 10, 1),
    )


LAYERS = layers(PAPER)
LAYER = {layer.name: layer for layer in LAYERS}

# The paper's figures (section II-B): trainable parameters, connections.
PAPER_FIGURES = {
    "C1": (156, 122_304),
    "S2": (12, 5_880),
    "C3": (1_516, 151_600),
    "S4": (32, 2_000),
    "C5": (48_120, 48_120),
    "F6": (10_164, 10_164),
    "OUT": (0, 840),
}
PAPER_TOTAL = (60_000, 340_908)

# The paper's results that this project reproduces (section III-C).
PAPER_RESULTS = {
    "test_error_pct": 0.95,  # 20 passes, no distortions (section III-C, Fig. 5)
    "train_error_pct_pass19": 0.35,
    "test_error_distorted_pct": 0.8,  # 60k + 540k distorted copies
    "test_errors_distorted": 82,  # misclassified test patterns with distortions (Fig. 8)
    "train_samples_distorted": 540_000,  # distorted copies added to the 60k originals
    # Fig. 9's neighbours on the same data (test error, %)
    "baseline_linear_pct": 12.0,
    "baseline_mlp_300_pct": 4.7,
    "baseline_mlp_1000_pct": 4.5,
    "baseline_mlp_300_100_pct": 3.05,
    "rejection_target_error_pct": 0.5,  # Fig. 10: reject until the rest has this error
    # Fig. 9's other rows (test error, %; regular test set unless the key says otherwise);
    # LeNet-5 itself and the linear/MLP rows are the keys above
    "fig9_test_error_pct": {
        "linear-deslant": 8.4,
        "pairwise-linear": 7.6,
        "knn-euclidean": 5.0,
        "knn-euclidean-deslant": 2.4,
        "pca40-quadratic": 3.3,
        "rbf1000-linear": 3.6,
        "tangent-distance-16x16": 1.1,
        "svm-poly4": 1.1,
        "rs-svm-poly5": 1.0,
        "v-svm-poly9-distortions": 0.8,
        "lenet1": 1.7,
        "lenet4": 1.1,
        "lenet4-knn": 1.1,
        "lenet4-local": 1.1,
        "boosted-lenet4-distortions": 0.7,
    },
}


def param_shapes():
    """Name -> shape of every parameter array any variant has, in storage order (the layout of
    the flat vector theta). Weights are stored dense (C3 as 16x6x5x5 with zeros where Table I
    has no connection); the softmax output's weights come last, unused by the RBF output."""
    shapes = {}
    for layer in LAYERS + (Layer("OUT", "softmax", 84, 10, 1),):
        if layer.kind == "conv":
            shapes[f"{layer.name}.weight"] = (layer.maps, layer.in_maps, KERNEL, KERNEL)
            shapes[f"{layer.name}.bias"] = (layer.maps,)
        elif layer.kind == "subsample":
            shapes[f"{layer.name}.coeff"] = (layer.maps,)
            shapes[f"{layer.name}.bias"] = (layer.maps,)
        elif layer.kind in ("dense", "softmax"):
            shapes[f"{layer.name}.weight"] = (layer.maps, layer.in_maps)
            shapes[f"{layer.name}.bias"] = (layer.maps,)
        else:
            shapes[f"{layer.name}.prototypes"] = (layer.maps, layer.in_maps)
    return shapes


PARAM_SHAPES = param_shapes()
TRAINABLE_NAMES = tuple(n for n in PARAM_SHAPES if not n.endswith("prototypes"))
PROTOTYPES = "OUT.prototypes"
SUBSAMPLING_PARAMS = ("S2.coeff", "S2.bias", "S4.coeff", "S4.bias")
SOFTMAX_PARAMS = ("OUT.weight", "OUT.bias")


def param_names(variant):
    """The parameter arrays a network of `variant` has (and its checkpoints hold)."""
    unused = set(SUBSAMPLING_PARAMS if variant.pooling == "max" else ())
    unused |= {PROTOTYPES} if variant.output == "softmax" else set(SOFTMAX_PARAMS)
    return tuple(n for n in PARAM_SHAPES if n not in unused)
