"""`distortions`: the paper's distorted-data run -- the 60,000 originals plus 540,000
randomly distorted copies (affine: translation, scaling, squeezing, horizontal shearing),
made once before training; the same 20 passes of 60,000 samples (each sample seen about
twice). Paper: 0.8% test error (82 misclassified patterns)."""
import numpy as np

from ..core.paper import PAPER_RESULTS
from ..files import save_figure_atomic
from .jobs import default_recipe, default_recipe_note, mean_range, mnist, per_pass, spread
from .pool import Job
from .runner import TINY_TRAIN_SIZE

FLAGS = ("seeds", "epochs")  # the options beyond the common ones it takes (runner.check)

SEEDS = (0, 1, 2)
COPIES_PER_ORIGINAL = PAPER_RESULTS["train_samples_distorted"] // 60_000  # 9


def jobs(opts):
    originals = TINY_TRAIN_SIZE if opts.tiny else 60_000
    return [Job(f"seed{s}", "lenet5.experiments.jobs:train_run",
                dict(config=default_recipe(seed=s, epochs=opts.passes(),
                                           distortions=COPIES_PER_ORIGINAL * originals),
                     runs=str(opts.runs / "distortions"), data_dir=opts.data_dir, tiny=opts.tiny,
                     keep_outputs=True))
            for s in opts.seed_list(SEEDS)]


def report(results, opts):
    train, test = per_pass(results, "train_error_pct"), per_pass(results, "test_error_pct")
    errors = [len(r["misclassified"]) for r in results.values()]
    mean, lo, hi = spread(test[:, -1])
    paper_pct, paper_n = PAPER_RESULTS["test_error_distorted_pct"], PAPER_RESULTS["test_errors_distorted"]
    lines = ["| | test error % | misclassified test patterns | training error % (originals) |",
             "|---|---:|---:|---:|",
             f"| paper | {paper_pct} | {paper_n} | — |",
             f"| ours, mean (range) over {len(results)} seed(s) | {mean_range(test[:, -1])} | "
             f"{mean_range(errors, 1)} | {mean_range(train[:, -1])} |"]
    lines += [f"| ours, {key} | {test[i, -1]:.2f} | {errors[i]} | {train[i, -1]:.2f} |"
              for i, key in enumerate(results)]
    from ..data.distort import RANGES_DOC

    rows = [{"seed": key, "pass": p + 1, "train_error_pct": float(train[i, p]),
             "test_error_pct": float(test[i, p])} for i, key in enumerate(results)
            for p in range(train.shape[1])]
    first = next(iter(results.values()))
    notes = [f"Distortions (our choice; the paper gives no ranges): {RANGES_DOC}",
             f"{first['config']['distortions']:,} distorted copies of "
             f"{first['config']['distortions'] // COPIES_PER_ORIGINAL:,} originals; each pass "
             "draws as many samples as there are originals from a stream of shuffles of the pool.",
             "Training error is measured on the undistorted originals."]
    headline = (f"test error {mean:.2f}% (range {lo:.2f}–{hi:.2f}%, {len(results)} seed(s)) with "
                f"distortions; paper {paper_pct}%")
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes + [default_recipe_note()],
            "data": {"test_error_pct": test.tolist(), "train_error_pct": train.tolist(),
                     "errors": errors}}


def figures(results, opts, folder, plt):
    from ..data.distort import example_grid
    from .plots import error_curves

    test = per_pass(results, "test_error_pct")
    x = np.arange(1, test.shape[1] + 1)
    error_curves(plt, folder / "curves.png", {"test error (mean)": (x, test.mean(0))},
                 "Test error by pass, distorted training set",
                 paper=[(20, PAPER_RESULTS["test_error_distorted_pct"], "paper 0.8%")])
    images = mnist(opts.data_dir)[0][0]
    grid = example_grid(images[:8], np.random.default_rng(0), n=8)
    fig, ax = plt.subplots(figsize=(8, 8 * grid.shape[0] / grid.shape[1]))
    ax.imshow(grid, cmap="gray_r", vmin=-0.1, vmax=1.175)
    ax.axis("off")
    fig.tight_layout()
    save_figure_atomic(fig, folder / "examples.png")
    return {"curves.png": "Test error by pass with the distorted training set.",
            "examples.png": "Training digits (top row) and random distortions of them (rows below)."}
