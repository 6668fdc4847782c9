"""The paper-era experiments, one module each; `lenet5 experiment NAME` runs one.

Each module defines `jobs(opts) -> [Job]` (independent runs, executed in parallel processes)
and `report(results, opts) -> dict` (our figures beside the paper's); optionally
`figures(results, opts, folder, plt) -> {file: caption}` (PNG, needs matplotlib); and
`FLAGS`, the options only some experiments use that it takes (runner.FLAG_NAMES: "seeds",
"seed" for one seed, "epochs", "checkpoint", "rates_only", "only"): any other is refused.

Shared by all of them: runner (the options, and one experiment from jobs to report), pool
(running the jobs: saved results, --reuse, the local process pool), report (results/NAME/
and the results index), jobs (a training run as a job, and summaries of its results), plots.
"""
import importlib

# name on the command line -> module
MODULES = {
    "curves": "curves",
    "distortions": "distortions",
    "train-size": "train_size",
    "connections": "connections",
    "ablations": "ablations",
    "baselines": "baselines",
    "rejection": "rejection",
    "fig9": "fig9",
    "sdlm": "sdlm",
    "recipes": "recipes",
    "lush": "lush",
}
NAMES = tuple(MODULES)


def module(name):
    return importlib.import_module(f"{__name__}.{MODULES[name]}")
