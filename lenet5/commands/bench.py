"""`lenet5 bench`: samples/s of online, mini-batch and Hessian passes and of inference."""
from ..perf import bench


def register(sub):
    p = sub.add_parser(
        "bench", help="measure training and inference throughput (samples/s)",
        description="Time the Numba engine on random MNIST-sized inputs, in float32 and float64: "
        "online SGD and SDLM steps (batch 1, one core), the 500-sample Hessian estimate, "
        "mini-batch SGD at batch 32 and 256 and inference at batch 1000 (all threads), plus "
        "distortion generation, MNIST loading and JIT cold/warm start when available. "
        "Each figure is the median of several repeats with min-max, and its fraction of the "
        "CPU's ceiling: numpy's matrix-multiply rate at 1 thread (online, Hessian) or all threads "
        "(batch figures) over the network's FLOP per sample (lenet5.perf.ceiling).")
    bench.add_arguments(p)
    p.set_defaults(func=run)


def run(args):
    return bench.run(args)
