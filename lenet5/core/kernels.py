"""Numba loop kernels for LeNet-5: each layer kind is a `*_forward` / `*_backward` pair.

Notation follows Bouvrie, "Notes on Convolutional Neural Networks" (2006): u is a layer's
pre-activation, x = f(u) its output, delta = dE/du. Backward kernels *accumulate* into the
gradient arrays (callers zero them), so a batch sums naturally. Every kernel works on one
sample; the per-sample and batch drivers in `lenet5.core.engine` compose them.

The same backward kernels also run LeCun's diagonal second-derivative back-propagation
(Appendix C): fed squared weights, squared inputs and f'(u)^2 they return the Gauss-Newton
terms d2E/dw^2, since a shared weight then sums x^2 * d2E/du^2 over its connections.
"""
import math

import numba as nb
import numpy as np
from llvmlite import ir
from numba.extending import intrinsic

from .architecture import KERNEL, TANH_A, TANH_S

# reassoc/contract let LLVM vectorise the sums; no 'nnan'/'ninf', so NaNs still propagate.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
# error_model="numpy": a float division by zero gives inf/nan instead of raising, so a loop
# holding a division (the tanh below) carries no per-element check and can be vectorised.
JIT_OPTIONS = {"cache": True, "fastmath": FASTMATH, "error_model": "numpy"}
kernel = nb.njit(**JIT_OPTIONS)
# a step that is inlined into its callers when compiled (Numba IR inlining): one optimisation
# of the whole pass per driver, instead of one more per level of calls
inlined = nb.njit(inline="always", **JIT_OPTIONS)

# Constants are cast to the arrays' dtype with `x.dtype.type(c)` inside the kernels, so a
# float32 network computes in float32 (a bare Python float would promote it to float64).


# ---------------------------------------------------------------- activation
# (flat 1-D views)  x = f(u). The tanh family is x = offset + A tanh(S u):
#   scaled tanh (the paper): A = 1.7159, S = 2/3;  tanh: A = S = 1;
#   logistic sigmoid 1/(1+e^-u) = 1/2 + 1/2 tanh(u/2): A = S = 1/2, offset 1/2.
# Its derivative, written with the output: f'(u) = S (A - (x - offset)^2 / A).
# relu: x = max(0, u), f' = [x > 0];  identity (after max pooling): x = u, f' = 1.
# backward: delta = f'(u) * dE/dx   (power=2 gives f'(u)^2 * d2E/dx^2 for the Hessian)
#
# tanh is computed from expm1 so that the loop vectorises (np.tanh is a scalar libm call,
# the slowest part of a step): with v = -2 S |u| and e = expm1(v), tanh(S |u|) = -e / (2 + e).
# expm1(v) = 2^k expm1(r) + (2^k - 1) with v = k ln2 + r, |r| <= ln2/2, expm1(r) by its Taylor
# series to float64 precision and 2^k from the bits of -k. Accurate to ~2 ulp in either dtype.
_EXPM1_TAYLOR = tuple(1.0 / math.factorial(n) for n in range(14))  # 1/n!, n = 0..13
_C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12, _C13 = _EXPM1_TAYLOR[2:]
_V_MIN = -40.0  # below this expm1(v) = -1 to float64 precision: tanh = +-1
_LN2 = math.log(2.0)

# activation codes (the order of architecture.VARIANT_CHOICES["activation"]), then identity
ACT_SCALED_TANH, ACT_TANH, ACT_SIGMOID, ACT_RELU, ACT_IDENTITY = range(5)
# (A, S, offset) of the tanh family, by code
_TANH_FAMILY = np.array([(TANH_A, TANH_S, 0.0), (1.0, 1.0, 0.0), (0.5, 0.5, 0.5)])


@intrinsic
def power_of_two(typingctx, k, like):
    """2^k (an int32 k in the normal range) in the float type of `like`, exactly: its bits are
    the biased exponent k + 127 (float32) or k + 1023 (float64) shifted into place, one
    integer add and shift that vectorise (ldexp is a libm call)."""
    def codegen(context, builder, signature, args):
        width, bias, shift = (32, 127, 23) if like.bitwidth == 32 else (64, 1023, 52)
        bits = ir.IntType(width)
        exponent = builder.sext(args[0], bits) if width == 64 else args[0]
        exponent = builder.add(exponent, ir.Constant(bits, bias))
        return builder.bitcast(builder.shl(exponent, ir.Constant(bits, shift)), context.get_value_type(like))
    if not (isinstance(k, nb.types.Integer) and k.bitwidth == 32 and isinstance(like, nb.types.Float)):
        return None
    return like(k, like), codegen


@kernel
def activation_forward(u, x, kind):
    f = x.dtype.type
    if kind == ACT_RELU:
        for k in range(u.shape[0]):
            x[k] = u[k] if u[k] > 0 else f(0.0)
        return
    if kind == ACT_IDENTITY:
        for k in range(u.shape[0]):  # (a loop: an array assignment compiles a shape check, ~1 s)
            x[k] = u[k]
        return
    one, two, half, ln2, inv_ln2, v_min = f(1.0), f(2.0), f(0.5), f(_LN2), f(1.0 / _LN2), f(_V_MIN)
    a, s2, offset = f(_TANH_FAMILY[kind, 0]), f(-2.0 * _TANH_FAMILY[kind, 1]), f(_TANH_FAMILY[kind, 2])
    c2, c3, c4, c5, c6, c7 = f(_C2), f(_C3), f(_C4), f(_C5), f(_C6), f(_C7)
    c8, c9, c10, c11, c12, c13 = f(_C8), f(_C9), f(_C10), f(_C11), f(_C12), f(_C13)
    for k in range(u.shape[0]):
        v = s2 * abs(u[k])
        v = v_min if v < v_min else v  # (a NaN stays NaN here ...)
        vk = v if v >= v_min else v_min  # (... and is kept out of the integer part)
        kf = np.floor(vk * inv_ln2 + half)  # v = kf ln2 + r
        r = v - kf * ln2
        e = r * (one + r * (c2 + r * (c3 + r * (c4 + r * (c5 + r * (c6 + r * (
            c7 + r * (c8 + r * (c9 + r * (c10 + r * (c11 + r * (c12 + r * c13))))))))))))
        scale = power_of_two(np.int32(kf), one)  # 2^kf, -58 <= kf <= 0
        e = scale * e + (scale - one)  # expm1(v)
        t = a * e / (-two - e)  # A tanh(S |u|)
        x[k] = offset + (t if u[k] >= 0 else -t)


@kernel
def activation_backward(x, dx, delta, power, kind):
    f = x.dtype.type
    if kind == ACT_RELU or kind == ACT_IDENTITY:  # f' is 0 or 1, so f'^2 = f'
        for k in range(x.shape[0]):
            delta[k] = dx[k] if (kind == ACT_IDENTITY or x[k] > 0) else f(0.0)
        return
    a, s, offset = f(_TANH_FAMILY[kind, 0]), f(_TANH_FAMILY[kind, 1]), f(_TANH_FAMILY[kind, 2])
    inv_a = f(1.0) / a
    for k in range(x.shape[0]):
        y = x[k] - offset
        fprime = s * (a - y * y * inv_a)
        if power == 2:
            fprime = fprime * fprime
        delta[k] = fprime * dx[k]


# ---------------------------------------------------------------- sparse convolution
# u[m] = b[m] + sum_{c in table(m)} x[c] (*) W[m,c]      ('valid' cross-correlation)
# Only the table's connected (m, c) pairs are computed (C1 and C5: all; C3: Table I).
#
# Wide rows: seen flat, output pixel (y, xx) and input pixel (y+i, xx+j) sit at q = y*W + xx
# and q + i*W + j (W = input width). So the output is computed in a buffer of row stride W,
# and kernel row i is one contiguous pass: out[q] += sum_j W[m,c,i,j] x[c, q + i*W + j] for
# q < span = (height-1)*W + width. Its columns xx >= width wrap around into the next input
# row: junk, dropped at the end. The 5 taps of a kernel row (architecture.KERNEL) are written
# out so that the loop over q is the innermost one: long, contiguous, vectorised.

@kernel
def conv_forward(x, weight, bias, pairs, u):
    assert weight.shape[2] == KERNEL and weight.shape[3] == KERNEL
    maps, height, width = u.shape
    in_w = x.shape[2]
    span = (height - 1) * in_w + width
    xf = x.reshape(x.shape[0], -1)
    wide = np.empty((maps, span), u.dtype)
    for m in range(maps):
        wide[m, :] = bias[m]
    # Maps reading the same input map c take a kernel row in one pass, four maps at a time
    # sharing each load of the row (the rest one by one). Every map still adds its pairs in
    # table order: sweeps over c take each map whose next pair reads c (C1: one sweep, all
    # six maps; C3's Table I: 9 groups of 1 to 10 maps, 60 pairs in 27 passes instead of 60).
    sched = np.empty((3, maps), np.int64)  # map m's next pair, its pairs' end, a group of maps
    nxt, end, group = sched[0], sched[1], sched[2]
    nxt[:] = pairs.shape[0]
    end[:] = 0
    for p in range(pairs.shape[0] - 1, -1, -1):
        nxt[pairs[p, 0]] = p
        end[pairs[p, 0]] = max(end[pairs[p, 0]], p + 1)
    left, before = pairs.shape[0], pairs.shape[0] + 1
    while 0 < left < before:  # (a sweep takes none if a pair names no input map: stop)
        before = left
        for c in range(x.shape[0]):
            g = 0
            for m in range(maps):
                if nxt[m] < end[m] and pairs[nxt[m], 1] == c:
                    group[g] = m
                    g += 1
                    nxt[m] += 1
                    while nxt[m] < end[m] and pairs[nxt[m], 0] != m:
                        nxt[m] += 1
            left -= g
            k = 0
            while k < g:
                m = group[k]
                out = wide[m]
                if g - k >= 4:
                    m2, m3, m4 = group[k + 1], group[k + 2], group[k + 3]
                    out2, out3, out4 = wide[m2], wide[m3], wide[m4]
                    for i in range(KERNEL):
                        w0, w1, w2, w3, w4 = weight[m, c, i]
                        v0, v1, v2, v3, v4 = weight[m2, c, i]
                        s0, s1, s2, s3, s4 = weight[m3, c, i]
                        t0, t1, t2, t3, t4 = weight[m4, c, i]
                        row = xf[c, i * in_w:]
                        for q in range(span):
                            r0, r1, r2, r3, r4 = row[q], row[q + 1], row[q + 2], row[q + 3], row[q + 4]
                            out[q] += w0 * r0 + w1 * r1 + w2 * r2 + w3 * r3 + w4 * r4
                            out2[q] += v0 * r0 + v1 * r1 + v2 * r2 + v3 * r3 + v4 * r4
                            out3[q] += s0 * r0 + s1 * r1 + s2 * r2 + s3 * r3 + s4 * r4
                            out4[q] += t0 * r0 + t1 * r1 + t2 * r2 + t3 * r3 + t4 * r4
                    k += 4
                else:
                    for i in range(KERNEL):
                        w0, w1, w2, w3, w4 = weight[m, c, i]
                        row = xf[c, i * in_w:]
                        for q in range(span):
                            out[q] += (w0 * row[q] + w1 * row[q + 1] + w2 * row[q + 2] + w3 * row[q + 3]
                                       + w4 * row[q + 4])
                    k += 1
    for m in range(maps):
        for y in range(height):  # (row by row through slices: a flat index y * in_w + xx here
            src, dst = wide[m, y * in_w:y * in_w + width], u[m, y]  # made the copy 4x slower)
            for xx in range(width):
                dst[xx] = src[xx]


# dE/dW[m,c] = x[c] (*) delta[m]                     ('valid' correlation of input with delta)
# dE/db[m]   = sum delta[m]
# dE/dx[c]   = sum_m delta[m] (*)full rot180(W[m,c])  ('full' correlation, kernel rotated 180)
# Same wide layout: delta is copied with row stride W, zeros in the junk columns and 4 zeros
# either side, so every sum runs over whole rows and the junk columns add exact zeros:
#   dW[m,c,i,j] = sum_q x[c, q + i*W + j] delta[m, q]       (one pass per kernel row i)
#   dx[c, i*W + t] += sum_j W[m,c,i,j] delta[m, t - j]      (the 'full' correlation: delta
# read backwards against the row, i.e. the rotated kernel; t - j outside [0, span) hits zeros)
# conv_backward_wide does this for pixels of `step` values each: 1 here, LANES samples side by
# side in lane_kernels.conv_backward_lanes (every offset above times step).

@kernel
def conv_backward(x, weight, delta, pairs, dweight, dbias, dx, need_dx):
    maps, height, width = delta.shape
    in_w = x.shape[2]
    wide = np.zeros((maps, (height - 1) * in_w + width + 2 * (KERNEL - 1)), delta.dtype)
    conv_backward_wide(x.reshape(x.shape[0], -1), weight, delta, pairs, dweight, dbias,
                       dx.reshape(dx.shape[0], -1), need_dx, wide, in_w, 1)


@inlined
def conv_backward_wide(xf, weight, rows, pairs, dweight, dbias, dxf, need_dx, wide, row, step):
    """xf, dxf: the input maps and dE/dx flat, `row` values to a row; rows: delta as (maps,
    height, width * step); wide: zeros (maps, at least span + 2 * pad), delta goes in from pad
    on and the junk columns stay zero."""
    assert weight.shape[2] == KERNEL and weight.shape[3] == KERNEL
    maps, height, n = rows.shape  # n: values per delta row
    span = (height - 1) * row + n
    pad = (KERNEL - 1) * step
    for m in range(maps):
        total = rows.dtype.type(0.0)
        for y in range(height):
            src, dst = rows[m, y], wide[m, pad + y * row:pad + y * row + n]  # (slices: see conv_forward)
            for q in range(n):
                dst[q] = src[q]
                total += src[q]
        dbias[m] += total
    if need_dx:
        dxf[:] = 0.0
    for p in range(pairs.shape[0]):  # (dW: one pair a pass; more sums per pass would change
        m, c = pairs[p, 0], pairs[p, 1]  # how LLVM splits them into partial sums, and so the bits)
        dw = wide[m, pad:]  # delta[m] wide
        for i in range(KERNEL):
            r = xf[c, i * row:]
            g0 = g1 = g2 = g3 = g4 = rows.dtype.type(0.0)
            for q in range(span):
                g0 += r[q] * dw[q]
                g1 += r[q + step] * dw[q]
                g2 += r[q + 2 * step] * dw[q]
                g3 += r[q + 3 * step] * dw[q]
                g4 += r[q + 4 * step] * dw[q]
            dweight[m, c, i, 0] += g0
            dweight[m, c, i, 1] += g1
            dweight[m, c, i, 2] += g2
            dweight[m, c, i, 3] += g3
            dweight[m, c, i, 4] += g4
    if not need_dx:
        return
    p = 0
    while p < pairs.shape[0]:
        m, c = pairs[p, 0], pairs[p, 1]
        d = wide[m]  # d[pad + q] = delta[m] wide, at q
        if p + 2 < pairs.shape[0] and pairs[p + 1, 0] == m and pairs[p + 2, 0] == m:
            # three input maps read by map m (its next pairs) share each load of its delta
            # (Table I's rows of 3, 4, 6 maps: 3, 3+1, 3+3 passes); every dx[c] still
            # receives the maps, and their kernel rows, in the same order
            c2, c3 = pairs[p + 1, 1], pairs[p + 2, 1]
            for i in range(KERNEL):
                w0, w1, w2, w3, w4 = weight[m, c, i]
                v0, v1, v2, v3, v4 = weight[m, c2, i]
                s0, s1, s2, s3, s4 = weight[m, c3, i]
                out, out2, out3 = dxf[c, i * row:], dxf[c2, i * row:], dxf[c3, i * row:]
                for t in range(span + pad):
                    d0, d1, d2 = d[t + 4 * step], d[t + 3 * step], d[t + 2 * step]
                    d3, d4 = d[t + step], d[t]
                    out[t] += w0 * d0 + w1 * d1 + w2 * d2 + w3 * d3 + w4 * d4
                    out2[t] += v0 * d0 + v1 * d1 + v2 * d2 + v3 * d3 + v4 * d4
                    out3[t] += s0 * d0 + s1 * d1 + s2 * d2 + s3 * d3 + s4 * d4
            p += 3
            continue
        for i in range(KERNEL):
            w0, w1, w2, w3, w4 = weight[m, c, i]
            out = dxf[c, i * row:]
            for t in range(span + pad):
                out[t] += (w0 * d[t + 4 * step] + w1 * d[t + 3 * step] + w2 * d[t + 2 * step]
                           + w3 * d[t + step] + w4 * d[t])
        p += 1


# ---------------------------------------------------------------- subsampling / pooling
# One kernel pair for every kind of S2/S4; they differ only in what a 2x2 block gives:
#   trainable (paper) and average: u[m] = beta[m] * down(x[m]) + b[m], down = sum of the block
#     (average: beta = 1/4 and b = 0, held fixed by the trainer);
#   max: u[m] = max of the block (no parameters; the layer's activation is the identity).
# Pooled map m reads input map source[m] (LeNet-5: m itself; LeNet-4's S2: two maps per input
# map, source[m] = m // 2). The backward pass writes pooled map m's dE/dx into dx[m]: the
# caller adds the maps that share an input map (engine.sample_backward).

POOL_SUM, POOL_MAX = 0, 1


@kernel
def pool_forward(x, coeff, bias, u, kind, source):
    maps, height, width = u.shape
    for m in range(maps):
        s = source[m]
        for y in range(height):
            for xx in range(width):
                a, b = x[s, 2 * y, 2 * xx], x[s, 2 * y, 2 * xx + 1]
                c, d = x[s, 2 * y + 1, 2 * xx], x[s, 2 * y + 1, 2 * xx + 1]
                if kind == POOL_MAX:
                    u[m, y, xx] = max(max(a, b), max(c, d))
                else:
                    u[m, y, xx] = coeff[m] * (a + b + c + d) + bias[m]


# sum:  dE/dbeta[m] = sum delta[m] * down(x[m]);  dE/db[m] = sum delta[m];
#       dE/dx[m] = beta[m] * up(delta[m]) -- the conv layer below then forms Bouvrie's
#       delta = beta * f'(u) * up(delta) with activation_backward;
# max:  dE/dx = delta at the block's winning input (the first in row-major order on a tie),
#       0 at the other three. The winner is found on `x`, the real activations; `inputs` is
#       x itself, or x^2 in the Hessian pass (for dE/dbeta).

@kernel
def pool_backward(x, inputs, coeff, delta, dcoeff, dbias, dx, kind, source):
    maps, height, width = delta.shape
    zero = delta.dtype.type(0.0)
    for m in range(maps):
        s = source[m]
        gcoeff = zero
        gbias = zero
        for y in range(height):
            for xx in range(width):
                d = delta[m, y, xx]
                r, c = 2 * y, 2 * xx
                if kind == POOL_MAX:
                    best, br, bc = x[s, r, c], r, c
                    for i, j in ((r, c + 1), (r + 1, c), (r + 1, c + 1)):
                        if x[s, i, j] > best:
                            best, br, bc = x[s, i, j], i, j
                    dx[m, r, c] = zero
                    dx[m, r, c + 1] = zero
                    dx[m, r + 1, c] = zero
                    dx[m, r + 1, c + 1] = zero
                    dx[m, br, bc] = d
                    continue
                block = inputs[s, r, c] + inputs[s, r, c + 1] + inputs[s, r + 1, c] + inputs[s, r + 1, c + 1]
                gcoeff += d * block
                gbias += d
                up = coeff[m] * d
                dx[m, r, c] = up
                dx[m, r, c + 1] = up
                dx[m, r + 1, c] = up
                dx[m, r + 1, c + 1] = up
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
        acc = y.dtype.type(0.0)
        for j in range(prototypes.shape[1]):
            diff = x[j] - prototypes[k, j]
            acc += diff * diff
        y[k] = acc


# dE/dx[j] = sum_k dE/dy[k] * 2 (x[j] - P[k,j])

@kernel
def rbf_backward(x, prototypes, dy, dx):
    dx[:] = 0.0
    for k in range(prototypes.shape[0]):
        g = dx.dtype.type(2.0) * dy[k]
        if g != 0.0:
            for j in range(prototypes.shape[1]):
                dx[j] += g * (x[j] - prototypes[k, j])


# ---------------------------------------------------------------- softmax output (a variant)
# z = W x6 + b (dense_forward), then y[k] = -log softmax(z)[k] = -z[k] + log sum_i exp(z[i]):
# like the RBF distances, the smallest y wins, and E = y[label] is the cross-entropy.

@kernel
def neg_log_softmax_forward(z, y):
    top = z[0]
    for k in range(z.shape[0]):
        top = max(top, z[k])
    total = y.dtype.type(0.0)
    for k in range(z.shape[0]):
        total += np.exp(z[k] - top)
    lse = top + np.log(total)
    for k in range(z.shape[0]):
        y[k] = lse - z[k]


# dy[k]/dz[i] = p[i] - [k == i] with p = exp(-y): dE/dz[i] = p[i] sum_k dE/dy[k] - dE/dy[i]

@kernel
def neg_log_softmax_backward(y, dy, dz):
    total = dy.dtype.type(0.0)
    for k in range(dy.shape[0]):
        total += dy[k]
    for i in range(dy.shape[0]):
        dz[i] = np.exp(-y[i]) * total - dy[i]


# Gauss-Newton term of the cross-entropy at the logits: diag(p) - p p^T, its diagonal p(1-p).

@kernel
def softmax_gauss_newton(y, d2z):
    for i in range(y.shape[0]):
        p = np.exp(-y[i])
        d2z[i] = p * (1 - p)


# ---------------------------------------------------------------- criteria
# mse: E = y[label]                                         (the paper's eq. 8)
# map: E = y[label] + log(exp(-j) + sum_k exp(-y[k]))       (eq. 9, the MAP criterion)
# ce:  E = y[label] with the softmax output's y = -log p: the cross-entropy
# All write dE/dy into dy and return E.

LOSS_MSE = 0
LOSS_MAP = 1
LOSS_CE = 2


@kernel
def map_partition(y, j):
    """(top, Z): the MAP criterion's log-sum-exp over {-j, -y[0..9]}, shifted by its largest
    term top for stability, Z = e^(-j-top) + sum_k e^(-y[k]-top), so log(...) = top + log Z."""
    top = -j
    for k in range(y.shape[0]):
        top = max(top, -y[k])
    total = np.exp(-j - top)
    for k in range(y.shape[0]):
        total += np.exp(-y[k] - top)
    return top, total


@kernel
def loss_forward_backward(y, label, loss_kind, j, dy):
    dy[:] = 0.0
    dy[label] = 1.0
    if loss_kind != LOSS_MAP:
        return y[label]
    top, total = map_partition(y, j)
    for k in range(y.shape[0]):
        dy[k] -= np.exp(-y[k] - top) / total
    return y[label] + top + np.log(total)



# ---------------------------------------------------------------- fast paths
# The same sums as a reference kernel above, arranged for speed; tests/test_kernels.py checks
# each against its reference.
#
# The online step fused into a dense layer's backward pass (engine.sample_loop, MODE_STEP):
#   dE/dx = W^T delta (with W before the step), then W -= eta_W * delta x^T, b -= eta_b * delta
# = dense_backward into a zeroed gradient followed by theta -= eta * grad, without storing the
# gradient and reading it back: C5 and F6 hold 58,080 of LeNet-5's 61,750 parameters.
# Compiled without 'reassoc', so that eta * (delta x) is rounded as the unfused step rounds
# eta * grad (reassociated, (eta * delta) * x would drift float32 training off the reference).

@nb.njit(cache=True, fastmath=FASTMATH - {"reassoc"}, error_model="numpy")
def dense_backward_step(x, weight, eta_w, delta, bias, eta_b, dx, need_dx):
    if need_dx:
        dx[:] = 0.0
    for o in range(weight.shape[0]):
        d = delta[o]
        bias[o] -= eta_b[o] * d
        if need_dx:
            for i in range(weight.shape[1]):  # first, with the weights before the step
                dx[i] += weight[o, i] * d
        for i in range(weight.shape[1]):
            weight[o, i] -= eta_w[o, i] * (d * x[i])
