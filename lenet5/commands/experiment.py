"""`lenet5 experiment NAME|all`: rerun one of the paper-era experiments into results/NAME/."""
import os
import signal
import sys
from pathlib import Path

from ..errors import Lenet5Error


def register(sub):
    from ..experiments import NAMES

    p = sub.add_parser(
        "experiment", help="reproduce a paper-era experiment into results/NAME/",
        description="Run one of the paper's experiments with the shared network and trainer, "
        "and write results/NAME/ (results.json, results.csv, README.md with the paper's figures "
        "beside ours, PNG figures when matplotlib is installed). Experiments: " + ", ".join(NAMES) + ".")
    p.add_argument("name", metavar="NAME", choices=(*NAMES, "all"), help=" | ".join(NAMES) + " | all")
    p.add_argument("--tiny", action="store_true",
                   help="a few hundred samples, one pass: checks every code path in seconds; "
                   "writes under runs/tiny/ unless --results/--runs are given")
    p.add_argument("--seeds", help="comma-separated seeds (default: each experiment's own: 0-4 "
                   "for recipes and lush; 0,1,2 for curves, distortions, ablations and sdlm; 0 "
                   "elsewhere)")
    p.add_argument("--epochs", type=int, help="passes per training run (default: 20, the paper's; "
                   "baselines 10)")
    p.add_argument("--processes", type=int, default=2,
                   help="independent runs in parallel, one process each (default 2)")
    p.add_argument("--data-dir", help="MNIST folder (default $LENET5_DATA_DIR or ./data/mnist)")
    p.add_argument("--results", help="results root (default ./results; with --tiny ./runs/tiny/results)")
    p.add_argument("--runs", help="checkpoints and per-run metrics (default ./runs/experiments; "
                   "with --tiny ./runs/tiny/experiments)")
    p.add_argument("--reuse", action="store_true",
                   help="reuse runs already finished with the same settings (saved under --runs) "
                   "instead of training them again, and resume interrupted ones from their "
                   "checkpoints, e.g. after Ctrl-C or a crash, or to redraw a report")
    p.add_argument("--overwrite", action="store_true",
                   help="train again from scratch over the runs an earlier run of the experiment "
                   "saved under --runs (without --reuse or --overwrite, saved runs are never "
                   "trained over; --tiny runs are)")
    p.add_argument("--rates-only", action="store_true",
                   help="sdlm: only the pass-1 rate screen of every interpretation (seconds each), no "
                   "training runs")
    p.add_argument("--only", help="fig9: train only these comma-separated row groups (classical, svm, "
                   "rs-svm, v-svm, deslant, pairwise, tangent, mlp-500-150, lenet4-features, mlp-dist, mlp-paper, "
                   "lenet1, lenet4, boosted) and keep the other rows from the earlier results/fig9/results.json")
    p.add_argument("--scheduler",
                   help="run the jobs on the Dask cluster of this scheduler, e.g. tcp://HOST:8786 "
                   "(default $LENET5_SCHEDULER; needs the [cluster] extra); files come back here")
    p.add_argument("--checkpoint", help="rejection: the checkpoint to analyse (default: the shipped one)")
    p.set_defaults(func=run)


def options(args):
    from ..experiments.runner import Options

    try:
        seeds = tuple(int(s) for s in args.seeds.split(",")) if args.seeds else ()
    except ValueError:
        raise Lenet5Error(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    if (args.epochs is not None and args.epochs < 1) or args.processes < 1:
        raise Lenet5Error("--epochs and --processes must be at least 1")
    return Options(tiny=args.tiny, seeds=seeds, epochs=args.epochs, processes=args.processes,
                   data_dir=args.data_dir, results=args.results and Path(args.results),
                   runs=args.runs and Path(args.runs), checkpoint=args.checkpoint, reuse=args.reuse,
                   overwrite=args.overwrite,
                   scheduler=args.scheduler or os.environ.get("LENET5_SCHEDULER") or None,
                   rates_only=args.rates_only, only=tuple(args.only.split(",")) if args.only else ())


def run(args):
    """Ctrl-C or SIGTERM stops the whole experiment (exit 130): the worker processes save
    their runs in flight and end; finished runs are kept for --reuse."""
    from ..experiments import NAMES
    from ..experiments.runner import check, run_experiment, suited
    from ..training.trainer import Interrupted

    opts = options(args)
    if args.name == "all":  # each experiment gets the flags it uses
        runs = [(name, suited(name, opts)) for name in NAMES]
    else:
        runs = [(args.name, opts)]
    for name, its_opts in runs:  # every experiment's options checked before the first one trains
        check(name, its_opts)
    previous = signal.signal(signal.SIGTERM, _sigterm_as_ctrl_c)
    try:
        for name, its_opts in runs:
            run_experiment(name, its_opts)
    except Interrupted as e:
        print(f"lenet5: {e}", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _sigterm_as_ctrl_c(signum, frame):
    """SIGTERM (`kill`, a batch system's time limit) does what Ctrl-C does: the SIGINT
    handler in force runs (the trainer's, which saves at the end of the chunk, or Python's,
    whose KeyboardInterrupt makes the process pool pass the stop on to every worker).
    Without this the parent would die at once and leave its workers training, orphaned.
    Called even when SIGINT is ignored (a job started in the background by a shell)."""
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signal.SIGINT, frame)
    else:
        raise KeyboardInterrupt
