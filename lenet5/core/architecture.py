"""LeNet-5's structure, stated once (LeCun, Bottou, Bengio, Haffner 1998, section II-B),
and the variants that can be put on top of it (`Variant`; the paper's is the default).

Everything else -- the kernels, the parameter layout, the audit, the CLI flags, the tests
and the README -- reads the layer sizes, the C3 connection table and the variant choices from here
(the paper's published figures are in `paper`).
"""
import json
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from ..errors import Lenet5Error

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


# LeNet-1 and LeNet-4 (section III-C.7 of the paper), on the same engine. Sizes the paper
# gives: LeNet-1 reads the digits down-sampled to 16x16 and centred in a 28x28 field, 4 C1
# maps 5x5 (24x24), 2x2 subsampling (12x12), 12 C3 maps 5x5 (8x8), 2x2 subsampling (4x4), 10
# output units. LeNet-4: 32x32 input, 4 C1 maps, 8 S2 maps "connected in pairs to each
# first-level map", 16 C3 maps, 16 S4 maps, 120 fully connected units, 10 outputs.
# Inferred (the paper does not say): LeNet-1's C3 table. 2,578 free parameters and 98,442
# connections (LeCun et al. 1990's figures for this network) need exactly 20 C3 kernels with
# trainable subsampling, so 4 maps read one S2 map and 8 read two: LENET1_C3_TABLE.
# LeNet-4's C3 table: each C3 map reads 3 of the 8 S2 maps (48 kernels: that puts the
# connections at 262,306, the paper's "about 260,000"). S2 map m subsamples C1 map m // 2.
# Both end in 10 linear output units with a softmax (the softmax output variant; the paper's
# own output units and criterion for these networks are not given in the paper).
LENET1_C3_TABLE = tuple((i,) for i in range(4)) + tuple((i, (i + 1) % 4) for i in range(4)) + tuple(
    (i, (i + 2) % 4) for i in range(4))
LENET4_C3_TABLE = tuple((m, (m + 1) % 8, (m + 2) % 8) for m in range(8)) + tuple(
    (m, (m + 2) % 8, (m + 4) % 8) for m in range(8))
LENET1_INPUT_SIZE = 28  # the 16x16 digit centred in a 28x28 field
LENET1_DIGIT_SIZE = 16

# ---------------------------------------------------------------- variants
# Each choice: name -> what it means. The first of each is the paper's, and the default.
VARIANT_CHOICES = {
    "arch": {
        "lenet5": "LeNet-5 (section II-B)",
        "lenet1": "LeNet-1: 16x16 digits in a 28x28 field, 4-12 feature maps, 10 output units (III-C.7)",
        "lenet4": "LeNet-4: 4-8-16-16 maps, 120 fully connected units, 10 output units (III-C.7)",
        "lush": "LeNet-5 as in LeCun's own Lush demo: the printed C1 to C5, then 10 squashed "
                "output units on C5 (no F6)",
    },
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
        "targets": "the Lush demo's: squared distances of its 10 output units to +-1 target codes "
                   "(+1 for the class, -1 elsewhere; outputs are distances)",
    },
    "inputs": {
        "paper": "the printed input levels: background -0.1, ink 1.175 (mean 0.028, variance 0.123)",
        "unit": "those values standardised, (x - mean) / std of the training set: mean 0, variance 1, "
                "the paper's stated intent",
        "lush": "Lush's MNIST coding: background 0, ink 2.55 (0.01 per grey level)",
    },
}


@dataclass(frozen=True)
class Variant:
    """The choices on top of LeNet-5's graph. `Variant()` is the paper's network. `arch` picks
    the graph itself: LeNet-5, or its predecessors LeNet-1 and LeNet-4 (their own C3 tables
    under c3="table"; softmax output only, having no 84-unit F6 for the RBF prototypes)."""
    arch: str = "lenet5"
    c3: str = "table"
    pooling: str = "trainable"
    activation: str = "scaled-tanh"
    output: str = "rbf"
    inputs: str = "paper"

    def __post_init__(self):
        for f in fields(self):
            value, allowed = getattr(self, f.name), VARIANT_CHOICES[f.name]
            if value not in allowed:
                raise Lenet5Error(f"unknown {f.name} {value!r}: choose one of {', '.join(allowed)}")
        if self.arch != "lenet5" and self.output == "rbf":
            raise Lenet5Error(f"{self.arch} has 10 output units, no F6 for the RBF prototypes: "
                              f"use output {default_output(self.arch)}")
        if (self.arch == "lush") != (self.output == "targets"):
            raise Lenet5Error("the Lush demo network (arch lush) and its +-1 target output "
                              "(output targets) go together")

    @property
    def is_paper(self):
        return self == PAPER

    @property
    def graph(self):
        """The choices that make the graph (all but the input scaling, which changes no count)."""
        return replace(self, inputs=PAPER.inputs)

    def changes(self):
        """name -> choice for every choice that differs from the paper's."""
        return {k: v for k, v in asdict(self).items() if v != getattr(PAPER, k)}

    def describe(self):
        return ", ".join(f"{k}={v}" for k, v in self.changes().items()) or "the paper's LeNet-5"

    def to_json(self):
        data = asdict(self)
        for name, old in (("arch", "lenet5"), ("inputs", "paper")):
            if data[name] == old:  # (absent = the default: earlier checkpoints stay as they were)
                del data[name]
        return json.dumps(data, sort_keys=True)

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
        maps, in_maps, table = {"lenet5": (16, 6, C3_TABLE), "lush": (16, 6, C3_TABLE),
                                "lenet1": (12, 4, LENET1_C3_TABLE),
                                "lenet4": (16, 8, LENET4_C3_TABLE)}[self.arch]
        return table if self.c3 == "table" else full_table(maps, in_maps)


PAPER = Variant()


def default_output(arch):
    """The output an architecture has unless told otherwise: LeNet-5's RBF units, the 10
    output units (softmax) of LeNet-1 and LeNet-4, the Lush demo's +-1 targets."""
    return {"lenet5": "rbf", "lush": "targets"}.get(arch, "softmax")


def target_codes():
    """The Lush demo's (10, 10) target codes: row k is +1 at k and -1 elsewhere. Its output
    layer is an RBF layer with these as prototypes: y_k = |x - t_k|^2."""
    return 2.0 * np.eye(10) - 1.0


# Lush's MNIST source (`dsource-mnist ... 32 32 0 0.01`): grey level g (0..255) -> 0.01 g.
LUSH_INPUT_PER_GREY = 0.01


def input_affine_values(inputs):
    """(scale, shift): the network reads scale * x + shift of an image x at the printed levels
    (background BACKGROUND, ink INK), for Variant.inputs."""
    from .paper import BACKGROUND, INK, TRAIN_MEAN, TRAIN_STD

    if inputs == "unit":  # (x - mean) / std of the training set
        return 1.0 / TRAIN_STD, -TRAIN_MEAN / TRAIN_STD
    if inputs == "lush":  # background 0, ink 2.55: x -> 0.01 * 255 * (x - BACKGROUND) / (INK - BACKGROUND)
        scale = LUSH_INPUT_PER_GREY * 255 / (INK - BACKGROUND)
        return scale, -BACKGROUND * scale
    return 1.0, 0.0


@dataclass(frozen=True)
class Layer:
    name: str
    kind: str  # "conv", "subsample", "dense", "rbf", "softmax" or "targets" (an RBF layer)
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
        return self.maps * self.in_maps  # rbf, targets: one connection per prototype pixel


def layers(variant=None):
    """The layers of the variant's network (default: the paper's LeNet-5, seven layers)."""
    v = variant or PAPER
    if v.arch == "lenet1":
        return (
            Layer("C1", "conv", 1, 4, 24, full_table(4, 1)),
            Layer("S2", "subsample", 4, 4, 12, pooling=v.pooling),
            Layer("C3", "conv", 4, 12, 8, v.c3_table),
            Layer("S4", "subsample", 12, 12, 4, pooling=v.pooling),
            Layer("OUT", v.output, 12 * 4 * 4, 10, 1),
        )
    if v.arch == "lenet4":
        return (
            Layer("C1", "conv", 1, 4, 28, full_table(4, 1)),
            Layer("S2", "subsample", 4, 8, 14, pooling=v.pooling),  # two S2 maps per C1 map
            Layer("C3", "conv", 8, 16, 10, v.c3_table),
            Layer("S4", "subsample", 16, 16, 5, pooling=v.pooling),
            Layer("C5", "conv", 16, 120, 1, full_table(120, 16)),
            Layer("OUT", v.output, 120, 10, 1),
        )
    f6_units = 10 if v.arch == "lush" else 84  # Lush's 10 output units stand where F6 is
    return (
        Layer("C1", "conv", 1, 6, 28, full_table(6, 1)),
        Layer("S2", "subsample", 6, 6, 14, pooling=v.pooling),
        Layer("C3", "conv", 6, 16, 10, v.c3_table),
        Layer("S4", "subsample", 16, 16, 5, pooling=v.pooling),
        Layer("C5", "conv", 16, 120, 1, full_table(120, 16)),
        Layer("F6", "dense", 120, f6_units, 1),
        Layer("OUT", v.output, f6_units, 10, 1),
    )


LAYERS = layers(PAPER)
LAYER = {layer.name: layer for layer in LAYERS}


def param_shapes(arch="lenet5"):
    """Name -> shape of every parameter array any variant of `arch` has, in storage order (the
    layout of the flat vector theta). Weights are stored dense (C3 as 16x6x5x5 with zeros where
    Table I has no connection); the softmax output's weights come last, unused by the RBF
    output. LeNet-1 has no C5 and F6, LeNet-4 no F6: their arrays are absent."""
    graph = layers(Variant(arch=arch, output=default_output(arch) if arch != "lenet5" else "softmax"))
    if arch == "lenet5":
        graph = LAYERS + graph[-1:]
    shapes = {}
    for layer in graph:
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
    return tuple(n for n in param_shapes(variant.arch) if n not in unused)


def input_size(variant):
    """Side of the square the network's first layer reads (the model always takes the 32x32
    preprocessed images; LeNet-1 resamples them, see `resample_matrix`)."""
    return LENET1_INPUT_SIZE if variant.arch == "lenet1" else INPUT_SIZE


def resample_matrix(variant):
    """R, (input_size, 32): the network's input is R X R^T of the 32x32 preprocessed image X.
    LeNet-1: MNIST's 28x28 field (its digits fill a 20x20 box) area-averaged onto 22x22 (each
    output pixel the mean of the input pixels it covers, so the digit box becomes 15.7, the
    paper's ~16 pixels), centred in 28x28 with 3 pixels on each side: R's margin rows are
    zero, and the engine sets those pixels to the background (-0.1). LeNet-5, LeNet-4: the
    identity (unused)."""
    size = input_size(variant)
    if variant.arch != "lenet1":
        return np.eye(size)
    inner, out = 28, 22  # 20 * 22 / 28 = 15.7: the 20x20 digit box becomes ~16x16
    start, offset = (INPUT_SIZE - inner) // 2, (size - out) // 2
    r = np.zeros((size, INPUT_SIZE))
    edges = np.linspace(0.0, inner, out + 1)
    for o in range(out):
        for i in range(inner):  # overlap of input pixel [i, i+1) with output pixel's span
            overlap = min(edges[o + 1], i + 1) - max(edges[o], i)
            if overlap > 0:
                r[offset + o, start + i] = overlap / (edges[o + 1] - edges[o])
    return r
