"""Numba loop kernels for LeNet-5: each layer kind is a `*_forward` / `*_backward` pair.

Notation follows Bouvrie, "Notes on Convolutional Neural Networks" (2006): u is a layer's
pre-activation, x = f(u) its output, delta = dE/du. Backward kernels *accumulate* into the
gradient arrays (callers zero them), so a batch sums naturally. Every kernel works on one
sample; the per-sample and batch drivers in `lenet5.engine` compose them.

The same backward kernels also run LeCun's diagonal second-derivative back-propagation
(Appendix C): fed squared weights, squared inputs and f'(u)^2 they return the Gauss-Newton
terms d2E/dw^2, since a shared weight then sums x^2 * d2E/du^2 over its connections.
"""
import numba as nb
import numpy as np

from .architecture import TANH_A, TANH_S

# reassoc/contract let LLVM vectorise the sums; no 'nnan'/'ninf', so NaNs still propagate.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
kernel = nb.njit(cache=True, fastmath=FASTMATH)


# ---------------------------------------------------------------- activation
# (flat 1-D views)  x = f(u) = A tanh(S u);  f'(u) = S (A - x^2 / A), written with the output x.
# backward: delta = f'(u) * dE/dx   (power=2 gives f'(u)^2 * d2E/dx^2 for the Hessian)

@kernel
def tanh_forward(u, x):
    for k in range(u.shape[0]):
        x[k] = TANH_A * np.tanh(TANH_S * u[k])


@kernel
def tanh_backward(x, dx, delta, power):
    for k in range(x.shape[0]):
        fprime = TANH_S * (TANH_A - x[k] * x[k] / TANH_A)
        if power == 2:
            fprime = fprime * fprime
        delta[k] = fprime * dx[k]


# ---------------------------------------------------------------- sparse convolution
# u[m] = b[m] + sum_{c in table(m)} x[c] (*) W[m,c]      ('valid' cross-correlation)
# Only the table's connected (m, c) pairs are computed (C1 and C5: all; C3: Table I).

@kernel
def conv_forward(x, weight, bias, pairs, u):
    maps, height, width = u.shape
    ksize = weight.shape[2]
    for m in range(maps):
        u[m, :, :] = bias[m]
    for p in range(pairs.shape[0]):
        m, c = pairs[p, 0], pairs[p, 1]
        for i in range(ksize):
            for j in range(ksize):
                w = weight[m, c, i, j]
                for y in range(height):
                    for xx in range(width):
                        u[m, y, xx] += w * x[c, y + i, xx + j]


# dE/dW[m,c] = x[c] (*) delta[m]                     ('valid' correlation of input with delta)
# dE/db[m]   = sum delta[m]
# dE/dx[c]   = sum_m delta[m] (*)full rot180(W[m,c])  ('full' correlation, kernel rotated 180)
# The last line is written from the delta side: term delta[m,y,x] W[m,c,i,j] lands on
# dx[c,y+i,x+j], which is exactly the full correlation with the rotated kernel.

@kernel
def conv_backward(x, weight, delta, pairs, dweight, dbias, dx, need_dx):
    maps, height, width = delta.shape
    ksize = weight.shape[2]
    for m in range(maps):
        dbias[m] += np.sum(delta[m])
    if need_dx:
        dx[:] = 0.0
    for p in range(pairs.shape[0]):
        m, c = pairs[p, 0], pairs[p, 1]
        for i in range(ksize):
            for j in range(ksize):
                acc = 0.0
                for y in range(height):
                    for xx in range(width):
                        acc += x[c, y + i, xx + j] * delta[m, y, xx]
                dweight[m, c, i, j] += acc
                if need_dx:
                    w = weight[m, c, i, j]
                    for y in range(height):
                        for xx in range(width):
                            dx[c, y + i, xx + j] += w * delta[m, y, xx]


# ---------------------------------------------------------------- trainable subsampling
# u[m] = beta[m] * down(x[m]) + b[m],  down = sum of each non-overlapping 2x2 block

@kernel
def subsample_forward(x, coeff, bias, u):
    maps, height, width = u.shape
    for m in range(maps):
        for y in range(height):
            for xx in range(width):
                block = (x[m, 2 * y, 2 * xx] + x[m, 2 * y, 2 * xx + 1]
                         + x[m, 2 * y + 1, 2 * xx] + x[m, 2 * y + 1, 2 * xx + 1])
                u[m, y, xx] = coeff[m] * block + bias[m]


# dE/dbeta[m] = sum delta[m] * down(x[m]);  dE/db[m] = sum delta[m]
# dE/dx[m] = beta[m] * up(delta[m]); the conv layer below then forms Bouvrie's
# delta = beta * f'(u) * up(delta) with tanh_backward.

@kernel
def subsample_backward(x, coeff, delta, dcoeff, dbias, dx):
    maps, height, width = delta.shape
    for m in range(maps):
        gcoeff = 0.0
        gbias = 0.0
        for y in range(height):
            for xx in range(width):
                d = delta[m, y, xx]
                block = (x[m, 2 * y, 2 * xx] + x[m, 2 * y, 2 * xx + 1]
                         + x[m, 2 * y + 1, 2 * xx] + x[m, 2 * y + 1, 2 * xx + 1])
                gcoeff += d * block
                gbias += d
                up = coeff[m] * d
                dx[m, 2 * y, 2 * xx] = up
                dx[m, 2 * y, 2 * xx + 1] = up
                dx[m, 2 * y + 1, 2 * xx] = up
                dx[m, 2 * y + 1, 2 * xx + 1] = up
        dcoeff[m] += gcoeff
        dbias[m] += gbias


# ---------------------------------------------------------------- dense (F6, and C5 seen flat)
# u = W x + b
# A 5x5 'valid' convolution over a 5x5 map is one dot product, so C5 runs here on the
# flattened 16x5x5 input with its weights viewed as (120, 400): the same sums, contiguous.

@kernel
def dense_forward(x, weight, bias, u):
    for o in range(weight.shape[0]):
        acc = bias[o]
        for i in range(weight.shape[1]):
            acc += weight[o, i] * x[i]
        u[o] = acc


# dE/dW = delta x^T;  dE/db = delta;  dE/dx = W^T delta

@kernel
def dense_backward(x, weight, delta, dweight, dbias, dx, need_dx):
    if need_dx:
        dx[:] = 0.0
    for o in range(weight.shape[0]):
        d = delta[o]
        dbias[o] += d
        for i in range(weight.shape[1]):
            dweight[o, i] += d * x[i]
        if need_dx:
            for i in range(weight.shape[1]):
                dx[i] += weight[o, i] * d


# ---------------------------------------------------------------- Euclidean RBF output
# y[k] = sum_j (x[j] - P[k,j])^2     (fixed prototypes P, nothing trainable)

@kernel
def rbf_forward(x, prototypes, y):
    for k in range(prototypes.shape[0]):
        acc = 0.0
        for j in range(prototypes.shape[1]):
            diff = x[j] - prototypes[k, j]
            acc += diff * diff
        y[k] = acc


# dE/dx[j] = sum_k dE/dy[k] * 2 (x[j] - P[k,j])

@kernel
def rbf_backward(x, prototypes, dy, dx):
    dx[:] = 0.0
    for k in range(prototypes.shape[0]):
        g = 2.0 * dy[k]
        if g != 0.0:
            for j in range(prototypes.shape[1]):
                dx[j] += g * (x[j] - prototypes[k, j])


# ---------------------------------------------------------------- criteria
# mse: E = y[label]                                         (the paper's eq. 8)
# map: E = y[label] + log(exp(-j) + sum_k exp(-y[k]))       (eq. 9, the MAP criterion)
# Both write dE/dy into dy and return E.

LOSS_MSE = 0
LOSS_MAP = 1


@kernel
def loss_forward_backward(y, label, loss_kind, j, dy):
    dy[:] = 0.0
    dy[label] = 1.0
    if loss_kind == LOSS_MSE:
        return y[label]
    # log-sum-exp over {-j, -y[0..9]}, shifted by its largest term for stability
    top = -j
    for k in range(y.shape[0]):
        top = max(top, -y[k])
    total = np.exp(-j - top)
    for k in range(y.shape[0]):
        total += np.exp(-y[k] - top)
    for k in range(y.shape[0]):
        dy[k] -= np.exp(-y[k] - top) / total
    return y[label] + top + np.log(total)
