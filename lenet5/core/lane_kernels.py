"""Kernels for a block of LANES samples at once, one sample per SIMD lane.

The per-sample kernels in `lenet5.core.kernels` are the readable reference; these compute the
same layers for LANES images side by side, every array carrying a last axis of LANES: a
layer's output u[m, y, x] becomes u[m, y, x, :], one value per sample. Every sum is then a
vector of independent per-sample sums (broadcast weight times a lane vector), so the loops
vectorise without wide-row junk columns, and a dense layer's weights are read once per block
instead of once per sample. A parameter gradient is summed over the lanes as well, which is
what a batch gradient is. The sums run in another order than the reference's, so results
agree with it to rounding (tests/test_lanes.py), not bit for bit.

Used by inference (`engine.forward_chunk`) and batch gradients (`engine.gradient_chunk`).
The paper's online training, the Hessian estimate and the trainer's evaluation stay on the
per-sample kernels, so their results (and the shipped checkpoint) are unchanged bit for bit.

The activation needs no lane kernel: it is elementwise, so `kernels.activation_forward` and
`activation_backward` run on the flat view of a lane array.
"""
import numpy as np

from .architecture import KERNEL
from .kernels import POOL_MAX, conv_backward_wide, inlined, kernel

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
# (`padded_transpose`) so every pass is whole vectors. A pass takes four rows of W^T and four
# lanes: each load of W^T serves four lanes (loads, not multiplies, bound these loops). The
# inputs are taken in blocks of DENSE_BLOCK rows, which stay in L1 while all the lanes pass
# over them. `acc` (LANES, units padded) holds the sums.
DENSE_BLOCK = 32


def padded_transpose(weight):
    """W^T, (inputs, units rounded up to a multiple of LANES), zeros in the extra columns
    (numpy, once per batch: nothing to compile)."""
    n_out, n_in = weight.shape
    out = np.zeros((n_in, -(-n_out // LANES) * LANES), weight.dtype)
    out[:, :n_out] = weight.T
    return out


# out_k += sum_j c_k[j] rows_j for k, j < 4 (rows as long as the outputs): each load of an
# input row serves four output rows. The dense layers' forward sums and weight gradients are
# both this update, with other rows and coefficients.
@inlined
def rank4_update(out0, out1, out2, out3, c0, c1, c2, c3, row0, row1, row2, row3):
    p0, p1, p2, p3 = c0
    q0, q1, q2, q3 = c1
    r0, r1, r2, r3 = c2
    s0, s1, s2, s3 = c3
    for o in range(out0.shape[0]):
        v0, v1, v2, v3 = row0[o], row1[o], row2[o], row3[o]
        out0[o] += p0 * v0 + p1 * v1 + p2 * v2 + p3 * v3
        out1[o] += q0 * v0 + q1 * v1 + q2 * v2 + q3 * v3
        out2[o] += r0 * v0 + r1 * v1 + r2 * v2 + r3 * v3
        out3[o] += s0 * v0 + s1 * v1 + s2 * v2 + s3 * v3


@kernel
def dense_forward_lanes(h, weight_t, bias, u, acc):
    n_in, n_pad = weight_t.shape
    n_out = u.shape[0]
    for lane in range(LANES):
        for o in range(n_pad):
            acc[lane, o] = bias[o] if o < n_out else 0.0
    for i0 in range(0, n_in, DENSE_BLOCK):
        i1 = min(i0 + DENSE_BLOCK, n_in)
        for lane in range(0, LANES, 4):  # four lanes share each load of a row of W^T
            a0, a1, a2, a3 = acc[lane], acc[lane + 1], acc[lane + 2], acc[lane + 3]
            i = i0
            while i + 4 <= i1:  # acc[lane + k] += sum_r h[i + r, lane + k] W^T[i + r]
                rank4_update(a0, a1, a2, a3, (h[i, lane], h[i + 1, lane], h[i + 2, lane], h[i + 3, lane]),
                             (h[i, lane + 1], h[i + 1, lane + 1], h[i + 2, lane + 1], h[i + 3, lane + 1]),
                             (h[i, lane + 2], h[i + 1, lane + 2], h[i + 2, lane + 2], h[i + 3, lane + 2]),
                             (h[i, lane + 3], h[i + 1, lane + 3], h[i + 2, lane + 3], h[i + 3, lane + 3]),
                             weight_t[i], weight_t[i + 1], weight_t[i + 2], weight_t[i + 3])
                i += 4
            while i < i1:
                w0 = weight_t[i]
                p0, q0, r0, s0 = h[i, lane], h[i, lane + 1], h[i, lane + 2], h[i, lane + 3]
                for o in range(n_pad):
                    a0[o] += p0 * w0[o]
                    a1[o] += q0 * w0[o]
                    a2[o] += r0 * w0[o]
                    a3[o] += s0 * w0[o]
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


# dE/dz[i] = p[i] sum_k dE/dy[k] - dE/dy[i] with p = exp(-y), per lane (kernels.neg_log_softmax_backward)

@kernel
def neg_log_softmax_backward_lanes(y, dy, dz):
    total = np.zeros(LANES, dy.dtype)
    for k in range(dy.shape[0]):
        for lane in range(LANES):
            total[lane] += dy[k, lane]
    for i in range(dy.shape[0]):
        for lane in range(LANES):
            dz[i, lane] = np.exp(-y[i, lane]) * total[lane] - dy[i, lane]


# ================================================================ backward (batch gradients)
# The same layers' backward kernels for a block: per-lane deltas, and the parameter gradients
# summed over the lanes (a batch gradient is a sum over samples; callers zero them).

# dE/dW[m,c,i,j] = sum_lanes x[c] (*) delta[m]          ('valid' correlation, all lanes at once)
# dE/db[m]       = sum_lanes sum delta[m]
# dE/dx[c]       = sum_m delta[m] (*)full rot180(W[m,c])  ('full' correlation, rotated kernel)
# Wide rows, as kernels.conv_backward with LANES values to a pixel (kernels.conv_backward_wide,
# step = LANES): delta[m] is copied into `wide` (zeroed by the caller, kept between blocks) with
# the input's row stride W*LANES, so each sum is one contiguous pass over whole rows.

@kernel
def conv_backward_lanes(x, weight, delta, pairs, dweight, dbias, dx, need_dx, wide):
    assert delta.shape[3] == LANES
    maps, height = delta.shape[0], delta.shape[1]
    conv_backward_wide(x.reshape(x.shape[0], -1), weight, delta.reshape((maps, height, -1)), pairs, dweight,
                       dbias, dx.reshape(dx.shape[0], -1), need_dx, wide, x.shape[2] * LANES, LANES)


# sum: dE/dbeta[m] = sum_lanes sum delta[m] * down(x[s]);  dE/db[m] = sum_lanes sum delta[m];
#      dE/dx[m] = beta[m] * up(delta[m]);
# max: dE/dx = delta at the block's winning input (the first in row-major order on a tie).
# As the per-sample kernel, pooled map m's dE/dx goes to dx[m] (the caller adds shared maps).

@kernel
def pool_backward_lanes(x, coeff, delta, dcoeff, dbias, dx, kind, source):
    maps, height, width, _ = delta.shape
    zero = delta.dtype.type(0.0)
    L = LANES
    for m in range(maps):
        s, beta = source[m], coeff[m]
        gcoeff = zero
        gbias = zero
        for y in range(height):  # rows flat: block (y, xx) of lane l at 2*xx*L + l and + L
            top, low, d = x[s, 2 * y].reshape(-1), x[s, 2 * y + 1].reshape(-1), delta[m, y].reshape(-1)
            dtop, dlow = dx[m, 2 * y].reshape(-1), dx[m, 2 * y + 1].reshape(-1)
            for xx in range(width):
                q, r = xx * L, 2 * xx * L
                if kind == POOL_MAX:
                    for lane in range(L):
                        a, b = top[r + lane], top[r + L + lane]
                        c, e = low[r + lane], low[r + L + lane]
                        best = max(max(a, b), max(c, e))
                        first_a = a == best
                        first_b = not first_a and b == best
                        first_c = not first_a and not first_b and c == best
                        g = d[q + lane]
                        dtop[r + lane] = g if first_a else zero
                        dtop[r + L + lane] = g if first_b else zero
                        dlow[r + lane] = g if first_c else zero
                        dlow[r + L + lane] = g if not (first_a or first_b or first_c) else zero
                else:
                    for lane in range(L):
                        g = d[q + lane]
                        gcoeff += g * (top[r + lane] + top[r + L + lane] + low[r + lane] + low[r + L + lane])
                        gbias += g
                        up = beta * g
                        dtop[r + lane] = up
                        dtop[r + L + lane] = up
                        dlow[r + lane] = up
                        dlow[r + L + lane] = up
        dcoeff[m] += gcoeff
        dbias[m] += gbias


# dE/dW = sum_lanes delta h^T;  dE/db = sum_lanes delta;  dE/dx = W^T delta (per lane).
# The weight gradient runs along W's rows: dW[o, :] += sum_lanes delta[o, lane] h[:, lane]^T,
# with h transposed to (LANES, inputs) in `h_t`, four lanes and four units a pass. dE/dx is
# dense_forward_lanes with W padded (units, inputs rounded up) in place of W^T padded.

@kernel
def dense_backward_lanes(h, weight_padded, delta, dweight, dbias, dx, need_dx, h_t, acc):
    n_out, n_in = dweight.shape
    for i in range(n_in):
        for lane in range(LANES):
            h_t[lane, i] = h[i, lane]
    for o in range(n_out):
        total = delta.dtype.type(0.0)
        for lane in range(LANES):
            total += delta[o, lane]
        dbias[o] += total
    o = 0
    while o + 4 <= n_out:  # four units a pass share each load of a row of h^T
        g0, g1, g2, g3 = dweight[o], dweight[o + 1], dweight[o + 2], dweight[o + 3]
        for lane in range(0, LANES, 4):  # dW[o + k] += sum_l delta[o + k, lane + l] h^T[lane + l]
            d = delta
            rank4_update(g0, g1, g2, g3, (d[o, lane], d[o, lane + 1], d[o, lane + 2], d[o, lane + 3]),
                         (d[o + 1, lane], d[o + 1, lane + 1], d[o + 1, lane + 2], d[o + 1, lane + 3]),
                         (d[o + 2, lane], d[o + 2, lane + 1], d[o + 2, lane + 2], d[o + 2, lane + 3]),
                         (d[o + 3, lane], d[o + 3, lane + 1], d[o + 3, lane + 2], d[o + 3, lane + 3]),
                         h_t[lane], h_t[lane + 1], h_t[lane + 2], h_t[lane + 3])
        o += 4
    while o < n_out:
        d, g = delta[o], dweight[o]
        for lane in range(0, LANES, 4):
            d0, d1, d2, d3 = d[lane], d[lane + 1], d[lane + 2], d[lane + 3]
            r0, r1, r2, r3 = h_t[lane], h_t[lane + 1], h_t[lane + 2], h_t[lane + 3]
            for i in range(n_in):
                g[i] += d0 * r0[i] + d1 * r1[i] + d2 * r2[i] + d3 * r3[i]
        o += 1
    if need_dx:
        dense_forward_lanes(delta, weight_padded, np.zeros(dx.shape[0], delta.dtype), dx, acc)


# RBF: dE/dx[j] = sum_k dE/dy[k] * 2 (x[j] - P[k,j]), per lane

@kernel
def rbf_backward_lanes(x, prototypes, dy, dx):
    for j in range(x.shape[0]):
        for lane in range(LANES):
            dx[j, lane] = 0.0
    for k in range(prototypes.shape[0]):
        g = dy[k]
        for j in range(prototypes.shape[1]):
            p, out, xj = prototypes[k, j], dx[j], x[j]
            for lane in range(LANES):
                out[lane] += 2.0 * g[lane] * (xj[lane] - p)
