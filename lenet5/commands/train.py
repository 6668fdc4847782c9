"""`lenet5 train`: the paper's training protocol on MNIST (also `python scripts/train.py`)."""
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

import numba

from ..audit import audit_rows, format_audit
from ..errors import Lenet5Error
from ..model import LeNet5
from ..train import Interrupted, Trainer, TrainConfig

DEFAULTS = TrainConfig()


def register(sub):
    p = sub.add_parser(
        "train", help="train LeNet-5 on MNIST (paper protocol by default)",
        description="Train LeNet-5 on MNIST. Defaults are the paper's protocol: 20 online passes "
        "of stochastic diagonal Levenberg-Marquardt with the MAP criterion. Writes "
        "metrics.csv, metrics.json and checkpoint.npz to --out after every epoch.")
    p.add_argument("--epochs", type=int, default=DEFAULTS.epochs, help="passes over the training set (default 20)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="initialisation and shuffling seed (default 0)")
    p.add_argument("--optimizer", choices=("sdlm", "sgd"), default=DEFAULTS.optimizer,
                   help="sdlm: the paper's stochastic diagonal Levenberg-Marquardt; sgd: plain SGD")
    p.add_argument("--loss", choices=("map", "mse"), default=DEFAULTS.loss,
                   help="map: the paper's MAP criterion (eq. 9); mse: E = y_label (eq. 8)")
    p.add_argument("--j", type=float, default=DEFAULTS.j, help=f"the MAP criterion's constant j (default {DEFAULTS.j})")
    p.add_argument("--batch-size", type=int, default=DEFAULTS.batch_size,
                   help="1 = online (default; required for sdlm); >1 = mini-batch SGD over both cores")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr, help=f"SGD learning rate (default {DEFAULTS.lr})")
    p.add_argument("--mu", type=float, default=DEFAULTS.mu,
                   help=f"SDLM damping mu in eta = epsilon / (mu + h) (default {DEFAULTS.mu}; the paper prints 0.02)")
    p.add_argument("--train-size", type=int, default=0, help="train on the first N images only (default: all 60,000)")
    p.add_argument("--distortions", type=int, default=0, metavar="N",
                   help="add N randomly distorted copies of the training images, made once "
                   "(the paper's distorted run: 540000); passes stay the size of the training set")
    p.add_argument("--c3", choices=("table", "full"), default="table",
                   help="C3 wiring: table = LeCun's Table I (default), full = every S2 map to every C3 map")
    p.add_argument("--pooling", choices=("trainable", "average"), default="trainable",
                   help="S2/S4: trainable coefficient and bias (default, the paper) or a fixed "
                   "2x2 average (coefficient 1/4, bias 0, not trained)")
    p.add_argument("--dtype", choices=("float32", "float64"), default=DEFAULTS.dtype, help="floating point type")
    p.add_argument("--data-dir", help="MNIST folder (default $LENET5_DATA_DIR or ./data/mnist); downloaded if missing")
    p.add_argument("--out", help="run folder (default runs/<timestamp>; with --resume, the checkpoint's folder)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue the run saved in CHECKPOINT")
    p.add_argument("--threads", type=int, help="Numba threads for evaluation and mini-batches (default: all cores)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args):
    if args.threads:
        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            raise Lenet5Error(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}")
        numba.set_num_threads(args.threads)
    print(format_audit(audit_rows()))
    net = state = None
    if args.resume:
        net, state = LeNet5.load(args.resume, with_state=True)
        if "state.config" not in state:
            raise Lenet5Error(f"{args.resume} holds no training state; it cannot be resumed")
        saved = json.loads(str(state["state.config"]))
        config = TrainConfig(**{f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved})
        config.epochs = max(config.epochs, args.epochs) if args.epochs != DEFAULTS.epochs else config.epochs
        out = Path(args.out) if args.out else Path(args.resume).parent
    else:
        config = TrainConfig(epochs=args.epochs, seed=args.seed, optimizer=args.optimizer,
                             loss=args.loss, j=args.j, batch_size=args.batch_size, lr=args.lr, mu=args.mu,
                             train_size=args.train_size, dtype=args.dtype,
                             distortions=args.distortions, c3=args.c3, pooling=args.pooling)
        out = Path(args.out) if args.out else Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    config.check()
    data = load_data(args.data_dir)
    print(f"training {config.optimizer}/{config.loss} for {config.epochs} epochs, seed {config.seed}, "
          f"{config.train_size or len(data[0][0]):,} images, {config.dtype}; run folder {out}")
    trainer = Trainer(config, data, out, net=net, state=state, progress=not args.quiet)
    started = time.perf_counter()
    try:
        history = trainer.run()
    except Interrupted as e:
        print(f"lenet5: {e}\nresume with: lenet5 train --resume {trainer.checkpoint_path}",
              file=sys.stderr)
        return 130
    if history:
        last = history[-1]
        print(f"done in {time.perf_counter() - started:.1f}s: test error {last['test_error_pct']:.2f}% "
              f"after {last['epoch']} epochs; checkpoint {trainer.checkpoint_path}")
    return 0


def load_data(data_dir):
    from ..data.mnist import load_mnist

    return load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)
