"""Slow, obviously-correct numpy versions of each layer, written from the definitions, for
checking the Numba kernels. Nothing here is shared with `lenet5.kernels`."""
import numpy as np

from lenet5.architecture import TANH_A, TANH_S


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


def squash(u):
    return TANH_A * np.tanh(TANH_S * u)


def squash_prime(u):
    return TANH_A * TANH_S / np.cosh(TANH_S * u) ** 2


def rbf(x, prototypes):
    return ((x[None, :] - prototypes) ** 2).sum(axis=1)


def loss(y, label, kind, j):
    if kind == "mse":
        return y[label]
    return y[label] + np.log(np.exp(-j) + np.exp(-y).sum())


def network_forward(image, params, mask):
    """The whole graph, layer by layer; returns every pre-activation and output."""
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
