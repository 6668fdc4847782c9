"""Slow, obviously-correct numpy versions of each layer, written from the definitions, for
checking the Numba kernels. Nothing here is shared with `lenet5.core.kernels`."""
import numpy as np

from .architecture import LUSH_INPUT_PER_GREY, TANH_A, TANH_S
from .paper import BACKGROUND, INK, TRAIN_MEAN, TRAIN_STD


def conv_valid(x, weight, bias, mask):
    """u[m,y,x] = b[m] + sum_c mask[m,c] sum_i sum_j W[m,c,i,j] x[c,y+i,x+j] (six loops)."""
    maps, chans, k, _ = weight.shape
    height, width = x.shape[1] - k + 1, x.shape[2] - k + 1
    u = np.zeros((maps, height, width))
    for m in range(maps):
        for y in range(height):
            for xx in range(width):
                total = bias[m]
                for c in range(chans):
                    if mask[m, c]:
                        for i in range(k):
                            for j in range(k):
                                total += weight[m, c, i, j] * x[c, y + i, xx + j]
                u[m, y, xx] = total
    return u


def correlate_valid(a, kernel):
    """'valid' 2-D cross-correlation of a with kernel."""
    kh, kw = kernel.shape
    out = np.zeros((a.shape[0] - kh + 1, a.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(a[i:i + kh, j:j + kw] * kernel)
    return out


def correlate_full(a, kernel):
    """'full' 2-D cross-correlation: pad a by kernel-1 on every side, then 'valid'."""
    kh, kw = kernel.shape
    return correlate_valid(np.pad(a, ((kh - 1, kh - 1), (kw - 1, kw - 1))), kernel)


def conv_backward(x, weight, delta, mask):
    """Bouvrie's formulas: dW = valid(x, delta); db = sum delta; dx = full(delta, rot180 W)."""
    maps, chans = mask.shape
    dweight = np.zeros_like(weight, dtype=float)
    dx = np.zeros_like(x, dtype=float)
    for m in range(maps):
        for c in range(chans):
            if mask[m, c]:
                dweight[m, c] = correlate_valid(x[c], delta[m])
                dx[c] += correlate_full(delta[m], np.rot90(weight[m, c], 2))
    return dweight, delta.sum(axis=(1, 2)), dx


def down(x):
    """Sum of each non-overlapping 2x2 block."""
    m, h, w = x.shape
    return x.reshape(m, h // 2, 2, w // 2, 2).sum(axis=(2, 4))


def up(d):
    """Copy each value into a 2x2 block (Kronecker product with ones(2,2))."""
    return np.stack([np.kron(dm, np.ones((2, 2))) for dm in d])


def subsample(x, coeff, bias):
    return coeff[:, None, None] * down(x) + bias[:, None, None]


def subsample_backward(x, coeff, delta):
    return ((delta * down(x)).sum(axis=(1, 2)), delta.sum(axis=(1, 2)),
            coeff[:, None, None] * up(delta))


def max_pool(x):
    """Max of each non-overlapping 2x2 block."""
    m, h, w = x.shape
    return x.reshape(m, h // 2, 2, w // 2, 2).max(axis=(2, 4))


def max_pool_routes(x):
    """0/1 array like x: 1 at each block's winner (the first in row-major order on a tie)."""
    route = np.zeros_like(x)
    for m in range(x.shape[0]):
        for y in range(0, x.shape[1], 2):
            for xx in range(0, x.shape[2], 2):
                block = x[m, y:y + 2, xx:xx + 2].reshape(-1)
                k = int(np.argmax(block))  # numpy's argmax: the first maximum
                route[m, y + k // 2, xx + k % 2] = 1
    return route


# activation -> (f, f') written from the definitions, on the pre-activation u
ACTIVATIONS = {
    "scaled-tanh": (lambda u: TANH_A * np.tanh(TANH_S * u), lambda u: TANH_A * TANH_S / np.cosh(TANH_S * u) ** 2),
    "tanh": (np.tanh, lambda u: 1 / np.cosh(u) ** 2),
    "sigmoid": (lambda u: 1 / (1 + np.exp(-u)), lambda u: np.exp(-u) / (1 + np.exp(-u)) ** 2),
    "relu": (lambda u: np.maximum(u, 0), lambda u: (u > 0).astype(float)),
    "identity": (lambda u: u, lambda u: np.ones_like(u)),
}


def squash(u):
    return TANH_A * np.tanh(TANH_S * u)


def squash_prime(u):
    return TANH_A * TANH_S / np.cosh(TANH_S * u) ** 2


def rbf(x, prototypes):
    return ((x[None, :] - prototypes) ** 2).sum(axis=1)


def loss(y, label, kind, j):
    if kind in ("mse", "ce"):
        return y[label]
    return y[label] + np.log(np.exp(-j) + np.exp(-y).sum())


def neg_log_softmax(z):
    return np.log(np.exp(z - z.max()).sum()) + z.max() - z


def network_forward(image, params, mask, variant=None):
    """The whole graph, layer by layer; returns every pre-activation and output. `variant`
    (a lenet5 Variant; None = the paper's) picks pooling, activation and output; `mask` is
    C3's connection mask."""
    if variant is not None and not variant.is_paper:
        return variant_forward(image, params, mask, variant)
    s = {"x0": image[None].astype(float)}
    s["u1"] = conv_valid(s["x0"], params["C1.weight"], params["C1.bias"], np.ones((6, 1), bool))
    s["x1"] = squash(s["u1"])
    s["u2"] = subsample(s["x1"], params["S2.coeff"], params["S2.bias"])
    s["x2"] = squash(s["u2"])
    s["u3"] = conv_valid(s["x2"], params["C3.weight"], params["C3.bias"], mask)
    s["x3"] = squash(s["u3"])
    s["u4"] = subsample(s["x3"], params["S4.coeff"], params["S4.bias"])
    s["x4"] = squash(s["u4"])
    s["u5"] = conv_valid(s["x4"], params["C5.weight"], params["C5.bias"], np.ones((120, 16), bool))[:, 0, 0]
    s["x5"] = squash(s["u5"])
    s["u6"] = params["F6.weight"] @ s["x5"] + params["F6.bias"]
    s["x6"] = squash(s["u6"])
    s["y"] = rbf(s["x6"], params["OUT.prototypes"])
    return s


def pool_sources(in_maps, maps):
    """Which input map each pooled map reads: itself, or (LeNet-4's S2) pairs per input map."""
    return np.arange(maps) * in_maps // maps


def lenet1_input(image):
    """LeNet-1's 28x28 field: the 28x28 inner image area-averaged onto 22x22 (each output pixel
    the mean over the 28/22-wide span it covers, written here with explicit overlaps),
    centred with 3 background pixels on each side."""
    spans = np.linspace(0, 28, 23)
    weights = np.array([[max(0.0, min(spans[o + 1], i + 1) - max(spans[o], i)) for i in range(28)]
                        for o in range(22)]) / (28 / 22)
    out = np.full((28, 28), -0.1)
    out[3:25, 3:25] = weights @ image[2:30, 2:30] @ weights.T
    return out


def variant_forward(image, params, mask, v):
    """network_forward for any Variant, any architecture, with the same keys (plus "z", the
    softmax logits); the layers an architecture lacks (LeNet-1's C5, F6) are absent."""
    f = ACTIVATIONS[v.activation][0]
    pool_f = ACTIVATIONS["identity" if v.pooling == "max" else v.activation][0]

    def pool(x, name, maps):
        x = x[pool_sources(len(x), maps)]
        if v.pooling == "max":
            return max_pool(x)
        return subsample(x, params[f"{name}.coeff"], params[f"{name}.bias"])

    c1, c3 = params["C1.weight"], params["C3.weight"]
    s = {"x0": (lenet1_input(image) if v.arch == "lenet1" else image)[None].astype(float)}
    if v.inputs == "unit":  # standardised by the training set's mean and standard deviation
        s["x0"] = (s["x0"] - TRAIN_MEAN) / TRAIN_STD
    elif v.inputs == "lush":  # background 0, ink 2.55, as Lush's MNIST source codes them
        s["x0"] = LUSH_INPUT_PER_GREY * 255 * (s["x0"] - BACKGROUND) / (INK - BACKGROUND)
    s["u1"] = conv_valid(s["x0"], c1, params["C1.bias"], np.ones((len(c1), 1), bool))
    s["x1"] = f(s["u1"])
    s["u2"] = pool(s["x1"], "S2", c3.shape[1])
    s["x2"] = pool_f(s["u2"])
    s["u3"] = conv_valid(s["x2"], c3, params["C3.bias"], mask)
    s["x3"] = f(s["u3"])
    s["u4"] = pool(s["x3"], "S4", len(c3))
    s["x4"] = pool_f(s["u4"])
    last = s["x4"].reshape(-1)
    if "C5.weight" in params:
        c5 = params["C5.weight"]
        s["u5"] = conv_valid(s["x4"], c5, params["C5.bias"], np.ones(c5.shape[:2], bool))[:, 0, 0]
        s["x5"] = last = f(s["u5"])
    if "F6.weight" in params:
        s["u6"] = params["F6.weight"] @ s["x5"] + params["F6.bias"]
        s["x6"] = last = f(s["u6"])
    s["last"] = last  # the output layer's input
    if v.output == "softmax":
        s["z"] = params["OUT.weight"] @ last + params["OUT.bias"]
        s["y"] = neg_log_softmax(s["z"])
    else:
        s["y"] = rbf(last, params["OUT.prototypes"])
    return s
