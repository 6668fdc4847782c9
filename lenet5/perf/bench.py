"""Throughput of the Numba engine: `lenet5 bench` (also `python scripts/bench.py`).

Every figure is in samples/s: the median of several timed repeats, with their min-max, and
the implied seconds per 60,000-image pass. The inputs are random images in [-0.1, 1.175]
(MNIST's range after the paper's scaling) and random labels: the kernels do the same work
whatever the pixel values. Online training and the Hessian estimate run on one core; the
mini-batch and inference drivers split each batch over Numba's threads (`--threads`), and
each thread takes its share 32 samples at a time, one per SIMD lane (lenet5.core.lane_kernels).

Each figure is also given as a fraction of its ceiling (lenet5.perf.ceiling): the samples/s a
numpy matrix multiply's FLOP rate would allow for the network's FLOP per sample, at 1 thread
for the online and Hessian figures, at the batch drivers' thread count for the others.

Only figures taken in the same run are comparable: the machines are noisy.
"""
import argparse
import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numba
import numpy as np

from ..core import engine, gemm
from ..core.model import LeNet5
from ..errors import Lenet5Error
from ..files import write_json_atomic
from ..training.config import PAPER_MU, TrainConfig
from ..training.step_sizes import HESSIAN_SAMPLES, hessian_estimates_per_pass, sdlm_epsilon
from . import ceiling

PASS = 60_000  # MNIST's training set: "s/pass" = PASS / rate
EVAL = 70_000  # training + test set, evaluated after every pass in the paper's protocol
PASSES = 20  # the paper's protocol: 20 passes


HESSIANS = hessian_estimates_per_pass(PASS, TrainConfig().hessian_every)  # the default recipe's
SDLM_EPS = sdlm_epsilon(1)  # eta = eps / (mu + h): the paper's first-pass values
SGD_ETA = 1e-3

# The subprocess timed for the JIT cold/warm start: one tiny online step and one forward.
JIT_SNIPPET = """
import numpy as np
from lenet5 import LeNet5
from lenet5.core import engine
net = LeNet5.init(seed=0, dtype=np.float32)
x = np.zeros((2, 32, 32), np.float32)
engine.train_online(x, np.array([0, 1]), np.arange(2), net.theta, np.full_like(net.theta, 1e-3),
                    net.spec("map"), np.zeros(2, np.float32))
net.forward(x)
"""

MODES = {  # seconds of timing per figure, timed repeats, matrix size of the ceiling probe
    "full": dict(budget=6.0, repeats=5, matmul_n=2048),
    "quick": dict(budget=2.0, repeats=3, matmul_n=2048),
    "tiny": dict(budget=0.05, repeats=2, matmul_n=256),
}

# figure -> (its ceiling's threads: "1" or "batch", FLOP per sample: "training" or "forward")
CEILING_OF = {
    "online_sgd": ("1", "training"),
    "online_sdlm": ("1", "training"),
    "hessian_500": ("1", "training"),  # a forward and a backward pass of the same shape
    "minibatch_sgd_32": ("batch", "training"),
    "minibatch_sgd_256": ("batch", "training"),
    "infer_1000": ("batch", "forward"),
    "minibatch_sgd_256_gemm": ("batch", "training"),
    "infer_1000_gemm": ("batch", "forward"),
}


def implied_protocol(sdlm_rate, hessian_rate, infer_rate, threads):
    """Seconds for the paper protocol implied by the rates (samples/s): every pass trains on
    one core (PASS SDLM steps and HESSIANS estimates of HESSIAN_SAMPLES), the evaluation of each
    pass but the last runs on another core while the next pass trains (lenet5.training.trainer), so it
    adds only what it takes beyond the pass; the last one runs alone on every core."""
    train = PASS / sdlm_rate + HESSIANS * HESSIAN_SAMPLES / hessian_rate
    concurrent = EVAL / (infer_rate / max(threads, 1))  # one core's share of the batch rate
    return PASSES * train + (PASSES - 1) * max(0.0, concurrent - train) + EVAL / infer_rate

def add_arguments(p):
    p.add_argument("--quick", action="store_true", help="about 2 s per figure instead of 6")
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tests: seconds, float32 only
    p.add_argument("--threads", type=int, help="Numba threads for the batch drivers (default: all cores)")
    p.add_argument("--repeats", type=int, help="timed repeats per figure (default 5; 3 with --quick)")
    p.add_argument("--dtypes", default="float32,float64", help="comma-separated (default float32,float64)")
    p.add_argument("--data-dir", help="time loading MNIST from here (default $LENET5_DATA_DIR; skipped if unset)")
    p.add_argument("--no-jit", action="store_true", help="skip the JIT cold/warm start timing (~20-60 s)")
    p.add_argument("--json", metavar="PATH", help="also write every figure to PATH as one flat JSON object")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="lenet5 bench", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


# ---------------------------------------------------------------- timing

def timed(step, n, repeats):
    """Run step(n) `repeats` times: (median, min, max) samples/s."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        step(n)
        rates.append(n / (time.perf_counter() - start))
    return float(np.median(rates)), float(min(rates)), float(max(rates))


def calibrated(step, unit, budget, repeats, floor=1):
    """Time step(n) with n a multiple of `unit` sized so all repeats take about `budget` s.
    The first call (also the JIT warm-up, which compiles or loads from cache) sets the size."""
    step(unit)
    start = time.perf_counter()
    step(unit)
    per_unit = max(time.perf_counter() - start, 1e-6)
    n = unit * max(floor, int(budget / repeats / per_unit))
    return timed(step, n, repeats) + (n,)


class Setup:
    """Random inputs and a freshly initialised network in one dtype."""

    def __init__(self, dtype, pool=2048, seed=0):
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.images = rng.uniform(-0.1, 1.175, (pool, 32, 32)).astype(dtype)
        self.labels = rng.integers(0, 10, pool).astype(np.int64)
        self.net = LeNet5.init(seed=seed, dtype=dtype)
        self.spec = self.net.spec("map")  # the paper's network and criterion
        self.rng = rng

    def order(self, n):
        return self.rng.integers(0, len(self.images), n).astype(np.int64)


def online_rate(s, eta, n):
    """train_online over n samples (forward, backward, theta -= eta * grad for each), from
    the initial network each time: samples/s of the kernel call alone."""
    theta = s.net.theta.copy()
    losses = np.empty(n, s.dtype)
    order = s.order(n)
    start = time.perf_counter()
    engine.train_online(s.images, s.labels, order, theta, eta, s.spec, losses)
    elapsed = time.perf_counter() - start
    if not np.isfinite(losses).all():
        raise RuntimeError("online training diverged in the benchmark")
    return n / elapsed


def hessian(s, n):
    hess = np.zeros_like(s.net.theta)
    engine.hessian_diagonal(s.images[:n], s.net.theta, s.spec, hess)
    return hess / n


def bench_minibatch(s, batch):
    """loss_gradient_batch over one batch (split over threads), then theta -= eta/B * grad."""
    theta = s.net.theta.copy()
    grad = np.empty_like(theta)
    losses = np.empty(batch, s.dtype)
    bounds = engine.thread_bounds(batch)
    scale = s.dtype(SGD_ETA / batch)
    starts = np.arange(0, len(s.images) - batch + 1, batch)

    def step(n):  # n: a multiple of batch
        for k in range(n // batch):
            a = starts[k % len(starts)]
            engine.loss_gradient_batch(s.images[a:a + batch], s.labels[a:a + batch], theta, s.spec,
                                       bounds, losses, grad)
            np.multiply(grad, scale, out=grad)
            np.subtract(theta, grad, out=theta)
    return step


def bench_infer(s, batch):
    out = np.empty((batch, 10), s.dtype)
    bounds = engine.thread_bounds(batch)
    images = np.ascontiguousarray(np.resize(s.images, (batch, 32, 32)))

    def step(n):
        for _ in range(n // batch):
            engine.forward_batch(images, s.net.theta, s.spec, bounds, out)
    return step


def bench_minibatch_gemm(s, batch):
    """As bench_minibatch, with the im2col + matrix-multiply formulation (lenet5.core.gemm)."""
    theta = s.net.theta.copy()
    scale = s.dtype(SGD_ETA / batch)
    starts = np.arange(0, len(s.images) - batch + 1, batch)

    def step(n):
        for k in range(n // batch):
            a = starts[k % len(starts)]
            _, grad = gemm.losses_and_gradient(theta, s.spec, s.images[a:a + batch], s.labels[a:a + batch])
            theta[:] -= scale * grad
    return step


def bench_infer_gemm(s, batch):
    images = np.ascontiguousarray(np.resize(s.images, (batch, 32, 32)))

    def step(n):
        for _ in range(n // batch):
            gemm.forward(s.net.theta, s.spec, images)
    return step


def latency_figures(s, calls):
    """Median wall time (microseconds) of one call for a single 32x32 image, after warm-up:
    the forward kernel, and forward + criterion + backward (gradient into a buffer)."""
    image, label = s.images[0], int(s.labels[0])
    whole = engine.workspace(s.net.theta, s.spec)
    acts, scratch, work = whole.acts, whole.scratch, (whole.acts, whole.deltas, whole.scratch)
    grad = np.zeros_like(s.net.theta)

    def forward():
        engine.sample_forward(image, s.net.theta, s.spec, acts, scratch)

    def forward_backward():
        engine.sample_loss_gradient(image, label, s.net.theta, s.spec, work, grad)

    out = {}
    for name, call in (("latency_forward_us", forward), ("latency_fwd_bwd_us", forward_backward)):
        for _ in range(20):
            call()
        times = np.empty(calls)
        for k in range(calls):
            start = time.perf_counter()
            call()
            times[k] = time.perf_counter() - start
        out[name] = 1e6 * float(np.median(times))
    return out


# ---------------------------------------------------------------- the figures

def engine_figures(dtype, mode, repeats, note):
    """Every engine figure for one dtype: name -> (median, min, max, samples per repeat)."""
    s = Setup(dtype)
    budget = MODES[mode]["budget"]
    tiny = mode == "tiny"
    out = {}

    def run_online(name, eta):
        online_rate(s, eta, 32)  # warm-up (compiles or loads the kernel)
        n = 32 if tiny else max(256, int(budget / repeats * online_rate(s, eta, 256)))
        rates = [online_rate(s, eta, n) for _ in range(repeats)]
        out[name] = (float(np.median(rates)), min(rates), max(rates), n)

    run_online("online_sgd", np.full_like(s.net.theta, SGD_ETA))
    h_n = 16 if tiny else HESSIAN_SAMPLES
    h = hessian(s, h_n)  # (also the Hessian kernel's warm-up)
    run_online("online_sdlm", (SDLM_EPS / (PAPER_MU + h)).astype(dtype))
    reps = [timed(lambda n: hessian(s, n), h_n, 1)[0] for _ in range(repeats)]
    out["hessian_500"] = (float(np.median(reps)), min(reps), max(reps), h_n)
    for batch in (32, 256):
        floor = 1 if tiny else 2
        out[f"minibatch_sgd_{batch}"] = calibrated(bench_minibatch(s, batch), batch,
                                                  budget, repeats, floor)
    infer_batch = 1000
    out["infer_1000"] = calibrated(bench_infer(s, infer_batch), infer_batch, budget, repeats)
    floor = 1 if tiny else 2
    out["minibatch_sgd_256_gemm"] = calibrated(bench_minibatch_gemm(s, 256), 256, budget, repeats, floor)
    out["infer_1000_gemm"] = calibrated(bench_infer_gemm(s, infer_batch), infer_batch, budget, repeats)
    if tiny:
        note.append(f"--tiny: few samples per figure (Hessian over {h_n}), not a measurement")
    return out


def distortion_figure(mode, repeats):
    """Distorted-image generation rate (the paper's affine distortions, lenet5.data.distort)."""
    from ..data.distort import distort_batch

    images = np.random.default_rng(0).uniform(-0.1, 1.175, (256, 32, 32)).astype(np.float32)
    n = 16 if mode == "tiny" else 256
    return timed(lambda k: distort_batch(images[:k], np.random.default_rng(1)), n, repeats) + (n,)


def data_load_figures(data_dir, note):
    """Seconds to load the MNIST training split: the first call (which may build the .npy
    cache from the .gz files) and a repeat call (from the cache)."""
    data_dir = data_dir or os.environ.get("LENET5_DATA_DIR")
    if not data_dir:
        note.append("data load: skipped, no --data-dir (or LENET5_DATA_DIR) given")
        return {}
    from ..data.mnist import load_mnist
    times = {}
    for key in ("data_load_first_s", "data_load_cached_s"):
        start = time.perf_counter()
        images, _ = load_mnist("train", data_dir=data_dir, download=False)
        times[key] = time.perf_counter() - start
    times["data_load_images"] = len(images)
    return times


def jit_figures(note):
    """Wall seconds of a subprocess that imports lenet5 and runs one tiny online step and one
    forward: with an empty Numba cache (cold: everything compiles) and again (warm: loaded)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    out = {}
    with tempfile.TemporaryDirectory(prefix="lenet5-jit-") as cache:
        env["NUMBA_CACHE_DIR"] = cache
        for key in ("jit_cold_s", "jit_warm_s"):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", JIT_SNIPPET], env=env, check=True)
            out[key] = time.perf_counter() - start
    note.append("JIT: a fresh `python -c` running one online step and one forward (float32), "
                "Numba cache empty (cold) then filled (warm)")
    return out


# ---------------------------------------------------------------- report

LABELS = {
    "online_sgd": "online SGD step (batch 1, 1 core)",
    "online_sdlm": "online SDLM step (batch 1, 1 core)",
    "hessian_500": "Hessian estimate (per sample, 1 core)",
    "minibatch_sgd_32": "mini-batch SGD, batch 32 (all threads)",
    "minibatch_sgd_256": "mini-batch SGD, batch 256 (all threads)",
    "infer_1000": "inference, batch 1000 (all threads)",
    "minibatch_sgd_256_gemm": "mini-batch SGD b256, im2col + BLAS",
    "infer_1000_gemm": "inference b1000, im2col + BLAS",
    "distort": "distortion generation",
}


def ceiling_figures(dtype_name, mode, repeats, threads):
    """The matrix-multiply rate at 1 and `threads` threads (GFLOP/s: median, min, max) and the
    FLOP per sample; keys as in the JSON, without the dtype suffix."""
    out = {"flop_forward": ceiling.forward_flop(), "flop_training": ceiling.training_flop()}
    for key, k in (("1t", 1), ("batch", threads)):
        rates = np.array(ceiling.matmul_rates(k, MODES[mode]["matmul_n"], repeats, dtype_name)) / 1e9
        out[f"matmul_gflops_{key}"] = float(np.median(rates))
        out[f"matmul_gflops_{key}_min"] = float(rates.min())
        out[f"matmul_gflops_{key}_max"] = float(rates.max())
    return out


def ceiling_of(name, ceil):
    """(samples/s the ceiling allows, its thread count's key) for a figure."""
    threads, work = CEILING_OF[name]
    gflops = ceil["matmul_gflops_1t" if threads == "1" else "matmul_gflops_batch"]
    return gflops * 1e9 / ceil[f"flop_{work}"]


def load_average():
    """The 1-minute load average (runnable processes, this one included), or None where the
    system does not report it."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return None


def load_notes(result):
    """How busy the machine was: the load average before and after, and a warning when the
    batch threads' matmul ran no faster than one thread's (other processes had the cores)."""
    start, end = result["loadavg_start"], result["loadavg_end"]
    notes = []
    if start is not None and end is not None:
        notes.append(f"load average {start:.2f} at the start, {end:.2f} at the end, on "
                     f"{result['nproc']} CPUs (1-minute averages, this benchmark included)")
    slow = [key for key in result if key.startswith("matmul_gflops_batch") and key[-4:] not in ("_min", "_max")
            and result[key] <= result[key.replace("batch", "1t")]]
    if result["threads"] > 1 and slow:
        notes.append(f"the {result['threads']}-thread matmul ran no faster than 1 thread: the "
                     "machine is busy, so the batch figures and their ceiling fractions are unreliable")
    return notes


def cpu_model():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def run(args):
    mode = "tiny" if args.tiny else "quick" if args.quick else "full"
    repeats = args.repeats or MODES[mode]["repeats"]
    if args.threads:
        try:
            numba.set_num_threads(args.threads)
        except ValueError as e:
            raise Lenet5Error(f"--threads {args.threads}: {e}") from None
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if args.tiny:
        dtypes = dtypes[:1]
    notes = []
    result = {
        "date": datetime.date.today().isoformat(),
        "cpu": cpu_model(), "nproc": os.cpu_count(), "threads": numba.get_num_threads(),
        "numba": numba.__version__, "numpy": np.__version__, "python": platform.python_version(),
        "mode": mode, "repeats": repeats, "loadavg_start": load_average(),
    }
    print(f"lenet5 bench ({mode}): {result['cpu']}, {result['nproc']} CPUs, "
          f"{result['threads']} Numba threads; numba {numba.__version__}, numpy {np.__version__}")
    print(f"samples/s, median of {repeats} (min-max); s/pass = {PASS:,} samples at that rate\n")
    threads = result["threads"]
    flop_f, flop_t = ceiling.forward_flop(), ceiling.training_flop()
    print(f"ceiling: {flop_f:,} FLOP forward per sample (2 x {flop_f // 2:,} connections), "
          f"training 3 x forward = {flop_t:,};")
    print(f"  samples/s = numpy n x n matmul FLOP/s / FLOP per sample, at 1 thread (online, "
          f"Hessian) or {threads} (batch figures)")
    tuning = ceiling.blas_tuning()
    result["blas_tuning"] = tuning
    if tuning:
        notes.append("BLAS tuning variables set (left as they are; they can slow numpy's BLAS): "
                     + ", ".join(f"{k}={v}" for k, v in tuning.items()))
    header = (f"{'figure':<42}{'dtype':<9}{'samples/s':>11}  {'(min-max)':<19}{'s/pass':>8}"
              f"{'ceiling':>10}{'of it':>8}")
    print(header)
    print("-" * len(header))
    for dtype_name in dtypes:
        dtype = np.dtype(dtype_name).type
        suffix = "" if dtype is np.float32 else "_" + {np.float64: "f64"}.get(dtype, dtype_name)
        ceil = ceiling_figures(dtype_name, mode, repeats, threads)
        for key, value in ceil.items():
            result[key + suffix if key.startswith("matmul") else key] = value
        result["ceiling_threads"] = threads
        for key, k in (("1t", 1), ("batch", threads)):
            med, lo, hi = (ceil[f"matmul_gflops_{key}{end}"] for end in ("", "_min", "_max"))
            print(f"{f'numpy matmul GFLOP/s, {k} thread(s)':<42}{dtype_name:<9}{med:>11,.1f}  "
                  f"{f'({lo:,.1f}-{hi:,.1f})':<19}")
        figures = engine_figures(dtype, mode, repeats, notes)
        for name, (med, lo, hi, _) in figures.items():
            top = ceiling_of(name, ceil)
            result[name + suffix] = med
            result[name + suffix + "_min"] = lo
            result[name + suffix + "_max"] = hi
            result[name + suffix + "_ceiling"] = top
            result[name + suffix + "_of_ceiling"] = med / top
            print(f"{LABELS[name]:<42}{dtype_name:<9}{med:>11,.0f}  {f'({lo:,.0f}-{hi:,.0f})':<19}"
                  f"{PASS / med:>8.1f}{top:>10,.0f}{med / top:>8.1%}")
        protocol = implied_protocol(figures["online_sdlm"][0], figures["hessian_500"][0],
                                    figures["infer_1000"][0], threads)
        result["paper_protocol_s" + suffix] = protocol
        latency = latency_figures(Setup(dtype), 50 if args.tiny else 3000)
        for name, value in latency.items():
            result[name + suffix] = value
        print(f"{'single image, median after warm-up':<42}{dtype_name:<9}"
              f"forward {latency['latency_forward_us']:.1f} us, forward+backward "
              f"{latency['latency_fwd_bwd_us']:.1f} us")
        what = f"20 x: 60k SDLM + {HESSIANS} x 500 Hessian, 70k eval concurrently"
        print(f"{'  => paper protocol (' + what + ')':<62}{protocol:>8.0f} s")
    med, lo, hi, _ = distortion_figure(mode, repeats)
    result.update(distort=med, distort_min=lo, distort_max=hi)
    print(f"{LABELS['distort']:<42}{'float32':<9}{med:>11,.0f}  {f'({lo:,.0f}-{hi:,.0f})':<19}"
          f"{PASS / med:>8.1f}")
    loads = data_load_figures(args.data_dir, notes)
    result.update(loads)
    if loads:
        print(f"MNIST train split load: {loads['data_load_first_s']:.2f} s first call, "
              f"{loads['data_load_cached_s']:.2f} s repeat ({loads['data_load_images']:,} images)")
    if args.no_jit or args.tiny:
        notes.append("JIT cold/warm start: skipped" + (" (--tiny)" if args.tiny else " (--no-jit)"))
    else:
        jit = jit_figures(notes)
        result.update(jit)
        print(f"JIT start: {jit['jit_cold_s']:.1f} s cold (empty cache), {jit['jit_warm_s']:.1f} s warm")
    result["loadavg_end"] = load_average()
    notes += load_notes(result)
    for line in notes:
        print(f"note: {line}")
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, result)
        print(f"wrote {path}")
    return 0
