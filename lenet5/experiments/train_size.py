"""`train-size`: the paper's Fig. 6 -- test error by pass for training sets of 15,000,
30,000 and 60,000 images (paper protocol, first N images of the training set)."""
import numpy as np

from ..core.paper import PAPER_RESULTS
from .jobs import default_recipe, default_recipe_note, per_pass
from .pool import Job

FLAGS = ("seed", "epochs")  # the options beyond the common ones it takes (runner.check)

SIZES = (15_000, 30_000, 60_000)
TINY_SIZES = (100, 200, 300)


def jobs(opts):
    seed = opts.seed_list((0,))[0]
    sizes = TINY_SIZES if opts.tiny else SIZES
    return [Job(f"n{n}", "lenet5.experiments.jobs:train_run",
                dict(config=default_recipe(seed=seed, epochs=opts.passes(), train_size=n),
                     runs=str(opts.runs / "train-size"), data_dir=opts.data_dir, tiny=False))
            for n in sizes]


def report(results, opts):
    train, test = per_pass(results, "train_error_pct"), per_pass(results, "test_error_pct")
    sizes = [r["config"]["train_size"] for r in results.values()]
    lines = ["| training set | training error % (last pass) | test error % (last pass) "
             "| best test error % (pass) | paper |",
             "|---:|---:|---:|---:|---|"]
    rows = []
    for i, n in enumerate(sizes):
        best = int(np.argmin(test[i]))
        paper = f"{PAPER_RESULTS['test_error_pct']}%" if n == 60_000 else "Fig. 6 curve"
        lines.append(f"| {n:,} | {train[i, -1]:.2f} | {test[i, -1]:.2f} | {test[i, best]:.2f} ({best + 1}) | {paper} |")
        rows += [{"train_size": n, "pass": p + 1, "train_error_pct": float(train[i, p]),
                  "test_error_pct": float(test[i, p])} for p in range(train.shape[1])]
    headline = ", ".join(f"{n // 1000 if n >= 1000 else n}{'k' if n >= 1000 else ''}: "
                         f"{test[i, -1]:.2f}%" for i, n in enumerate(sizes)) + " test error"
    notes = ["The paper's Fig. 6 shows test error falling as the training set grows; its only "
             "printed figure is 0.95% for 60,000."]
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes + [default_recipe_note()],
            "data": {"sizes": sizes, "train_error_pct": train.tolist(), "test_error_pct": test.tolist()}}


def figures(results, opts, folder, plt):
    from .plots import error_curves

    test = per_pass(results, "test_error_pct")
    x = np.arange(1, test.shape[1] + 1)
    series = {f"test, {r['config']['train_size']:,} training images": (x, test[i])
              for i, r in enumerate(results.values())}
    error_curves(plt, folder / "train_size.png", series, "Test error by pass and training-set size (cf. Fig. 6)")
    return {"train_size.png": "Test error by pass for each training-set size, cf. the paper's Fig. 6."}
