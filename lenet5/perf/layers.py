"""Where one online step's time goes: each layer kernel of LeNet-5's online SDLM step timed
alone, against the whole step (`python -m lenet5.perf.layers`).

Each kernel of lenet5.core.kernels runs `calls` times in a compiled loop on the buffers of
one sample (the paper's network, MAP criterion, float32 unless told), and the whole step runs
as engine.train_online does it, over a few hundred samples. Times are the calling thread's
CPU time (time.thread_time), the fastest of `repeats`: on a machine shared with other
processes that is steadier than wall time, which also counts the waits for a core. The
kernels alone run with their data in cache, so their sum falls short of the whole step: the
rest is the small layers left out (activations of S2, S4, C5, F6, the criterion, the step of
the convolution layers' parameters) and the cache misses of the real sequence.
"""
import argparse
import time

import numba as nb
import numpy as np

from ..core import engine
from ..core import kernels as k
from ..core.model import LeNet5

# (label, which) in the order of the pass; `which` selects the call in `_repeat`
LAYERS = (
    ("C1 forward", 0), ("C1 activation", 1), ("S2 forward", 2), ("C3 forward", 3), ("C3 activation", 4),
    ("S4 forward", 5), ("C5 forward", 6), ("F6 forward", 7), ("RBF output", 8),
    ("F6 backward + step", 9), ("C5 backward + step", 10), ("S4 backward", 11),
    ("C3 backward (dW, dx)", 12), ("S2 backward", 13), ("C1 activation backward", 14), ("C1 backward (dW)", 15),
)


@nb.njit(**k.JIT_OPTIONS)
def _repeat(which, calls, spec, theta, eta, grad, acts, deltas, scratch):
    """Run layer kernel `which` (LAYERS) `calls` times on one sample's buffers."""
    p, e, g = engine.unpack(theta, spec.graph), engine.unpack(eta, spec.graph), engine.unpack(grad, spec.graph)
    a, d, s = acts, deltas, scratch
    act, pool = spec.codes.activation, spec.codes.pooling
    s2, s4 = spec.graph.s2_source, spec.graph.s4_source
    yes, no = np.bool_(True), np.bool_(False)
    for _ in range(calls):
        if which == 0:
            k.conv_forward(a.input, p.c1_weight, p.c1_bias, spec.c1_pairs, s.c1)
        elif which == 1:
            k.activation_forward(s.c1.reshape(-1), a.c1.reshape(-1), act)
        elif which == 2:
            k.pool_forward(a.c1, p.s2_coeff, p.s2_bias, s.s2, pool, s2)
        elif which == 3:
            k.conv_forward(a.s2, p.c3_weight, p.c3_bias, spec.c3_pairs, s.c3)
        elif which == 4:
            k.activation_forward(s.c3.reshape(-1), a.c3.reshape(-1), act)
        elif which == 5:
            k.pool_forward(a.c3, p.s4_coeff, p.s4_bias, s.s4, pool, s4)
        elif which == 6:
            k.dense_forward(a.s4.reshape(-1), p.c5_weight, p.c5_bias, s.c5)
        elif which == 7:
            k.dense_forward(a.c5, p.f6_weight, p.f6_bias, s.f6)
        elif which == 8:
            k.rbf_forward(a.f6, spec.prototypes, a.out)
        elif which == 9:
            k.dense_backward_step(a.c5, p.f6_weight, e.f6_weight, d.f6, p.f6_bias, e.f6_bias, s.c5, yes)
        elif which == 10:
            k.dense_backward_step(a.s4.reshape(-1), p.c5_weight, e.c5_weight, d.c5, p.c5_bias, e.c5_bias,
                                  s.s4.reshape(-1), yes)
        elif which == 11:
            k.pool_backward(a.c3, a.c3, p.s4_coeff, d.s4, g.s4_coeff, g.s4_bias, s.c3, pool, s4)
        elif which == 12:
            k.conv_backward(a.s2, p.c3_weight, d.c3, spec.c3_pairs, g.c3_weight, g.c3_bias, s.s2, yes)
        elif which == 13:
            k.pool_backward(a.c1, a.c1, p.s2_coeff, d.s2, g.s2_coeff, g.s2_bias, s.c1, pool, s2)
        elif which == 14:
            k.activation_backward(a.c1.reshape(-1), s.c1.reshape(-1), d.c1.reshape(-1), 1, act)
        else:
            k.conv_backward(a.input, p.c1_weight, d.c1, spec.c1_pairs, g.c1_weight, g.c1_bias, d.input, no)


def _cpu_seconds(call, repeats):
    best = np.inf
    for _ in range(repeats):
        start = time.thread_time()
        call()
        best = min(best, time.thread_time() - start)
    return best


def layer_times(dtype=np.float32, calls=5000, samples=500, repeats=5, seed=0):
    """({label: microseconds per call}, microseconds per whole online SDLM step)."""
    rng = np.random.default_rng(seed)
    net = LeNet5.init(seed=seed, dtype=dtype)
    spec = net.spec("map")
    work = engine.workspace(net.theta, spec)
    images = rng.uniform(-0.1, 1.175, (64, 32, 32)).astype(dtype)
    engine.forward_into(images[0], net.theta, spec, work.acts, work.scratch)
    for buffer in work.deltas:  # small finite deltas: the backward kernels' work does not depend on them
        buffer[...] = rng.standard_normal(buffer.shape) * 0.01
    eta = np.full_like(net.theta, 1e-7)  # a tiny step: repeated calls barely move the weights
    grad = np.zeros_like(net.theta)
    args = (spec, net.theta.copy(), eta, grad, work.acts, work.deltas, work.scratch)
    times = {}
    for label, which in LAYERS:
        _repeat(which, 2, *args)  # compile or load, warm the caches
        times[label] = 1e6 * _cpu_seconds(lambda w=which: _repeat(w, calls, *args), repeats) / calls
    labels = rng.integers(0, 10, images.shape[0]).astype(np.int64)
    order = rng.integers(0, images.shape[0], samples).astype(np.int64)
    losses = np.empty(samples, dtype)
    theta = net.theta.copy()
    engine.train_online(images, labels, order[:2], theta, eta, spec, losses[:2])  # compile or load
    whole = _cpu_seconds(lambda: engine.train_online(images, labels, order, theta, eta, spec, losses), repeats)
    return times, 1e6 * whole / samples


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m lenet5.perf.layers", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    parser.add_argument("--calls", type=int, default=5000, help="calls of each kernel per repeat (default 5000)")
    parser.add_argument("--repeats", type=int, default=5, help="repeats; the fastest counts (default 5)")
    args = parser.parse_args(argv)
    times, whole = layer_times(np.dtype(args.dtype).type, args.calls, repeats=args.repeats)
    print(f"one online SDLM step of LeNet-5, {args.dtype}, CPU microseconds (fastest of {args.repeats})")
    for label, us in times.items():
        print(f"{label:<26}{us:8.2f} us  {us / whole:6.1%}")
    print(f"{'sum of the above':<26}{sum(times.values()):8.2f} us  {sum(times.values()) / whole:6.1%}")
    print(f"{'whole step (train_online)':<26}{whole:8.2f} us  ({1e6 / whole:,.0f} samples/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
