"""What the CPU could do for LeNet-5: the work per sample and the machine's matrix-multiply rate.

Work, from architecture.py's connection counts (each a multiply-add, biases included, as the
paper counts them: 340,908 for the paper's network):
    forward FLOP per sample  = 2 x connections                 (0.68 MFLOP for the paper's)
    training FLOP per sample = 3 x forward FLOP                (forward, dE/dx and dE/dW)
The activations, the update and the criterion are left out: the ceiling is the dense
arithmetic alone, what a perfect matrix-multiply formulation would run at.

Rate: a float32 (or float64) n x n numpy matrix multiply, 2 n^3 FLOP, in a fresh Python
process whose BLAS is held to k threads (OPENBLAS_NUM_THREADS = OMP_NUM_THREADS =
MKL_NUM_THREADS = k), median of repeats. A subprocess is the one portable way to fix the
thread count of numpy's BLAS. The rest of the environment is left as it is (including
OPENBLAS_CORETYPE, which some machines set: it can slow numpy's BLAS; the engine's batch
fast path multiplies with the same BLAS, so it is held to the same ceiling).

ceiling (samples/s) = rate (FLOP/s) / FLOP per sample.
"""
import json
import os
import subprocess
import sys

from ..core.architecture import PAPER, layers

FLOP_PER_CONNECTION = 2  # one multiply and one add
TRAINING_FACTOR = 3  # forward, plus dE/dx and dE/dW of the same size

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
BLAS_TUNING = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")  # reported, never changed

MATMUL_SNIPPET = """
import json, sys, time
import numpy as np
n, repeats, dtype = int(sys.argv[1]), int(sys.argv[2]), np.dtype(sys.argv[3])
rng = np.random.default_rng(0)
a = rng.standard_normal((n, n)).astype(dtype)
b = rng.standard_normal((n, n)).astype(dtype)
a @ b  # warm-up: thread pool start, page faults
rates = []
for _ in range(repeats):
    start = time.perf_counter()
    a @ b
    rates.append(2.0 * n ** 3 / (time.perf_counter() - start))
print(json.dumps(rates))
"""


def forward_flop(variant=PAPER):
    """FLOP of one sample's forward pass: 2 per connection."""
    return FLOP_PER_CONNECTION * sum(layer.connections for layer in layers(variant))


def training_flop(variant=PAPER):
    """FLOP of one sample's forward and backward pass: 3 x forward."""
    return TRAINING_FACTOR * forward_flop(variant)


def matmul_rates(threads, n=2048, repeats=5, dtype="float32"):
    """FLOP/s of repeated n x n matrix multiplies with numpy's BLAS held to `threads` threads,
    each repeat's rate, measured in a fresh subprocess."""
    env = dict(os.environ)
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    done = subprocess.run([sys.executable, "-c", MATMUL_SNIPPET, str(n), str(repeats), dtype],
                          env=env, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def blas_tuning():
    """The BLAS tuning variables set in this environment (name -> value)."""
    return {name: os.environ[name] for name in BLAS_TUNING if name in os.environ}
