"""LeNet-5 over a whole batch as im2col + matrix multiplies (numpy BLAS): the classic way to
turn convolution into GEMM, kept as a measured alternative to the engine's batch drivers.

The per-sample Numba kernels (lenet5.core.kernels, composed by lenet5.core.engine) are the reference:
one loop per formula. Here the same formulas run over a batch laid out channels-last, (N, H,
W, C), so that every convolution is one matrix multiply:

    im2col: cols[(n, y, x), (c, i, j)] = x[n, y + i, x + j, c]          (5x5 'valid' windows)
    conv:   u[(n, y, x), m] = cols @ W[m, (c, i, j)]^T + b[m]           (C1, C3; C5 and F6 are
            plain dense layers: C5's 5x5 windows over 5x5 maps are the whole map)
    dE/dW = delta^T @ cols,   dE/db = sum of delta,   dE/dcols = delta @ W, and dE/dx is
            dE/dcols summed back onto the windows (col2im).

C3 is multiplied dense, 16 x 6 kernels, with Table I's unconnected kernels held at zero
(their gradient is zeroed too): one (N*100, 150) x (150, 16) product rather than 60 small
ones. The activations are the reference's own Numba kernel (activation_forward/backward) over
the flat arrays; pooling, outputs and criteria are numpy expressions of the formulas in
lenet5.core.kernels. Every variant and criterion is covered (tests/test_gemm.py checks it against
the engine in float64 and float32).

Measured on the project's 2-core machines (results/bench.md, `lenet5 bench` figures
*_gemm), this path is SLOWER than the engine's per-sample kernels, so LeNet5 does not
dispatch to it: LeNet-5's convolutions make skinny products (C1: 6 outputs from 25 inputs,
C3: 16 from 150) that numpy's BLAS runs at a fraction of its large-matrix rate, and the
im2col copies and the per-layer numpy passes add memory traffic the fused per-sample pass
does not have. Only C5 and F6 gain from batching.

`forward(theta, spec, images)` -> outputs y (N, 10); `losses_and_gradient(theta, spec,
images, labels)` -> (per-sample losses, the SUM of per-sample gradients laid out like theta),
the same as engine.forward_batch and engine.loss_gradient_batch.
"""
import numba as nb
import numpy as np

from .architecture import KERNEL, PARAM_SHAPES, POOL
from .engine import OFFSETS, OUTPUT_RBF, Layers
from .kernels import ACT_IDENTITY, JIT_OPTIONS, LOSS_MAP, POOL_MAX, activation_backward, activation_forward

CHUNK = 32  # samples per pass through the layers (fastest of 8-128 measured: stays in cache)

kernel = nb.njit(**JIT_OPTIONS)


def views(flat):
    """Name -> shaped view of a flat theta (or gradient)."""
    return {name: flat[a:b].reshape(PARAM_SHAPES[name]) for name, (a, b) in OFFSETS.items()}


@kernel
def im2col(x):
    """(N, H, W, C) -> (N * H' * W', C * 25) windows, columns in (c, i, j) order (the order
    of a conv weight's trailing (in_maps, 5, 5) axes). (A loop: numpy's copy of a strided
    window view runs ~10x slower, its innermost runs being 5 long.)"""
    n, h, w, c = x.shape
    oh, ow = h - KERNEL + 1, w - KERNEL + 1
    cols = np.empty((n, oh, ow, c, KERNEL, KERNEL), x.dtype)
    for s in range(n):
        for y in range(oh):
            for xx in range(ow):
                for ch in range(c):
                    for i in range(KERNEL):
                        for j in range(KERNEL):
                            cols[s, y, xx, ch, i, j] = x[s, y + i, xx + j, ch]
    return cols.reshape(n * oh * ow, c * KERNEL * KERNEL)


@kernel
def col2im(dcols, dx):
    """The adjoint of im2col: dE/dx (N, H, W, C), zeroed then summed into, from dE/dcols."""
    n, h, w, c = dx.shape
    oh, ow = h - KERNEL + 1, w - KERNEL + 1
    d = dcols.reshape(n, oh, ow, c, KERNEL, KERNEL)
    dx[:] = 0.0
    for s in range(n):
        for y in range(oh):
            for xx in range(ow):
                for ch in range(c):
                    for i in range(KERNEL):
                        for j in range(KERNEL):
                            dx[s, y + i, xx + j, ch] += d[s, y, xx, ch, i, j]


def activate(u, kind):
    x = np.empty_like(u)
    activation_forward(u.reshape(-1), x.reshape(-1), kind)
    return x


def activation_delta(x, dx, kind):
    """delta = f'(u) dE/dx, from the output x."""
    delta = np.empty_like(x)
    activation_backward(x.reshape(-1), dx.reshape(-1), delta.reshape(-1), 1, kind)
    return delta


def blocks(x):
    """(N, H, W, C) -> the four inputs of each 2x2 block, each (N, H/2, W/2, C)."""
    return x[:, 0::POOL, 0::POOL], x[:, 0::POOL, 1::POOL], x[:, 1::POOL, 0::POOL], x[:, 1::POOL, 1::POOL]


def pool(x, coeff, bias, kind):
    a, b, c, d = blocks(x)
    if kind == POOL_MAX:
        return np.maximum(np.maximum(a, b), np.maximum(c, d))
    return (a + b + c + d) * coeff + bias


def pool_backward(x, coeff, delta, kind, grad_coeff, grad_bias):
    """dE/dx of a pooling layer; accumulates dE/dcoeff and dE/dbias (sum pooling)."""
    dx = np.zeros_like(x)
    parts = blocks(x)
    targets = blocks(dx)
    if kind == POOL_MAX:  # the first winner in row-major order takes delta, as the reference
        top = pool(x, None, None, POOL_MAX)
        free = np.ones(top.shape, bool)
        for part, target in zip(parts, targets):
            win = free & (part == top)
            target[...] = np.where(win, delta, 0)
            free &= ~win
        return dx
    grad_coeff += np.einsum("nyxc,nyxc->c", delta, parts[0] + parts[1] + parts[2] + parts[3])
    grad_bias += delta.sum(axis=(0, 1, 2))
    up = delta * coeff
    for target in targets:
        target[...] = up
    return dx


class Weights:
    """The parameters as the matrix multiplies want them (channels-last C5, C3 masked)."""

    def __init__(self, theta, spec):
        p = views(theta)
        self.c3_mask = c3_mask(spec, theta.dtype)
        self.c1 = p["C1.weight"].reshape(6, -1)
        self.c3 = (p["C3.weight"] * self.c3_mask).reshape(16, -1)
        self.c5 = np.ascontiguousarray(p["C5.weight"].transpose(0, 2, 3, 1)).reshape(120, -1)  # (y, x, c)
        self.p = p


def c3_mask(spec, dtype):
    """(16, 6, 1, 1) ones where the spec's C3 pairs connect, zeros elsewhere."""
    mask = np.zeros((16, 6, 1, 1), dtype)
    pairs = spec.c3_pairs
    mask[pairs[:, 0], pairs[:, 1]] = 1
    return mask


def forward_chunk(w, spec, images):
    """Every layer's output for a chunk of images (Layers, channels-last), and the im2col
    matrices."""
    act, kind = spec.codes.activation, spec.codes.pooling
    pool_act = ACT_IDENTITY if kind == POOL_MAX else act
    p = w.p
    n = len(images)
    a, b = spec.affine  # the input's x0 = a x + b (engine.input_affine)
    x0 = np.ascontiguousarray((images if (a, b) == (1, 0) else a * images + b)[..., None])
    cols1 = im2col(x0)
    x1 = activate((cols1 @ w.c1.T + p["C1.bias"]).reshape(n, 28, 28, 6), act)
    x2 = activate(pool(x1, p["S2.coeff"], p["S2.bias"], kind), pool_act)
    cols3 = im2col(x2)
    x3 = activate((cols3 @ w.c3.T + p["C3.bias"]).reshape(n, 10, 10, 16), act)
    x4 = activate(pool(x3, p["S4.coeff"], p["S4.bias"], kind), pool_act)
    x5 = activate(x4.reshape(n, -1) @ w.c5.T + p["C5.bias"], act)
    x6 = activate(x5 @ p["F6.weight"].T + p["F6.bias"], act)
    if spec.codes.output == OUTPUT_RBF:  # y[k] = sum_j (x6[j] - P[k, j])^2
        y = ((x6[:, None, :] - spec.prototypes[None]) ** 2).sum(axis=2)
    else:  # y = -log softmax(z), z = W x6 + b
        z = x6 @ p["OUT.weight"].T + p["OUT.bias"]
        top = z.max(axis=1, keepdims=True)
        y = top + np.log(np.exp(z - top).sum(axis=1, keepdims=True)) - z
    return Layers(x0, x1, x2, x3, x4, x5, x6, y), (cols1, cols3)


def criterion(y, labels, spec):
    """Per-sample E and dE/dy (kernels.loss_forward_backward over a batch)."""
    loss_kind, j = spec.codes.loss, spec.j
    rows = np.arange(len(y))
    dy = np.zeros_like(y)
    dy[rows, labels] = 1
    losses = y[rows, labels].copy()
    if loss_kind == LOSS_MAP:  # E = y_label + log(e^-j + sum_k e^-y_k), shifted by the top term
        top = np.maximum(-j, (-y).max(axis=1, keepdims=True))
        e = np.exp(-y - top)
        total = np.exp(-j - top) + e.sum(axis=1, keepdims=True)
        dy -= e / total
        losses += (top + np.log(total))[:, 0]
    return losses, dy


def backward_chunk(w, spec, acts, cols, dy, grad):
    """Back-propagate dE/dy through the chunk; adds the summed gradients into grad's views."""
    act, kind = spec.codes.activation, spec.codes.pooling
    pool_act = ACT_IDENTITY if kind == POOL_MAX else act
    p, g = w.p, views(grad)
    x0, x1, x2, x3, x4, x5, x6, y = acts
    cols1, cols3 = cols
    n = len(y)
    if spec.codes.output == OUTPUT_RBF:  # dE/dx6 = 2 sum_k dE/dy_k (x6 - P_k)
        dx6 = 2 * (dy.sum(axis=1, keepdims=True) * x6 - dy @ spec.prototypes)
    else:  # dE/dz = p sum_k dE/dy_k - dE/dy, p = e^-y
        dz = np.exp(-y) * dy.sum(axis=1, keepdims=True) - dy
        g["OUT.weight"] += dz.T @ x6
        g["OUT.bias"] += dz.sum(axis=0)
        dx6 = dz @ p["OUT.weight"]
    e6 = activation_delta(x6, dx6, act)
    g["F6.weight"] += e6.T @ x5
    g["F6.bias"] += e6.sum(axis=0)
    e5 = activation_delta(x5, e6 @ p["F6.weight"], act)
    g5 = e5.T @ x4.reshape(n, -1)  # (120, (y, x, c))
    g["C5.weight"] += g5.reshape(120, 5, 5, 16).transpose(0, 3, 1, 2)
    g["C5.bias"] += e5.sum(axis=0)
    e4 = activation_delta(x4, (e5 @ w.c5).reshape(x4.shape), pool_act)
    e3 = activation_delta(x3, pool_backward(x3, p["S4.coeff"], e4, kind, g["S4.coeff"], g["S4.bias"]), act)
    e3f = e3.reshape(-1, 16)
    g["C3.weight"] += (e3f.T @ cols3).reshape(16, 6, KERNEL, KERNEL) * w.c3_mask
    g["C3.bias"] += e3f.sum(axis=0)
    dx2 = np.empty_like(x2)
    col2im(e3f @ w.c3, dx2)
    e2 = activation_delta(x2, dx2, pool_act)
    e1 = activation_delta(x1, pool_backward(x1, p["S2.coeff"], e2, kind, g["S2.coeff"], g["S2.bias"]), act)
    e1f = e1.reshape(-1, 6)
    g["C1.weight"] += (e1f.T @ cols1).reshape(6, 1, KERNEL, KERNEL)
    g["C1.bias"] += e1f.sum(axis=0)


def forward(theta, spec, images):
    """Outputs y (N, 10) of a batch (engine.forward_batch's result)."""
    w = Weights(theta, spec)
    return np.concatenate([forward_chunk(w, spec, images[a:a + CHUNK])[0].out
                           for a in range(0, len(images), CHUNK)])


def losses_and_gradient(theta, spec, images, labels):
    """(per-sample losses, SUM of per-sample gradients), as engine.loss_gradient_batch."""
    w = Weights(theta, spec)
    grad = np.zeros_like(theta)
    losses = np.empty(len(images), theta.dtype)
    for a in range(0, len(images), CHUNK):
        acts, cols = forward_chunk(w, spec, images[a:a + CHUNK])
        losses[a:a + CHUNK], dy = criterion(acts.out, labels[a:a + CHUNK], spec)
        backward_chunk(w, spec, acts, cols, dy, grad)
    return losses, grad


# Numba caches these functions with the code they call from the files below compiled in; a
# change to any of those files must recompile them (lenet5.core.jit_cache).
from .jit_cache import flush_if_changed  # noqa: E402

flush_if_changed(globals(), "core/kernels.py", "core/gemm.py")
