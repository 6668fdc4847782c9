"""`lenet5 train`: the paper's training protocol on MNIST (also `python scripts/train.py`).

Every TrainConfig setting has a flag of the same name whose default is None, so the command
knows which settings the user gave: a new run fills the rest from TrainConfig's defaults; a
resumed run takes them from the checkpoint and refuses a given flag that disagrees with it,
except the RESUME_CHANGEABLE ones, which it honours.
"""
import shlex
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import numba

from ..core.architecture import VARIANT_CHOICES, default_output
from ..core.model import INIT_SCALES, LeNet5, default_loss
from ..errors import Lenet5Error
from ..tools.audit import audit_rows, format_audit
from ..training.config import DEFAULT_RECIPE, PAPER_MU, RECIPES, RESUME_CHANGEABLE, TrainConfig, saved_config
from ..training.interruption import Interrupted
from ..training.rundir import RUNS_ROOT, check_writable, inside_package, new_run_dir
from ..training.step_sizes import CHUNK, GN_SEEDS, SCHEDULES, SUBSAMPLES
from ..training.trainer import Trainer
from . import add_variant_arguments

DEFAULTS = TrainConfig()
# a flag that only one choice of another setting uses: flag -> (setting, value, what it is)
ONLY_WITH = {
    "lr": ("optimizer", "sgd", "plain SGD's learning rate; sdlm follows the paper's epsilon "
           "schedule (tune it with --mu)"),
    "mu": ("optimizer", "sdlm", "SDLM's damping; sgd steps by --lr"),
    "j": ("loss", "map", "the MAP criterion's constant"),
    "subsample": ("optimizer", "sdlm", "how SDLM steps the subsampling coefficient"),
    "gn_seed": ("optimizer", "sdlm", "SDLM's Hessian seed"),
    "hessian_every": ("optimizer", "sdlm", "how often SDLM re-estimates its Hessian"),
    "schedule": ("optimizer", "sdlm", "SDLM's global step schedule"),
    "hessian_passes": ("optimizer", "sdlm", "how many passes SDLM keeps its Hessian estimate"),
    "hessian_samples": ("optimizer", "sdlm", "the images SDLM's Hessian estimate averages over"),
}


def register(sub):
    p = sub.add_parser(
        "train", help="train LeNet-5 on MNIST (paper protocol by default)",
        description="Train LeNet-5 on MNIST. Defaults are the paper's protocol: 20 online passes "
        "of stochastic diagonal Levenberg-Marquardt with the MAP criterion. Writes "
        "checkpoint.npz, then metrics.csv and metrics.json, to the run folder after every "
        "pass. Ctrl-C saves and stops; --resume continues.")
    p.add_argument("--epochs", type=int, help="passes over the training set (default 20; with "
                   "--resume, the total to reach)")
    p.add_argument("--seed", type=int, help="initialisation and shuffling seed (default 0)")
    p.add_argument("--optimizer", choices=("sdlm", "sgd"),
                   help="sdlm: the paper's stochastic diagonal Levenberg-Marquardt (default); sgd: plain SGD")
    p.add_argument("--loss", choices=("map", "mse", "ce"),
                   help="map: the paper's MAP criterion (eq. 9); mse: E = y_label (eq. 8); ce: "
                   "cross-entropy, for --output softmax (default: map, or ce with --output softmax)")
    p.add_argument("--j", type=float, help=f"the MAP criterion's constant j, 0 to 50 (default {DEFAULTS.j})")
    p.add_argument("--batch-size", type=int,
                   help="1 = online (default; required for sdlm); >1 = mini-batch SGD over both cores")
    p.add_argument("--lr", type=float, help=f"SGD learning rate, up to 1 (default {DEFAULTS.lr}); "
                   "an error with sdlm, which follows the paper's schedule")
    p.add_argument("--mu", type=float, help=f"SDLM damping mu in eta = epsilon / (mu + h) (default "
                   f"{DEFAULTS.mu:g}, the paper's printed {PAPER_MU:g})")
    p.add_argument("--train-size", type=int, help="train on the first N images only (default: all 60,000)")
    p.add_argument("--distortions", type=int, metavar="N",
                   help="add N randomly distorted copies of the training images, made once "
                   "(the paper's distorted run: 540000); passes stay the size of the training set")
    add_variant_arguments(p, DEFAULTS.variant)
    add_sdlm_choice_arguments(p)
    p.set_defaults(**{name: None for name in VARIANT_CHOICES})  # None: not given
    p.add_argument("--dtype", choices=("float32", "float64"), help="floating point type (default float32)")
    p.add_argument("--data-dir",
                   help="MNIST folder (default $LENET5_DATA_DIR or ./data/mnist); downloaded if missing")
    p.add_argument("--out", help="run folder (default: a new runs/<date>-<time>; with --resume, the "
                   "checkpoint's run folder). One run per folder: one holding another run is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run already in --out (its checkpoint and metrics) instead of refusing")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue the run saved in CHECKPOINT with its own settings; --epochs, --lr "
                   "and --mu may change, other settings that differ from it are refused")
    p.add_argument("--threads", type=int,
                   help="Numba threads for evaluation and mini-batches (default: all cores); with "
                   "2 or more each pass is evaluated on a second thread while the next one trains, "
                   "with 1 right after it")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def add_sdlm_choice_arguments(p):
    """The choices the paper leaves open about SDLM (lenet5.training.config)."""
    g = p.add_argument_group(f"SDLM choices the paper leaves open (defaults: the {DEFAULT_RECIPE} recipe)")
    recipes = "; ".join(f"{name}: " + ", ".join(f"{flag(k)} {v}" for k, v in values.items())
                        for name, values in RECIPES.items())
    g.add_argument("--recipe", choices=tuple(RECIPES),
                   help=f"a set of SDLM settings at once ({recipes}); flags given beside it win. "
                   "lush: the printed inputs and mu 0.02 with Lush's initial scale and the step "
                   "schedule of LeCun's own Lush demo; standardised: the printed mu 0.02 and step "
                   "schedule with Lush's initial scale, inputs standardised to variance 1 and the "
                   "Hessian re-estimated every 5,000 samples; damped: the printed init, inputs and "
                   f"schedule with the damping raised to mu 1. Default: {DEFAULT_RECIPE}, the lowest "
                   "mean test error at mu 0.02 (lenet5 experiment recipes)")
    g.add_argument("--init", choices=INIT_SCALES,
                   help=f"initial scale: paper +-2.4/F (as printed); sqrt +-1/sqrt(F) for every "
                   f"parameter; lush weights +-1/sqrt(F), biases 0, S2/S4 coefficients 0.5 "
                   f"(default {DEFAULTS.init})")
    g.add_argument("--subsample", choices=SUBSAMPLES,
                   help="S2/S4's trainable coefficient multiplies the 2x2 block's sum (default) or "
                   "its average: SDLM then steps the average's coefficient (h 16x smaller); the "
                   "network computes the same either way")
    g.add_argument("--gn-seed", choices=tuple(GN_SEEDS),
                   help="d2E/dx6^2 that seeds SDLM's Hessian at the RBF output: 2 (default, the "
                   "squared distance's), 1 (Lush's 1/2 ||x-p||^2), or exact (the MAP criterion's "
                   "own diagonal, log-sum-exp included)")
    g.add_argument("--schedule", choices=tuple(SCHEDULES),
                   help="SDLM's global step epsilon by pass: paper (as printed: 5e-4 for passes 1-2, "
                   "2e-4 for 3-5, 1e-4 for 6-8, 5e-5 for 9-12, 1e-5 after) or lush (LeCun's Lush "
                   f"demo: 1e-4 for passes 1-10, 1e-5 for 11-20, 1e-6 after); default {DEFAULTS.schedule}")
    g.add_argument("--hessian-every", type=int, metavar="N",
                   help=f"also re-estimate SDLM's Hessian every N samples within a pass, N a "
                   f"multiple of {CHUNK}; 0: once before each pass, as printed (default "
                   f"{DEFAULTS.hessian_every})")
    g.add_argument("--hessian-passes", type=int, metavar="N",
                   help="estimate SDLM's Hessian before every N-th pass only, the passes between "
                   "keeping it (with their own epsilon): 1 as printed (default), 10 as LeCun's "
                   "Lush demo does at the start of each 10-pass set")
    g.add_argument("--hessian-samples", type=int, metavar="N",
                   help=f"images each Hessian estimate averages over (default {DEFAULTS.hessian_samples}, "
                   "as printed; Lush's demo: 1000)")


def flag(name):
    return "--" + name.replace("_", "-")


def given_settings(args):
    """The TrainConfig settings given on the command line (a flag left out is None), a
    --recipe's settings included where no flag of their own was given."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig)
             if getattr(args, f.name, None) is not None}
    if getattr(args, "recipe", None):
        given = dict(RECIPES[args.recipe], **given)
    return given


def new_config(given):
    if "output" not in given:  # the architecture's own output (LeNet-1/4: 10 units, softmax)
        given = dict(given, output=default_output(given.get("arch", DEFAULTS.arch)))
    config = TrainConfig(**given)
    if "loss" not in given:  # the criterion that goes with the output layer
        config = replace(config, loss=default_loss(config.variant))
    if config.optimizer != "sdlm" and "hessian_every" not in given:  # (an SDLM setting)
        config = replace(config, hessian_every=0)
    return config


def resumed_config(path, given):
    """(net, state, config) of the checkpoint at `path`, with the changeable settings given;
    a given setting that differs from the checkpoint's otherwise is a Lenet5Error."""
    net, state = LeNet5.load(path, with_state=True)
    if "state.config" not in state:
        raise Lenet5Error(f"{path} holds no training state; it cannot be resumed")
    saved = saved_config(state["state.config"])
    settings = {f.name: saved[f.name] for f in fields(TrainConfig) if f.name in saved}
    conflicts, changes = [], {}
    for name, value in given.items():
        before = settings.get(name, getattr(DEFAULTS, name))
        if value == before:
            continue
        if name in RESUME_CHANGEABLE:
            settings[name] = value
            changes[name] = f"{flag(name)} {value} (was {before})"
        else:
            conflicts.append(f"{flag(name)} {value} (the checkpoint has {before})")
    if conflicts:
        raise Lenet5Error(f"--resume continues {path} with the settings it was trained with; "
                          f"these flags conflict with them: {', '.join(conflicts)}. Drop them, or "
                          "start a new run without --resume")
    config = TrainConfig(**settings)
    done = int(state.get("state.epoch", 1)) - 1  # passes finished (the last may await its evaluation)
    if config.epochs <= done:
        ask = f"--epochs {config.epochs} asks for" if "epochs" in given else "it was set to run"
        raise Lenet5Error(f"{path} has finished {done} passes and {ask} {config.epochs}: nothing to "
                          f"do; give --epochs N with N > {done} to train further")
    if changes:
        steps = " (a new step size applies from the next pass)" if set(changes) - {"epochs"} else ""
        print("resuming with " + ", ".join(changes.values()) + steps)
    return net, state, config


def check_used(config, given):
    """A given flag the configuration does not use is an error, not silently ignored."""
    for name, (setting, value, what) in ONLY_WITH.items():
        if name in given and getattr(config, setting) != value:
            raise Lenet5Error(f"{flag(name)} is {what}; it does nothing with {flag(setting)} "
                              f"{getattr(config, setting)}")


def run_folder(args):
    """The run folder asked for (checked now, before any time is spent), or None for a new
    one under runs/: the default, and for a resumed checkpoint that is not a run folder's
    (e.g. the reference shipped inside the package, which is never written to)."""
    if args.out:
        return check_writable(args.out)
    if args.resume and Path(args.resume).name == "checkpoint.npz" and not inside_package(args.resume):
        return check_writable(Path(args.resume).parent)
    check_writable(RUNS_ROOT)
    return None


def run(args):
    if args.threads is not None:
        if not 1 <= args.threads <= numba.config.NUMBA_NUM_THREADS:
            raise Lenet5Error(f"--threads must be between 1 and {numba.config.NUMBA_NUM_THREADS}")
        numba.set_num_threads(args.threads)
    given = given_settings(args)
    net = state = None
    if args.resume:
        net, state, config = resumed_config(args.resume, given)
    else:
        config = new_config(given)
    config.check()
    check_used(config, given)
    out = run_folder(args)
    print(format_audit(audit_rows(config.variant), config.variant))
    data = load_data(args.data_dir)
    trainer = Trainer(config, data, out or RUNS_ROOT, net=net, state=state, progress=not args.quiet)
    if out is None:  # claimed only now that everything else checked out
        trainer.out_dir = new_run_dir(RUNS_ROOT)
        if args.resume:
            print(f"resuming {args.resume} in a new run folder, {trainer.out_dir}")
    trainer.check_folder(args.overwrite)
    print(f"training {config.optimizer}/{config.loss}{sdlm_settings(config)} for {config.epochs} epochs, seed "
          f"{config.seed}, {len(trainer.train_x):,} images, {config.dtype}; run folder {trainer.out_dir}")
    try:
        from ..training.warmup import compile_kernels

        compile_kernels(config, data)
        started = time.perf_counter()
        history = trainer.run(overwrite=args.overwrite)
    except Interrupted as e:
        print(f"lenet5: {e}", file=sys.stderr)
        checkpoint = trainer.checkpoint_path if trainer.saved else args.resume
        if checkpoint:
            print(f"resume with: {resume_command(checkpoint, trainer.out_dir, args)}", file=sys.stderr)
        else:
            print("nothing to resume: no pass was saved", file=sys.stderr)
        return e.exit_code
    last = history[-1]
    print(f"done in {time.perf_counter() - started:.1f}s: test error {last['test_error_pct']:.2f}% "
          f"after {last['epoch']} epochs; checkpoint {trainer.checkpoint_path}")
    return 0


def sdlm_settings(config):
    """' (recipe NAME: ...)' naming the recipe whose settings the run has, or its own settings."""
    if config.optimizer != "sdlm":
        return ""
    names = list(RECIPES[DEFAULT_RECIPE])  # then the SDLM settings no recipe sets, when changed
    names += [k for k in ("hessian_passes", "hessian_samples") if getattr(config, k) != getattr(DEFAULTS, k)]
    own = ", ".join(f"{flag(k)} {getattr(config, k)}" for k in names)
    for name, values in RECIPES.items():
        if all(getattr(config, k) == v for k, v in values.items()):
            return f" (recipe {name}: {own})"
    return f" ({own})"


def resume_command(checkpoint, folder, args):
    """The whole command that continues the run into `folder`, data folder included."""
    from ..data.mnist import default_data_dir

    parts = ["lenet5", "train", "--resume", str(checkpoint), "--data-dir",
             str(args.data_dir or default_data_dir())]
    if Path(checkpoint).parent != Path(folder):
        parts += ["--out", str(folder)]
    if args.threads:
        parts += ["--threads", str(args.threads)]
    if args.quiet:
        parts.append("--quiet")
    return shlex.join(parts)


def load_data(data_dir):
    from ..data.mnist import load_mnist

    return load_mnist("train", data_dir=data_dir), load_mnist("test", data_dir=data_dir)
