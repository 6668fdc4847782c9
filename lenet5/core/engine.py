"""LeNet-5's forward and backward pass for one sample, and the drivers that run it over data.

All trainable parameters live in one flat vector `theta` (and gradients in one flat `grad`
of the same layout), so an update is one loop: theta -= eta * grad, with eta a scalar-filled
vector for SGD or LeCun's per-parameter step sizes for SDLM. `unpack` gives the named views.

Every driver takes one small record, a `Spec` built from the network's `Variant` by
`make_spec`: the fixed RBF `prototypes`, the connected (output map, input map) pairs of C1 and
C3, the integer `codes` of the variant's choices (`spec.codes.pooling`, `.activation`,
`.output`, `.loss`), the MAP criterion's `j`, the `graph` (a `Graph`: where each parameter
array sits in theta, the layer sizes `graph.dims` of LeNet-5, LeNet-1 or LeNet-4, the input
resampling and the pooling layers' source maps; see `graph_record`) and the input's `affine`
map x0 = scale x + shift (`input_affine`). Each layer call branches
on its code, so one compiled pass serves every variant and every architecture: the graph is
always input -> C1 -> S2 -> C3 -> S4 -> [C5] -> [F6] -> output, the bracketed layers present
when their unit counts are non-zero.

One sample's pass is the composition of the per-layer kernels in `lenet5.core.kernels`; the
fused drivers below (online training, the Hessian estimate, the trainer's evaluation) call
exactly that composition, so there is one implementation of the math. The fast path beside
it runs the same layers on blocks of LANES samples, one per SIMD lane, through
`lenet5.core.lane_kernels` (`lanes_forward`, `lanes_backward`): inference (`forward_chunk`) and
batch gradients (`gradient_chunk`), tested against the per-sample pass (tests/test_lanes.py).

Compilation (a first run's cost) is kept to one compiled loop per job: `sample_loop` (online
steps, the Hessian estimate, and the trainer's evaluation, so that `lenet5 train` compiles
only it), `forward_chunk` (inference: `lenet5 evaluate`, `predict`) and `gradient_chunk`
(mini-batch training). The pass itself
(`sample_forward`, `sample_backward`) is inlined into them at Numba's level, so LLVM optimises
it once per loop rather than once more per level of calls; flags are passed as runtime values
(a literal would compile a kernel once per value); the batch drivers run one chunk per Python
thread (the kernels release the GIL) instead of compiling a parallel (parfor) version.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numba as nb
import numpy as np

from .architecture import (
    KERNEL,
    TRAINABLE_NAMES,
    VARIANT_CHOICES,
    input_affine_values,
    input_size,
    layers,
    param_shapes,
    resample_matrix,
    table_pairs,
)
from .kernels import (
    ACT_IDENTITY,
    JIT_OPTIONS,
    LOSS_CE,
    LOSS_MAP,
    LOSS_MSE,
    POOL_MAX,
    POOL_SUM,
    activation_backward,
    activation_forward,
    conv_backward,
    conv_forward,
    dense_backward,
    dense_backward_step,
    dense_forward,
    inlined,
    kernel,
    loss_forward_backward,
    map_partition,
    neg_log_softmax_backward,
    neg_log_softmax_forward,
    pool_backward,
    pool_forward,
    rbf_backward,
    rbf_forward,
    softmax_gauss_newton,
)
from .lane_kernels import (
    LANES,
    conv_backward_lanes,
    conv_forward_lanes,
    dense_backward_lanes,
    dense_forward_lanes,
    neg_log_softmax_backward_lanes,
    neg_log_softmax_forward_lanes,
    padded_transpose,
    pool_backward_lanes,
    pool_forward_lanes,
    rbf_backward_lanes,
    rbf_forward_lanes,
)
from .paper import BACKGROUND

LOSSES = {"mse": LOSS_MSE, "map": LOSS_MAP, "ce": LOSS_CE}
OUTPUT_RBF, OUTPUT_SOFTMAX = range(2)
# d2E/dx6^2 at the RBF output: the second derivative of the distance to the target prototype,
# the Gauss-Newton part of both criteria (README, "Choices the paper left open")
RBF_GAUSS_NEWTON = 2.0


def layout(arch="lenet5"):
    """(name -> (start, stop) in theta, size of theta) for an architecture: the arrays in
    TRAINABLE_NAMES order, those the architecture lacks (LeNet-1's C5, F6) of size zero."""
    shapes = param_shapes(arch)
    offsets, start = {}, 0
    for name in TRAINABLE_NAMES:
        size = int(np.prod(shapes[name])) if name in shapes else 0
        offsets[name] = (start, start + size)
        start += size
    return offsets, start


OFFSETS, N_THETA = layout()  # LeNet-5's: C3 stored dense, softmax last
C5_WEIGHT = TRAINABLE_NAMES.index("C5.weight")  # its row in a graph's offsets: the dense layers start there


# ---------------------------------------------------------------- records
# Named tuples: Numba compiles them like tuples (a field read by name costs nothing in compiled
# code), so the compiled drivers take them as arguments and build `Params` themselves. A call
# from Python unboxes a Spec ~3 us slower than a flat tuple of the same arrays: nothing beside
# a batch or a pass, a tenth of one image's forward pass.

class Codes(NamedTuple):
    """The integer codes of a variant's choices and its criterion, as the kernels number them."""
    pooling: int     # kernels.POOL_*
    activation: int  # kernels.ACT_*
    output: int      # OUTPUT_RBF or OUTPUT_SOFTMAX
    loss: int        # kernels.LOSS_*


class Dims(NamedTuple):
    """The layer sizes of an architecture (0 units: the layer is absent)."""
    input: int       # side of the input field (32, or 28 for LeNet-1)
    c1_maps: int
    c1_side: int
    s2_maps: int
    s2_side: int
    c3_maps: int
    c3_side: int
    s4_maps: int
    s4_side: int
    c5_units: int
    f6_units: int
    out_units: int
    resampled: int   # 1 when the input is resampled into the field (LeNet-1)


class Graph(NamedTuple):
    """The architecture part of a spec (graph_record)."""
    offsets: np.ndarray    # (14, 2) int64: (start, stop) in theta of each TRAINABLE_NAMES array
    dims: Dims
    resample: np.ndarray   # (input side, 32): architecture.resample_matrix
    s2_source: np.ndarray  # the C1 map each S2 map pools
    s4_source: np.ndarray  # the C3 map each S4 map pools


class Affine(NamedTuple):
    """The network's input x0 = scale x + shift of the image x (input_affine)."""
    scale: float
    shift: float


class Spec(NamedTuple):
    """What every driver needs besides theta (make_spec; the module docstring)."""
    prototypes: np.ndarray  # (10, 84) RBF prototypes
    c1_pairs: np.ndarray    # (output map, input map) pairs of C1
    c3_pairs: np.ndarray    # ... and of C3
    codes: Codes
    j: float                # the MAP criterion's constant, in theta's dtype
    graph: Graph
    affine: Affine


class Params(NamedTuple):
    """Named views into a flat theta or gradient (unpack)."""
    c1_weight: np.ndarray
    c1_bias: np.ndarray
    s2_coeff: np.ndarray
    s2_bias: np.ndarray
    c3_weight: np.ndarray
    c3_bias: np.ndarray
    s4_coeff: np.ndarray
    s4_bias: np.ndarray
    c5_weight: np.ndarray
    c5_bias: np.ndarray
    f6_weight: np.ndarray
    f6_bias: np.ndarray
    out_weight: np.ndarray
    out_bias: np.ndarray


class Layers(NamedTuple):
    """One buffer per layer output (activations, deltas, pre-activations, ...; workspace)."""
    input: np.ndarray
    c1: np.ndarray
    s2: np.ndarray
    c3: np.ndarray
    s4: np.ndarray
    c5: np.ndarray
    f6: np.ndarray
    out: np.ndarray


class Workspace(NamedTuple):
    """One sample's buffers (workspace(theta, spec))."""
    acts: Layers     # the outputs x
    deltas: Layers   # dE/du
    scratch: Layers  # u in the forward pass, dE/dx in the backward pass
    squares: Layers  # the Hessian pass's x^2


class LaneWorkspace(NamedTuple):
    """A block's buffers (workspace(theta, spec, LANES)): every Layers buffer with a last axis
    of LANES, then scratch of the lane kernels."""
    acts: Layers
    deltas: Layers
    scratch: Layers
    acc: np.ndarray    # a dense layer's sums (dense_forward_lanes)
    h_t: np.ndarray    # a dense layer's input transposed (dense_backward_lanes)
    wide1: np.ndarray  # C1's wide deltas (conv_backward_lanes)
    wide3: np.ndarray  # C3's


class LaneWeights(NamedTuple):
    """The dense layers' weights as the lane kernels read them (lane_weights)."""
    c5_t: np.ndarray   # W^T padded, for the forward pass
    f6_t: np.ndarray
    out_t: np.ndarray
    c5: np.ndarray     # W padded, for dE/dx in the backward pass (empty for inference)
    f6: np.ndarray
    out: np.ndarray


def graph_record(variant, dtype):
    """The architecture part of the spec, a Graph."""
    offsets, _ = layout(variant.arch)
    by_name = {layer.name: layer for layer in layers(variant)}
    dims = [input_size(variant)]
    for name in ("C1", "S2", "C3", "S4"):
        dims += [by_name[name].maps, by_name[name].size]
    dims += [by_name[name].maps if name in by_name else 0 for name in ("C5", "F6", "OUT")]
    dims.append(int(variant.arch == "lenet1"))

    def source(layer):  # pooled map m reads input map m * in / maps (LeNet-4's S2: pairs)
        return np.arange(layer.maps, dtype=np.int64) * layer.in_maps // layer.maps

    return Graph(np.array([offsets[n] for n in TRAINABLE_NAMES], dtype=np.int64),
                 Dims(*(np.int64(d) for d in dims)), resample_matrix(variant).astype(dtype),
                 source(by_name["S2"]), source(by_name["S4"]))

# the batch drivers run one chunk kernel per thread from Python threads (no parfor to compile)
chunk_kernel = nb.njit(nogil=True, **JIT_OPTIONS)


def variant_codes(variant, loss):
    """The Codes of a variant's choices and a criterion, as the kernels number them."""
    pooling = POOL_MAX if variant.pooling == "max" else POOL_SUM
    activation = list(VARIANT_CHOICES["activation"]).index(variant.activation)
    output = OUTPUT_SOFTMAX if variant.output == "softmax" else OUTPUT_RBF  # (targets: an RBF layer)
    return Codes(*(np.int64(c) for c in (pooling, activation, output, LOSSES[loss])))


def make_spec(variant, prototypes, loss="map", j=1.0):
    """The Spec every driver takes (see the module docstring); dtype from `prototypes`."""
    c1 = layers(variant)[0]
    return Spec(prototypes, table_pairs(c1.table), table_pairs(variant.c3_table),
                variant_codes(variant, loss), prototypes.dtype.type(j),
                graph_record(variant, prototypes.dtype), input_affine(variant, prototypes.dtype))


def input_affine(variant, dtype):
    """Affine(scale, shift): the network's input is x0 = scale x + shift of the image x it is
    given (architecture.input_affine_values): (1, 0) for the printed levels, (1/std, -mean/std)
    of the training set for Variant(inputs="unit"), (2, 0.2) for Lush's 0..2.55."""
    f = np.dtype(dtype).type
    scale, shift = input_affine_values(variant.inputs)
    return Affine(f(scale), f(shift))




@kernel
def unpack(theta, graph):
    """The Params of a flat parameter (or gradient) vector: views shaped by the graph's dims,
    its offsets' rows in TRAINABLE_NAMES order; C5's weights seen as (units, maps * 5 * 5),
    e.g. LeNet-5's (120, 400); absent layers empty."""
    o, d = graph.offsets, graph.dims
    n4 = d.s4_maps * d.s4_side * d.s4_side
    last = d.f6_units if d.f6_units > 0 else (d.c5_units if d.c5_units > 0 else n4)  # the output's inputs
    return Params(theta[o[0, 0]:o[0, 1]].reshape((d.c1_maps, 1, KERNEL, KERNEL)), theta[o[1, 0]:o[1, 1]],
                  theta[o[2, 0]:o[2, 1]], theta[o[3, 0]:o[3, 1]],
                  theta[o[4, 0]:o[4, 1]].reshape((d.c3_maps, d.s2_maps, KERNEL, KERNEL)), theta[o[5, 0]:o[5, 1]],
                  theta[o[6, 0]:o[6, 1]], theta[o[7, 0]:o[7, 1]],
                  theta[o[8, 0]:o[8, 1]].reshape((d.c5_units, n4)), theta[o[9, 0]:o[9, 1]],
                  theta[o[10, 0]:o[10, 1]].reshape((d.f6_units, d.c5_units)), theta[o[11, 0]:o[11, 1]],
                  theta[o[12, 0]:o[12, 1]].reshape(((o[12, 1] - o[12, 0]) // last, last)),  # (absent: 0 rows)
                  theta[o[13, 0]:o[13, 1]])


def workspace(theta, spec, lanes=0):
    """Buffers, one per layer output (Layers: the input x0, C1, S2, C3, S4, C5, F6, the output;
    sized by the spec's graph, absent layers empty), made here in Python and handed to the
    compiled loops (made inside them, they cost each loop ~1.6 s of compilation):
    acts (the outputs x), deltas (dE/du) and scratch, which holds a layer's pre-activation u in
    the forward pass and dE/dx in the backward pass until the activation kernel turns it into
    x or delta (kernels never write in place: aliased arrays defeat SIMD); scratch.out holds
    the softmax output's logits z, then dE/dz.
    lanes=0: a Workspace for one sample, its squares holding the Hessian pass's x^2.
    lanes=LANES: a LaneWorkspace for a block (lenet5.core.lane_kernels), every buffer with a
    last axis of LANES, then the dense layers' sums and h^T (flat) and C1's and C3's wide
    deltas (conv_backward_lanes; zero outside the rows it writes)."""
    d, dt = Dims(*(int(v) for v in spec.graph.dims)), theta.dtype
    tail = (lanes,) if lanes else ()

    def layer_outputs():
        return Layers(np.zeros((1, d.input, d.input) + tail, dt),
                      np.zeros((d.c1_maps, d.c1_side, d.c1_side) + tail, dt),
                      np.zeros((d.s2_maps, d.s2_side, d.s2_side) + tail, dt),
                      np.zeros((d.c3_maps, d.c3_side, d.c3_side) + tail, dt),
                      np.zeros((d.s4_maps, d.s4_side, d.s4_side) + tail, dt), np.zeros((d.c5_units,) + tail, dt),
                      np.zeros((d.f6_units,) + tail, dt), np.zeros((d.out_units,) + tail, dt))

    if not lanes:
        return Workspace(layer_outputs(), layer_outputs(), layer_outputs(), layer_outputs())
    n4 = d.s4_maps * d.s4_side * d.s4_side
    # a dense layer's units or inputs, padded to whole lane vectors
    widest = -(-max(n4, d.c5_units, d.f6_units, d.out_units) // lanes) * lanes
    pad = 2 * (KERNEL - 1) * lanes
    return LaneWorkspace(layer_outputs(), layer_outputs(), layer_outputs(), np.empty(lanes * widest, dt),
                         np.empty(lanes * widest, dt), np.zeros((d.c1_maps, pad + d.c1_side * d.input * lanes), dt),
                         np.zeros((d.c3_maps, pad + d.c3_side * d.s2_side * lanes), dt))


@kernel
def resample_into(image, r, out):
    """out = R image R^T (LeNet-1's 16x16 digits in a 28x28 field, architecture.resample_matrix);
    where a row of R is zero (the margins) the background value instead."""
    rows = np.zeros((r.shape[0], image.shape[1]), out.dtype)  # R image
    for o in range(r.shape[0]):
        for i in range(r.shape[1]):
            if r[o, i] != 0:
                for j in range(image.shape[1]):
                    rows[o, j] += r[o, i] * image[i, j]
    for o in range(r.shape[0]):
        for p in range(r.shape[0]):
            acc = out.dtype.type(0.0)
            for j in range(r.shape[1]):
                acc += rows[o, j] * r[p, j]
            out[o, p] = acc
    for o in range(r.shape[0]):
        if r[o].sum() == 0:
            out[o, :] = BACKGROUND
            out[:, o] = BACKGROUND


@inlined
def sample_forward(image, theta, spec, acts, scratch):
    """x0 -> C1 -> S2 -> C3 -> S4 -> [C5] -> [F6] -> output; fills acts, returns nothing."""
    dims, affine = spec.graph.dims, spec.affine
    act, pool, out_kind = spec.codes.activation, spec.codes.pooling, spec.codes.output
    pool_act = ACT_IDENTITY if pool == POOL_MAX else act  # max pooling is not squashed
    c1w, c1b, s2c, s2b, c3w, c3b, s4c, s4b, c5w, c5b, f6w, f6b, ow, ob = unpack(theta, spec.graph)
    x0, x1, x2, x3, x4, x5, x6, y = acts
    _, u1, u2, u3, u4, u5, u6, z = scratch
    if dims.resampled:
        resample_into(image, spec.graph.resample, x0[0])
    else:
        for i in range(image.shape[0]):  # (loops, not array assignments: those compile a
            for j in range(image.shape[1]):  # broadcasting check and its message, ~1 s each)
                x0[0, i, j] = image[i, j]
    if affine.scale != 1.0 or affine.shift != 0.0:  # Variant(inputs="unit"): x0 = (x - mean) / std
        for i in range(x0.shape[1]):
            for j in range(x0.shape[2]):
                x0[0, i, j] = affine.scale * x0[0, i, j] + affine.shift
    conv_forward(x0, c1w, c1b, spec.c1_pairs, u1)
    activation_forward(u1.reshape(-1), x1.reshape(-1), act)
    pool_forward(x1, s2c, s2b, u2, pool, spec.graph.s2_source)
    activation_forward(u2.reshape(-1), x2.reshape(-1), pool_act)
    conv_forward(x2, c3w, c3b, spec.c3_pairs, u3)
    activation_forward(u3.reshape(-1), x3.reshape(-1), act)
    pool_forward(x3, s4c, s4b, u4, pool, spec.graph.s4_source)
    activation_forward(u4.reshape(-1), x4.reshape(-1), pool_act)
    h = x4.reshape(-1)  # the input of the next layer, flat
    if dims.c5_units > 0:
        dense_forward(h, c5w, c5b, u5)  # C5: a 5x5 conv over 5x5 maps is a dot product
        activation_forward(u5, x5, act)
        h = x5
    if dims.f6_units > 0:
        dense_forward(h, f6w, f6b, u6)
        activation_forward(u6, x6, act)
        h = x6
    if out_kind == OUTPUT_RBF:
        rbf_forward(h, spec.prototypes, y)
    else:
        dense_forward(h, ow, ob, z)
        neg_log_softmax_forward(z, y)


@inlined
def sample_backward(theta_w, spec, acts, inputs, deltas, scratch, grad, power, eta):
    """Back-propagate deltas.out (dE/dy) into grad (accumulated).

    power == 1: ordinary gradients; theta_w = theta, inputs = acts.
    power == 2: LeCun's diagonal Gauss-Newton terms; theta_w = theta**2, inputs = acts**2,
    f'(u)^2 in place of f'(u), and the caller has seeded the output stage: scratch.f6 holds
    d2E/dx6^2 (RBF output) or scratch.out holds d2E/dz^2 (softmax output). `acts` always holds
    the real activations (for f' and the max-pooling winners).
    eta (non-empty, power 1 only): the online step theta_w -= eta * gradient is applied to the
    dense layers (C5, F6, a softmax output) as their gradient is formed (dense_backward_step);
    their entries of grad are left untouched, the caller steps the rest.
    """
    dims, s2_source = spec.graph.dims, spec.graph.s2_source
    act, pool, out_kind = spec.codes.activation, spec.codes.pooling, spec.codes.output
    pool_act = ACT_IDENTITY if pool == POOL_MAX else act
    c1w, c1b, s2c, s2b, c3w, c3b, s4c, s4b, c5w, c5b, f6w, f6b, ow, ob = unpack(theta_w, spec.graph)
    g1w, g1b, g2c, g2b, g3w, g3b, g4c, g4b, g5w, g5b, g6w, g6b, gow, gob = unpack(grad, spec.graph)
    step = eta.shape[0] > 0
    _, _, _, _, _, _, _, _, r5w, r5b, r6w, r6b, row, rob = unpack(eta if step else theta_w, spec.graph)
    x0, x1, x2, x3, x4, x5, x6, y = acts
    i0, i1, i2, i3, i4, i5, i6, _ = inputs
    e0, e1, e2, e3, e4, e5, e6, dy = deltas
    _, dx1, dx2, dx3, dx4, dx5, dx6, dz = scratch  # dE/dx of each layer's output
    flat4, iflat4, dflat4 = x4.reshape(-1), i4.reshape(-1), dx4.reshape(-1)
    # flags as runtime values (a literal True/False, or 1/2, would compile each kernel twice)
    yes, no = np.bool_(True), np.bool_(False)
    # the output layer's input (F6, else C5, else S4 flat): output, its `inputs`, its dE/dx
    h, ih, dh = (x6, i6, dx6) if dims.f6_units > 0 else ((x5, i5, dx5) if dims.c5_units > 0 else
                                                          (flat4, iflat4, dflat4))
    if out_kind == OUTPUT_RBF:
        if power == 1:
            rbf_backward(h, spec.prototypes, dy, dh)         # dE/dx6
    else:
        if power == 1:
            neg_log_softmax_backward(y, dy, dz)              # dE/dz
        if step:
            dense_backward_step(ih, ow, row, dz, ob, rob, dh, yes)
        else:
            dense_backward(ih, ow, dz, gow, gob, dh, yes)   # dE/dx6 = W^T dE/dz
    if dims.f6_units > 0:
        activation_backward(x6, dx6, e6, power, act)         # delta6 = f'(u6) dE/dx6
        below, dbelow = (i5, dx5) if dims.c5_units > 0 else (iflat4, dflat4)
        if step:
            dense_backward_step(below, f6w, r6w, e6, f6b, r6b, dbelow, yes)
        else:
            dense_backward(below, f6w, e6, g6w, g6b, dbelow, yes)  # dE/dx5 = W6^T delta6
    if dims.c5_units > 0:
        activation_backward(x5, dx5, e5, power, act)
        if step:
            dense_backward_step(iflat4, c5w, r5w, e5, c5b, r5b, dflat4, yes)
        else:
            dense_backward(iflat4, c5w, e5, g5w, g5b, dflat4, yes)
    activation_backward(flat4, dflat4, e4.reshape(-1), power, pool_act)  # S4
    pool_backward(x3, i3, s4c, e4, g4c, g4b, dx3, pool, spec.graph.s4_source)  # dE/dx3 = beta4 up(delta4)
    # (S4 never shares its input maps; S2 does in LeNet-4)
    activation_backward(x3.reshape(-1), dx3.reshape(-1), e3.reshape(-1), power, act)  # beta f' up
    conv_backward(i2, c3w, e3, spec.c3_pairs, g3w, g3b, dx2, yes)
    activation_backward(x2.reshape(-1), dx2.reshape(-1), e2.reshape(-1), power, pool_act)
    if s2_source.shape[0] == x1.shape[0]:
        pool_backward(x1, i1, s2c, e2, g2c, g2b, dx1, pool, s2_source)
    else:  # LeNet-4: two S2 maps read each C1 map; their dE/dx add up
        per_map = np.empty((s2_source.shape[0], x1.shape[1], x1.shape[2]), x1.dtype)
        pool_backward(x1, i1, s2c, e2, g2c, g2b, per_map, pool, s2_source)
        dx1[:] = 0.0
        for m in range(s2_source.shape[0]):
            for i in range(x1.shape[1]):
                for j in range(x1.shape[2]):
                    dx1[s2_source[m], i, j] += per_map[m, i, j]
    activation_backward(x1.reshape(-1), dx1.reshape(-1), e1.reshape(-1), power, act)
    conv_backward(i0, c1w, e1, spec.c1_pairs, g1w, g1b, e0, no)


@inlined
def sample_loss_gradient(image, label, theta, spec, work, grad):
    """Forward, criterion, backward for one sample; adds dE/dtheta to grad, returns E.
    work: (acts, deltas, scratch) of a Workspace."""
    acts, deltas, scratch = work
    sample_forward(image, theta, spec, acts, scratch)
    loss = loss_forward_backward(acts.out, label, spec.codes.loss, spec.j, deltas.out)
    sample_backward(theta, spec, acts, acts, deltas, scratch, grad, np.int64(1), theta[:0])
    return loss


# ---------------------------------------------------------------- drivers

def thread_bounds(n, threads=None):
    """Split n samples into one contiguous chunk per thread (default: Numba's thread count):
    chunk t is [bounds[t], bounds[t+1]). Every batch driver takes its samples this way."""
    parts = max(1, min(threads or nb.get_num_threads(), n))
    return np.linspace(0, n, parts + 1).astype(np.int64)


def run_chunks(work, bounds):
    """work(t, a, b) for each chunk t = [a, b) of `bounds`, the chunks on parallel threads (the
    chunk kernels release the GIL); the first chunk runs on the calling thread."""
    chunks = [(t, int(bounds[t]), int(bounds[t + 1])) for t in range(bounds.shape[0] - 1)]
    futures = [_pool(len(chunks) - 1).submit(work, *chunk) for chunk in chunks[1:]]
    work(*chunks[0])
    for future in futures:
        future.result()


_POOLS = {}


def _pool(workers):
    """A persistent pool of `workers` threads (started once, reused by every batch)."""
    if workers not in _POOLS:
        _POOLS[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lenet5-engine")
    return _POOLS[workers]


_THREAD = threading.local()


def lane_workspace(theta, spec):
    """This thread's workspace(theta, spec, LANES), made once per dtype and graph and kept
    between calls: fresh pages for its ~4 MB (float32) cost ~0.4 ms a call."""
    key = (theta.dtype.str, tuple(int(d) for d in spec.graph.dims))
    if getattr(_THREAD, "key", None) != key:
        _THREAD.key, _THREAD.work = key, workspace(theta, spec, LANES)
    return _THREAD.work


def lane_weights(theta, spec, backward):
    """LaneWeights: the dense layers' W^T (forward) and, when `backward`, W (for dE/dx), each
    zero-padded to whole lane vectors (padded_transpose); empty in place of W otherwise."""
    p = unpack(theta, spec.graph)
    c5w, f6w, ow = p.c5_weight, p.f6_weight, p.out_weight
    none = np.zeros((0, 0), theta.dtype)
    return LaneWeights(padded_transpose(c5w), padded_transpose(f6w), padded_transpose(ow),
                       padded_transpose(c5w.T) if backward else none,
                       padded_transpose(f6w.T) if backward else none, padded_transpose(ow.T) if backward else none)


@inlined
def lanes_forward(images, start, n, theta, spec, acts, scratch, dense, acc):
    """sample_forward for images[start:start+n] (n <= LANES) in the lanes of acts; lanes past
    n take zero images (their outputs are not read)."""
    dims, affine = spec.graph.dims, spec.affine
    act, pool, out_kind = spec.codes.activation, spec.codes.pooling, spec.codes.output
    pool_act = ACT_IDENTITY if pool == POOL_MAX else act
    c1w, c1b, s2c, s2b, c3w, c3b, s4c, s4b, _, c5b, _, f6b, _, ob = unpack(theta, spec.graph)
    c5t, f6t, out_t = dense.c5_t, dense.f6_t, dense.out_t
    x0, x1, x2, x3, x4, x5, x6, y = acts
    _, u1, u2, u3, u4, u5, u6, z = scratch
    size, L = dims.input, LANES
    for i in range(size if n < L else 0):  # unused lanes compute on zeros (finite, so that
        for j in range(size):              # their zero deltas add exactly nothing)
            for lane in range(n, L):
                x0[0, i, j, lane] = 0.0
    if dims.resampled:
        one = np.empty((size, size), x0.dtype)  # one resampled image (LeNet-1)
        for lane in range(n):
            resample_into(images[start + lane], spec.graph.resample, one)
            for i in range(size):
                for j in range(size):
                    x0[0, i, j, lane] = affine.scale * one[i, j] + affine.shift
    else:
        for i in range(size):  # row by row across the lanes: x0's row (size x LANES) stays in L1
            for lane in range(n):
                row = images[start + lane, i]
                for j in range(size):
                    x0[0, i, j, lane] = affine.scale * row[j] + affine.shift
    conv_forward_lanes(x0, c1w, c1b, spec.c1_pairs, u1)
    activation_forward(u1.reshape(-1), x1.reshape(-1), act)
    pool_forward_lanes(x1, s2c, s2b, u2, pool, spec.graph.s2_source)
    activation_forward(u2.reshape(-1), x2.reshape(-1), pool_act)
    conv_forward_lanes(x2, c3w, c3b, spec.c3_pairs, u3)
    activation_forward(u3.reshape(-1), x3.reshape(-1), act)
    pool_forward_lanes(x3, s4c, s4b, u4, pool, spec.graph.s4_source)
    activation_forward(u4.reshape(-1), x4.reshape(-1), pool_act)
    h = x4.reshape((-1, L))  # (maps * 5 * 5, L): S4's output flat, per lane
    if dims.c5_units > 0:
        dense_forward_lanes(h, c5t, c5b, u5, acc[:L * c5t.shape[1]].reshape((L, -1)))
        activation_forward(u5.reshape(-1), x5.reshape(-1), act)
        h = x5
    if dims.f6_units > 0:
        dense_forward_lanes(h, f6t, f6b, u6, acc[:L * f6t.shape[1]].reshape((L, -1)))
        activation_forward(u6.reshape(-1), x6.reshape(-1), act)
        h = x6
    if out_kind == OUTPUT_RBF:
        rbf_forward_lanes(h, spec.prototypes, y)
    else:
        dense_forward_lanes(h, out_t, ob, z, acc[:L * out_t.shape[1]].reshape((L, -1)))
        neg_log_softmax_forward_lanes(z, y)


@inlined
def lanes_backward(theta, spec, acts, deltas, scratch, grad, dense, acc, h_t, wide1, wide3):
    """sample_backward (power 1, no step) for a block: deltas.out holds dE/dy per lane, zero in
    unused lanes; the parameter gradients, summed over the lanes, are added into grad.
    h_t, wide1, wide3: scratch for dense_backward_lanes and C1's and C3's conv_backward_lanes."""
    dims, s2_source = spec.graph.dims, spec.graph.s2_source
    act, pool, out_kind = spec.codes.activation, spec.codes.pooling, spec.codes.output
    pool_act = ACT_IDENTITY if pool == POOL_MAX else act
    c1w, _, s2c, _, c3w, _, s4c, _, _, _, _, _, _, _ = unpack(theta, spec.graph)
    g1w, g1b, g2c, g2b, g3w, g3b, g4c, g4b, g5w, g5b, g6w, g6b, gow, gob = unpack(grad, spec.graph)
    c5p, f6p, out_p = dense.c5, dense.f6, dense.out
    x0, x1, x2, x3, x4, x5, x6, y = acts
    e0, e1, e2, e3, e4, e5, e6, dy = deltas
    _, dx1, dx2, dx3, dx4, dx5, dx6, dz = scratch  # dE/dx of each layer's output
    L = LANES
    yes, no = np.bool_(True), np.bool_(False)
    flat4, dflat4 = x4.reshape((-1, L)), dx4.reshape((-1, L))
    h, dh = (x6, dx6) if dims.f6_units > 0 else ((x5, dx5) if dims.c5_units > 0 else (flat4, dflat4))
    if out_kind == OUTPUT_RBF:
        rbf_backward_lanes(h, spec.prototypes, dy, dh)          # dE/dx6
    else:
        neg_log_softmax_backward_lanes(y, dy, dz)             # dE/dz
        dense_backward_lanes(h, out_p, dz, gow, gob, dh, yes, h_t[:L * h.shape[0]].reshape((L, -1)),
                             acc[:L * out_p.shape[1]].reshape((L, -1)))
    if dims.f6_units > 0:
        activation_backward(x6.reshape(-1), dx6.reshape(-1), e6.reshape(-1), 1, act)
        below, dbelow = (x5, dx5) if dims.c5_units > 0 else (flat4, dflat4)
        dense_backward_lanes(below, f6p, e6, g6w, g6b, dbelow, yes, h_t[:L * below.shape[0]].reshape((L, -1)),
                             acc[:L * f6p.shape[1]].reshape((L, -1)))
    if dims.c5_units > 0:
        activation_backward(x5.reshape(-1), dx5.reshape(-1), e5.reshape(-1), 1, act)
        dense_backward_lanes(flat4, c5p, e5, g5w, g5b, dflat4, yes, h_t[:L * flat4.shape[0]].reshape((L, -1)),
                             acc[:L * c5p.shape[1]].reshape((L, -1)))
    activation_backward(x4.reshape(-1), dx4.reshape(-1), e4.reshape(-1), 1, pool_act)  # S4
    pool_backward_lanes(x3, s4c, e4, g4c, g4b, dx3, pool, spec.graph.s4_source)  # dE/dx3 = beta4 up(delta4)
    activation_backward(x3.reshape(-1), dx3.reshape(-1), e3.reshape(-1), 1, act)  # beta f' up
    conv_backward_lanes(x2, c3w, e3, spec.c3_pairs, g3w, g3b, dx2, yes, wide3)
    activation_backward(x2.reshape(-1), dx2.reshape(-1), e2.reshape(-1), 1, pool_act)
    if s2_source.shape[0] == x1.shape[0]:
        pool_backward_lanes(x1, s2c, e2, g2c, g2b, dx1, pool, s2_source)
    else:  # LeNet-4: two S2 maps read each C1 map; their dE/dx add up
        per_map = np.empty((s2_source.shape[0], x1.shape[1], x1.shape[2], L), x1.dtype)
        pool_backward_lanes(x1, s2c, e2, g2c, g2b, per_map, pool, s2_source)
        dx1[:] = 0.0
        for m in range(s2_source.shape[0]):
            src, dst = per_map[m].reshape(-1), dx1[s2_source[m]].reshape(-1)
            for q in range(src.shape[0]):
                dst[q] += src[q]
    activation_backward(x1.reshape(-1), dx1.reshape(-1), e1.reshape(-1), 1, act)
    conv_backward_lanes(x0, c1w, e1, spec.c1_pairs, g1w, g1b, e0, no, wide1)  # (no dE/dx0)


@chunk_kernel
def forward_chunk(images, theta, spec, a, b, out, work, dense):
    """Outputs y of images[a:b] into out[a:b], on the calling thread, LANES samples at a time
    through the lane kernels (lenet5.core.lane_kernels): the same layers as sample_forward.
    work: lane_workspace(theta, spec); dense: lane_weights(theta, spec, False)."""
    acts, scratch, acc = work.acts, work.scratch, work.acc
    y = acts.out
    for start in range(a, b, LANES):
        n = min(LANES, b - start)
        lanes_forward(images, start, n, theta, spec, acts, scratch, dense, acc)
        for lane in range(n):
            for k in range(y.shape[0]):
                out[start + lane, k] = y[k, lane]


@chunk_kernel
def gradient_chunk(images, labels, theta, spec, a, b, losses, grad, work, dense):
    """losses[a:b] and the sum of the gradients of images[a:b] added into grad, LANES samples
    at a time (loss_gradient_batch's chunk): lanes_forward, the criterion lane by lane, then
    lanes_backward. work: lane_workspace(theta, spec); dense: lane_weights(theta, spec, True)."""
    acts, deltas, scratch, acc, h_t, wide1, wide3 = work
    y, dy = acts.out, deltas.out
    column, dcolumn = np.empty(y.shape[0], theta.dtype), np.empty(y.shape[0], theta.dtype)
    for start in range(a, b, LANES):
        n = min(LANES, b - start)
        lanes_forward(images, start, n, theta, spec, acts, scratch, dense, acc)
        for lane in range(LANES):
            if lane < n:
                for k in range(y.shape[0]):
                    column[k] = y[k, lane]
                losses[start + lane] = loss_forward_backward(column, labels[start + lane], spec.codes.loss,
                                                             spec.j, dcolumn)
            else:
                dcolumn[:] = 0.0  # an unused lane adds nothing to the gradient
            for k in range(y.shape[0]):
                dy[k, lane] = dcolumn[k]
        lanes_backward(theta, spec, acts, deltas, scratch, grad, dense, acc, h_t, wide1, wide3)


def forward_batch(images, theta, spec, bounds, out, shared_loop=False):
    """Outputs y for a batch; samples split over threads in contiguous chunks. shared_loop:
    through sample_loop (MODE_FORWARD) instead of forward_chunk: sample_forward's outputs bit
    for bit (the lanes agree to rounding) and one compiled loop, not two, for a first `lenet5
    train` (~3 s); the trainer evaluates this way."""
    if shared_loop:
        order, flat = np.arange(images.shape[0], dtype=np.int64), out.reshape(-1)
        run_chunks(lambda t, a, b: sample_loop(images, order[:0], order[a:b], theta, theta, spec, MODE_FORWARD,
                                               0, flat[:0], flat[a * out.shape[1]:b * out.shape[1]],
                                               workspace(theta, spec)), bounds)
        return
    dense = lane_weights(theta, spec, False)
    run_chunks(lambda t, a, b: forward_chunk(images, theta, spec, a, b, out, lane_workspace(theta, spec), dense),
               bounds)


def forward_layers(image, theta, spec):
    """Every layer's output for one image, a Layers record (input, c1, s2, c3, s4, c5, f6,
    out), fresh arrays (for looking inside the network, not for speed)."""
    work = workspace(theta, spec)
    forward_into(image, theta, spec, work.acts, work.scratch)
    return work.acts


@kernel
def forward_into(image, theta, spec, acts, scratch):
    """sample_forward, callable from Python (forward_layers)."""
    sample_forward(image, theta, spec, acts, scratch)


# A block costs about as much whatever number of its lanes is used (~1.2 ms for 32 float32
# samples' gradients here), one sample through sample_loop ~60 us: a chunk's last few samples
# go sample by sample unless they fill this many lanes (a batch of 32 over two threads: 16 each).
PARTIAL_BLOCK_MIN = 20


def loss_gradient_batch(images, labels, theta, spec, bounds, losses, grad):
    """Per-sample losses and the SUM of per-sample gradients; one gradient buffer per thread.
    Each thread's chunk runs through gradient_chunk (the lanes), its last samples through
    sample_loop when they fill fewer than PARTIAL_BLOCK_MIN lanes."""
    partial = np.zeros((bounds.shape[0] - 1, theta.shape[0]), theta.dtype)
    order = np.arange(images.shape[0], dtype=np.int64)
    dense = lane_weights(theta, spec, True)

    def chunk(t, a, b):
        lanes = a + (b - a) // LANES * LANES  # whole blocks through the lanes,
        if b - lanes >= PARTIAL_BLOCK_MIN:    # and a remainder too when it fills enough lanes,
            lanes = b
        if lanes > a:
            gradient_chunk(images, labels, theta, spec, a, lanes, losses, partial[t], lane_workspace(theta, spec),
                           dense)
        if lanes < b:                         # else sample by sample
            sample_loop(images, labels, order[lanes:b], theta, theta, spec, MODE_GRADIENT, 0, losses[lanes:b],
                        partial[t], workspace(theta, spec))

    run_chunks(chunk, bounds)
    np.sum(partial, axis=0, out=grad)


def train_online(images, labels, order, theta, eta, spec, losses):
    """Online (batch-1) training over images[order]: for each sample,
    theta -= eta * dE/dtheta. eta is per parameter (SGD: constant; SDLM: eps / (mu + h))."""
    sample_loop(images, labels, order, theta, eta, spec, MODE_STEP, 0, losses, theta[:0], workspace(theta, spec))


def hessian_diagonal(images, theta, spec, hess):
    """LeCun's diagonal Gauss-Newton estimate (Appendix C), summed over `images` into hess:
    d2E/du2 = f'(u)^2 d2E/dx2;  d2E/dx2 = sum_k w_k^2 d2E/du_k2;  d2E/dw2 = sum x^2 d2E/du2.
    Seed: at the RBF output d2E/dx6^2 = RBF_GAUSS_NEWTON for every F6 unit; at the softmax
    output the diagonal p(1-p) of the cross-entropy's Gauss-Newton matrix at the logits."""
    hessian_diagonal_seeded(images, theta, spec, SEED_GAUSS_NEWTON, hess)


# The seed d2E/dx6^2 at the RBF output (the --gn-seed choice, lenet5.training.step_sizes.GN_SEEDS):
# SEED_GAUSS_NEWTON: RBF_GAUSS_NEWTON = 2 for every F6 unit (the default);
# SEED_HALF: 1, the 1/2 ||x - p||^2 convention of Lush/EBLearn (every h_kk halved);
# SEED_EXACT: the exact diagonal of d2E/dx6^2 of the criterion, RBF and criterion taken together
#   as Gauss-Newton's "loss". For E = y_label it is 2; for the MAP criterion
#   E = y_label + log(e^-j + sum_i e^-y_i), with p_i = e^-y_i / Z, p_0 = e^-j / Z and
#   d_ij = 2 (x_j - P_ij): d2E/dx_j^2 = 2 p_0 + sum_i p_i d_ij^2 - (sum_i p_i d_ij)^2 >= 0.
SEED_GAUSS_NEWTON, SEED_HALF, SEED_EXACT = range(3)


def hessian_diagonal_seeded(images, theta, spec, rbf_seed, hess):
    """hessian_diagonal with the RBF output's seed chosen by `rbf_seed` (SEED_*)."""
    n = images.shape[0]
    sample_loop(images, np.zeros(0, np.int64), np.arange(n, dtype=np.int64), theta, theta, spec, MODE_HESSIAN,
                rbf_seed, np.empty(n, theta.dtype), hess, workspace(theta, spec))


# What sample_loop does with each sample (see there)
MODE_STEP, MODE_GRADIENT, MODE_HESSIAN, MODE_FORWARD = range(4)


@chunk_kernel
def sample_loop(images, labels, order, theta, eta, spec, mode, rbf_seed, losses, out, work):
    """The one compiled per-sample loop behind online training, the Hessian estimate, the
    trainer's evaluation and the few samples of a batch gradient left over from the lanes (so
    that a first run compiles the forward and backward passes once). For each
    sample images[order[n]], after its forward pass:
    MODE_STEP:     losses[n] = E, then the online step theta -= eta * dE/dtheta (out unused);
    MODE_GRADIENT: losses[n] = E, out += dE/dtheta (the sum over the samples; eta unused);
    MODE_HESSIAN:  out += the sample's diagonal Gauss-Newton terms (hessian_diagonal), the RBF
                   output seeded by rbf_seed (labels, eta and losses unused);
    MODE_FORWARD:  out[n*K:(n+1)*K] = its K outputs y, nothing else (forward_batch, shared_loop).
    work: workspace(theta, spec)."""
    acts, deltas, scratch, squares = work
    hessian = mode == MODE_HESSIAN
    weights = theta * theta if hessian else theta  # the backward pass's weights: w^2 for the Hessian
    grad = np.zeros_like(theta) if mode == MODE_STEP else out
    # MODE_STEP: the dense layers (C5 on, the last in theta) take their step inside the backward
    # pass; the parameters before them, theta[:stepped], are stepped here
    step_eta = eta if mode == MODE_STEP else eta[:0]
    stepped = spec.graph.offsets[C5_WEIGHT, 0] if mode == MODE_STEP else 0
    for n in range(order.shape[0]):
        s = order[n]
        sample_forward(images[s], theta, spec, acts, scratch)
        if mode == MODE_FORWARD:
            y = acts.out
            for k in range(y.shape[0]):
                out[n * y.shape[0] + k] = y[k]
            continue
        inputs, power = acts, np.int64(1)
        if hessian:  # inputs x^2, f'^2, the output stage seeded with its curvature
            square_into(acts.input.reshape(-1), squares.input.reshape(-1))
            square_into(acts.c1.reshape(-1), squares.c1.reshape(-1))
            square_into(acts.s2.reshape(-1), squares.s2.reshape(-1))
            square_into(acts.c3.reshape(-1), squares.c3.reshape(-1))
            square_into(acts.s4.reshape(-1), squares.s4.reshape(-1))
            square_into(acts.c5.reshape(-1), squares.c5.reshape(-1))
            square_into(acts.f6.reshape(-1), squares.f6.reshape(-1))
            if spec.codes.output == OUTPUT_RBF:
                rbf_curvature(acts.f6, acts.out, spec, rbf_seed, scratch.f6)
            else:
                softmax_gauss_newton(acts.out, scratch.out)
            inputs, power = squares, np.int64(2)
        else:
            losses[n] = loss_forward_backward(acts.out, labels[s], spec.codes.loss, spec.j, deltas.out)
        sample_backward(weights, spec, acts, inputs, deltas, scratch, grad, power, step_eta)
        for k in range(stepped):  # the step of the layers below C5, grad zeroed for the next sample
            theta[k] -= eta[k] * grad[k]
            grad[k] = 0.0


@kernel
def rbf_curvature(x6, y, spec, rbf_seed, out):
    """Fill out (84,) with the seed d2E/dx6^2 of one sample (x6: F6's output, y: the RBF's)."""
    prototypes, j = spec.prototypes, spec.j
    if rbf_seed == SEED_HALF:
        out[:] = RBF_GAUSS_NEWTON / 2
        return
    out[:] = RBF_GAUSS_NEWTON
    if rbf_seed == SEED_GAUSS_NEWTON or spec.codes.loss != LOSS_MAP:
        return
    top, total = map_partition(y, j)
    p0 = np.exp(-j - top) / total
    for i in range(out.shape[0]):
        first = 0.0
        second = 0.0
        for k in range(y.shape[0]):
            p = np.exp(-y[k] - top) / total
            d = 2.0 * (x6[i] - prototypes[k, i])
            first += p * d
            second += p * d * d
        out[i] = RBF_GAUSS_NEWTON * p0 + second - first * first


@kernel
def square_into(src, dst):
    """dst = src ** 2, elementwise (flat views)."""
    for i in range(src.shape[0]):
        dst[i] = src[i] * src[i]


# Numba caches these functions with the code they call from the files below compiled in; a
# change to any of those files must recompile them (lenet5.core.jit_cache).
from .jit_cache import flush_if_changed  # noqa: E402

flush_if_changed(globals(), "core/kernels.py", "core/lane_kernels.py", "core/engine.py")
