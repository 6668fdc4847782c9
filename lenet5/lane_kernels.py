"""Kernels for a block of LANES samples at once, one sample per SIMD lane.

The per-sample kernels in `lenet5.kernels` are the readable reference; these compute the
same layers for LANES images side by side, every array carrying a last axis of LANES: a
layer's output u[m, y, x] becomes u[m, y, x, :], one value per sample. Every sum is then a
vector of independent per-sample sums (broadcast weight times a lane vector), so the loops
vectorise without wide-row junk columns or horizontal reductions, and a dense layer's
weights are read once per block instead of once per sample. The sums run in another order
than the reference's, so results agree with it to rounding (tests/test_lanes.py), not bit
for bit; training never uses these (its outputs stay those of `lenet5.kernels`).

The activation needs no lane kernel: it is elementwise, so `kernels.activation_forward`
runs on the flat view of a lane array.
"""
import numpy as np

from .architecture import KERNEL
from .kernels import POOL_MAX, kernel

# Samples per block: 32 float32 values are two AVX-512 registers. Measured against 16: C3's rows
# (10 x 32 values) then fill LLVM's unrolled vector loop with no scalar remainder, and the
# pooling loops vectorise whole (C3 4.4 -> 3.7 us, S2 0.66 -> 0.25 us per float32 sample). A
# block's largest array, C1's output, is 6 x 28 x 28 x 32 floats (0.6 MB in float32).
LANES = 32


# ---------------------------------------------------------------- sparse convolution
# u[m] = b[m] + sum_{c in table(m)} x[c] (*) W[m,c]   ('valid' cross-correlation), per lane:
# with lanes last, output row u[m, y] (width * LANES values) gets kernel row i of W[m,c] as
#   u[m, y, :, :] += sum_j W[m,c,i,j] x[c, y+i, j:j+width, :]
# i.e. flat, out[q] += sum_j W[m,c,i,j] row[q + j*LANES]: one contiguous pass per (y, i).
# The maps that read input map c share each load of the row, four at a time.

@kernel
def conv_forward_lanes(x, weight, bias, pairs, u):
    assert weight.shape[2] == KERNEL and weight.shape[3] == KERNEL and u.shape[3] == LANES
    maps, height, width, _ = u.shape
    n = width * LANES
    readers = np.empty((x.shape[0], maps), np.int64)  # readers[c, :count[c]]: maps reading c
    count = np.zeros(x.shape[0], np.int64)
    for p in range(pairs.shape[0]):
        m, c = pairs[p, 0], pairs[p, 1]
        readers[c, count[c]] = m
        count[c] += 1
    for m in range(maps):
        for y in range(height):
            for xx in range(width):
                for lane in range(LANES):
                    u[m, y, xx, lane] = bias[m]
    for y in range(height):
        for c in range(x.shape[0]):
            k = 0
            while k < count[c]:
                if count[c] - k >= 4:
                    m1, m2, m3, m4 = readers[c, k], readers[c, k + 1], readers[c, k + 2], readers[c, k + 3]
                    o1, o2 = u[m1, y].reshape(-1), u[m2, y].reshape(-1)
                    o3, o4 = u[m3, y].reshape(-1), u[m4, y].reshape(-1)
                    for i in range(KERNEL):
                        row = x[c, y + i].reshape(-1)
                        a0, a1, a2, a3, a4 = weight[m1, c, i]
                        b0, b1, b2, b3, b4 = weight[m2, c, i]
                        c0, c1, c2, c3, c4 = weight[m3, c, i]
                        d0, d1, d2, d3, d4 = weight[m4, c, i]
                        for q in range(n):
                            r0, r1, r2 = row[q], row[q + LANES], row[q + 2 * LANES]
                            r3, r4 = row[q + 3 * LANES], row[q + 4 * LANES]
                            o1[q] += a0 * r0 + a1 * r1 + a2 * r2 + a3 * r3 + a4 * r4
                            o2[q] += b0 * r0 + b1 * r1 + b2 * r2 + b3 * r3 + b4 * r4
                            o3[q] += c0 * r0 + c1 * r1 + c2 * r2 + c3 * r3 + c4 * r4
                            o4[q] += d0 * r0 + d1 * r1 + d2 * r2 + d3 * r3 + d4 * r4
                    k += 4
                elif count[c] - k >= 2:
                    m1, m2 = readers[c, k], readers[c, k + 1]
                    o1, o2 = u[m1, y].reshape(-1), u[m2, y].reshape(-1)
                    for i in range(KERNEL):
                        row = x[c, y + i].reshape(-1)
                        a0, a1, a2, a3, a4 = weight[m1, c, i]
                        b0, b1, b2, b3, b4 = weight[m2, c, i]
                        for q in range(n):
                            r0, r1, r2 = row[q], row[q + LANES], row[q + 2 * LANES]
                            r3, r4 = row[q + 3 * LANES], row[q + 4 * LANES]
                            o1[q] += a0 * r0 + a1 * r1 + a2 * r2 + a3 * r3 + a4 * r4
                            o2[q] += b0 * r0 + b1 * r1 + b2 * r2 + b3 * r3 + b4 * r4
                    k += 2
                else:
                    m1 = readers[c, k]
                    o1 = u[m1, y].reshape(-1)
                    for i in range(KERNEL):
                        row = x[c, y + i].reshape(-1)
                        a0, a1, a2, a3, a4 = weight[m1, c, i]
                        for q in range(n):
                            o1[q] += (a0 * row[q] + a1 * row[q + LANES] + a2 * row[q + 2 * LANES]
                                      + a3 * row[q + 3 * LANES] + a4 * row[q + 4 * LANES])
                    k += 1


# ---------------------------------------------------------------- subsampling
# sum: u[m] = beta[m] * down(x[s]) + b[m];  max: u[m] = the largest of each 2x2 block of x[s]
# (s = source[m], the input map pooled map m reads), per lane.

@kernel
def pool_forward_lanes(x, coeff, bias, u, kind, source):
    maps, height, width, _ = u.shape
    for m in range(maps):
        s, beta, b = source[m], coeff[m], bias[m]
        for y in range(height):
            for xx in range(width):
                top, low, out = x[s, 2 * y], x[s, 2 * y + 1], u[m, y, xx]
                a, bb, c, d = top[2 * xx], top[2 * xx + 1], low[2 * xx], low[2 * xx + 1]
                if kind == POOL_MAX:
                    for lane in range(LANES):
                        out[lane] = max(max(a[lane], bb[lane]), max(c[lane], d[lane]))
                else:
                    for lane in range(LANES):
                        out[lane] = beta * (a[lane] + bb[lane] + c[lane] + d[lane]) + b


# ---------------------------------------------------------------- dense (C5 seen flat, F6)
# u = W h + b for LANES columns h[:, lane]. Lane by lane, u[:, lane] += h[i, lane] W^T[i, :]
# runs along the rows of W^T (inputs, units), its units zero-padded to a multiple of LANES
# (`padded_transpose`) so every pass is whole vectors; the inputs are taken in blocks of
# DENSE_BLOCK rows, which stay in L1 while all the lanes pass over them. `acc` (LANES, units
# padded) holds the sums.
DENSE_BLOCK = 32


@kernel
def padded_transpose(weight):
    """W^T, (inputs, units rounded up to a multiple of LANES), zeros in the extra columns."""
    n_out, n_in = weight.shape
    out = np.zeros((n_in, (n_out + LANES - 1) // LANES * LANES), weight.dtype)
    for o in range(n_out):
        for i in range(n_in):
            out[i, o] = weight[o, i]
    return out


@kernel
def dense_forward_lanes(h, weight_t, bias, u, acc):
    n_in, n_pad = weight_t.shape
    n_out = u.shape[0]
    for lane in range(LANES):
        for o in range(n_pad):
            acc[lane, o] = bias[o] if o < n_out else 0.0
    for i0 in range(0, n_in, DENSE_BLOCK):
        i1 = min(i0 + DENSE_BLOCK, n_in)
        for lane in range(LANES):
            a = acc[lane]
            i = i0
            while i + 8 <= i1:
                h0, h1, h2, h3 = h[i, lane], h[i + 1, lane], h[i + 2, lane], h[i + 3, lane]
                h4, h5, h6, h7 = h[i + 4, lane], h[i + 5, lane], h[i + 6, lane], h[i + 7, lane]
                w0, w1, w2, w3 = weight_t[i], weight_t[i + 1], weight_t[i + 2], weight_t[i + 3]
                w4, w5, w6, w7 = weight_t[i + 4], weight_t[i + 5], weight_t[i + 6], weight_t[i + 7]
                for o in range(n_pad):
                    a[o] += (h0 * w0[o] + h1 * w1[o] + h2 * w2[o] + h3 * w3[o]
                             + h4 * w4[o] + h5 * w5[o] + h6 * w6[o] + h7 * w7[o])
                i += 8
            while i < i1:
                h0, w0 = h[i, lane], weight_t[i]
                for o in range(n_pad):
                    a[o] += h0 * w0[o]
                i += 1
    for o in range(n_out):
        for lane in range(LANES):
            u[o, lane] = acc[lane, o]


# ---------------------------------------------------------------- outputs
# RBF: y[k] = sum_j (x[j] - P[k,j])^2;  softmax: y[k] = log sum_i exp(z[i]) - z[k]  (per lane)

@kernel
def rbf_forward_lanes(x, prototypes, y):
    for k in range(prototypes.shape[0]):
        out = y[k]
        for lane in range(LANES):
            out[lane] = 0.0
        for j in range(prototypes.shape[1]):
            p, xj = prototypes[k, j], x[j]
            for lane in range(LANES):
                diff = xj[lane] - p
                out[lane] += diff * diff


@kernel
def neg_log_softmax_forward_lanes(z, y):
    top = z[0].copy()
    for k in range(z.shape[0]):
        for lane in range(LANES):
            top[lane] = max(top[lane], z[k, lane])
    total = np.zeros(LANES, y.dtype)
    for k in range(z.shape[0]):
        for lane in range(LANES):
            total[lane] += np.exp(z[k, lane] - top[lane])
    for lane in range(LANES):
        top[lane] += np.log(total[lane])  # log sum exp
    for k in range(z.shape[0]):
        for lane in range(LANES):
            y[k, lane] = top[lane] - z[k, lane]
