"""`curves`: the paper's Fig. 5 -- training and test error after each of 20 passes of the
paper protocol (SDLM, MAP, online, no distortions), over several seeds."""
import numpy as np

from ..core.paper import PAPER_RESULTS
from .jobs import default_recipe, default_recipe_note, mean_range, mnist, per_pass, spread
from .pool import Job

FLAGS = ("seeds", "epochs")  # the options beyond the common ones it takes (runner.check)

SEEDS = (0, 1, 2)
MAX_GRID = 120  # misclassified digits drawn at most (the paper's Fig. 8 shows 82)


def jobs(opts):
    return [Job(f"seed{s}", "lenet5.experiments.jobs:train_run",
                dict(config=default_recipe(seed=s, epochs=opts.passes()), runs=str(opts.runs / "curves"),
                     data_dir=opts.data_dir, tiny=opts.tiny, keep_outputs=True))
            for s in opts.seed_list(SEEDS)]


def report(results, opts):
    train, test = per_pass(results, "train_error_pct"), per_pass(results, "test_error_pct")
    passes = train.shape[1]
    seeds = len(results)
    lines = ["| pass | training error % | test error % | paper |", "|---:|---:|---:|---|"]
    paper = {19: f"train {PAPER_RESULTS['train_error_pct_pass19']}%",
             20: f"test {PAPER_RESULTS['test_error_pct']}%"}
    for p in range(passes):
        lines.append(f"| {p + 1} | {mean_range(train[:, p])} | {mean_range(test[:, p])} | "
                     f"{paper.get(p + 1, '')} |")
    final_mean, final_lo, final_hi = spread(test[:, -1])
    rows = [{"seed": key, "pass": p + 1, "train_error_pct": float(train[i, p]),
             "test_error_pct": float(test[i, p])}
            for i, key in enumerate(results) for p in range(passes)]
    seconds = [r["seconds"] for r in results.values()]
    headline = (f"test error after {passes} passes {final_mean:.2f}% (range {final_lo:.2f}–"
                f"{final_hi:.2f}%, {seeds} seed(s)); paper {PAPER_RESULTS['test_error_pct']}%")
    notes = [f"Mean (min–max) over seeds {', '.join(results)}; one run takes "
             f"{np.mean(seconds):.0f} s of training on one core.",
             overtraining_note(test.mean(0))]
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes + [default_recipe_note()],
            "data": {"train_error_pct": train.tolist(), "test_error_pct": test.tolist(),
                     "seeds": list(results)}}


def overtraining_note(test):
    """Does the mean test error rise again in the second half of the run (overtraining)?"""
    if len(test) < 4:
        return "Too few passes to judge the curve's shape."
    half = len(test) // 2
    best = int(np.argmin(test[half:])) + half
    rise = test[-1] - test[best]
    return (f"Mean test error over passes {half + 1}-{len(test)}: {test[half:].min():.2f}-"
            f"{test[half:].max():.2f}%; the last pass is {rise:.2f} points above the best of them "
            f"(pass {best + 1}): " + ("no overtraining, as in the paper's Fig. 5." if rise <= 0.05
                                      else "the test error rises again (overtraining)."))


def figures(results, opts, folder, plt):
    from .plots import digit_grid, error_curves

    train, test = per_pass(results, "train_error_pct"), per_pass(results, "test_error_pct")
    x = np.arange(1, train.shape[1] + 1)
    error_curves(plt, folder / "curves.png",
                 {"training error (mean)": (x, train.mean(0)), "test error (mean)": (x, test.mean(0))},
                 "LeNet-5, paper protocol (cf. Fig. 5)",
                 paper=[(20, PAPER_RESULTS["test_error_pct"], "paper: test 0.95%"),
                        (19, PAPER_RESULTS["train_error_pct_pass19"], "paper: train 0.35%")])
    first = next(iter(results.values()))
    images = mnist(opts.data_dir)[1][0]
    wrong = first["misclassified"][:MAX_GRID]
    shown = "" if len(first["misclassified"]) <= MAX_GRID else f"the first {MAX_GRID} of "
    digit_grid(plt, folder / "misclassified.png", images[wrong],
               [f"{t}->{p}" for t, p in zip(first["true"], first["predicted"])],
               title=f"{shown}{len(first['misclassified'])} misclassified test digits, "
                     f"{next(iter(results))} (true->predicted; cf. Fig. 8)")
    return {"curves.png": "Training and test error by pass (mean over seeds), cf. the paper's Fig. 5.",
            "misclassified.png": "Misclassified test digits, true -> predicted, cf. the paper's Fig. 8."}
