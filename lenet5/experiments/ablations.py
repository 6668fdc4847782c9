"""`ablations`: change one component at a time from the exact configuration (RBF output +
MAP criterion, SDLM, trainable subsampling, scaled tanh, Table I), plus the framework
tutorials' "LeNet-5" (all of them at once), over several seeds: the mean and range of each
row, and its difference to the exact configuration beside the seed spread."""
import numpy as np

from ..core.model import MAP_J
from ..files import save_figure_atomic
from .jobs import default_recipe, default_recipe_note, mean_range, per_pass
from .pool import Job

FLAGS = ("seeds", "epochs")  # the options beyond the common ones it takes (runner.check)

SEEDS = (0, 1, 2)
# key -> (what changes, TrainConfig overrides); the first row is the exact configuration
VARIANTS = {
    "exact": ("nothing: RBF + MAP, SDLM, trainable subsampling, scaled tanh", {}),
    "output=softmax": ("RBF + MAP -> 10 linear units + softmax + cross-entropy",
                       {"output": "softmax", "loss": "ce"}),
    "optimizer=sgd": ("SDLM -> plain online SGD (lr 1e-3)", {"optimizer": "sgd"}),
    "pooling=average": ("trainable subsampling -> fixed 2x2 average (coefficient 1/4, bias 0)",
                        {"pooling": "average"}),
    "pooling=max": ("trainable subsampling -> 2x2 max pooling (no squashing)", {"pooling": "max"}),
    "activation=sigmoid": ("scaled tanh -> logistic sigmoid", {"activation": "sigmoid"}),
    "j=0.1": (f"MAP constant j = 0.1 (exact: {MAP_J})", {"j": 0.1}),
    "j=3": (f"MAP constant j = 3 (exact: {MAP_J})", {"j": 3.0}),
    "j=10": (f"MAP constant j = 10 (exact: {MAP_J})", {"j": 10.0}),
    "tutorial": ("all of: ReLU, max pooling, fully connected C3, softmax + cross-entropy, plain "
                 "online SGD (lr 1e-2): the framework tutorials' LeNet-5 (with the paper's init)",
                 {"activation": "relu", "pooling": "max", "c3": "full", "output": "softmax",
                  "loss": "ce", "optimizer": "sgd", "lr": 1e-2, "init": "paper"}),
}


def jobs(opts):
    return [Job(f"{key}/seed{seed}", "lenet5.experiments.jobs:train_run",
                dict(config=default_recipe(**overrides, seed=seed, epochs=opts.passes()),
                     runs=str(opts.runs / "ablations"), data_dir=opts.data_dir, tiny=opts.tiny))
            for key, (_, overrides) in VARIANTS.items() for seed in opts.seed_list(SEEDS)]


def by_variant(results, column):
    """{variant key: array (seeds,) of the last pass's `column`}, in VARIANTS order."""
    last = per_pass(results, column)[:, -1]
    out = {}
    for (key, _), value in zip((k.split("/") for k in results), last):
        out.setdefault(key, []).append(value)
    return {k: np.array(out[k]) for k in VARIANTS if k in out}


def report(results, opts):
    test, train = by_variant(results, "test_error_pct"), by_variant(results, "train_error_pct")
    exact = test["exact"]
    spread = float(exact.max() - exact.min())
    seeds = len(exact)
    lines = ["| change | test error %, mean (range) | vs exact, points | training error % | |",
             "|---|---:|---:|---:|---|"]
    rows = []
    for key, values in test.items():
        diff = float(values.mean() - exact.mean())
        inside = abs(diff) <= spread
        verdict = "" if key == "exact" else ("within seed spread" if inside else "outside seed spread")
        lines.append(f"| {VARIANTS[key][0]} | {mean_range(values)} | {diff:+.2f} (spread {spread:.2f}) | "
                     f"{mean_range(train[key])} | {verdict} |")
        rows.append({"variant": key, "change": VARIANTS[key][0], "seeds": len(values),
                     "test_error_pct_mean": float(values.mean()), "test_error_pct_min": float(values.min()),
                     "test_error_pct_max": float(values.max()), "diff_points": diff,
                     "within_seed_spread": inside, "train_error_pct_mean": float(train[key].mean())})
    worst = max(rows[1:], key=lambda r: r["test_error_pct_mean"])
    passes = per_pass(results, "test_error_pct").shape[1]
    headline = (f"exact {exact.mean():.2f}% (mean of {seeds}); largest loss: {worst['variant']} "
                f"{worst['test_error_pct_mean']:.2f}% ({worst['diff_points']:+.2f} points)")
    notes = [f"{seeds} seed(s) per row ({', '.join(map(str, opts.seed_list(SEEDS)))}), {passes} pass(es) "
             "each. 'Spread' is the range of the exact configuration over its seeds: a row whose "
             "mean differs by less is not distinguishable from it with these runs.",
             "Max pooling takes the block's maximum with no coefficient, bias or squashing (the "
             "frameworks' layer); the softmax output is 10 linear units on F6, trained with "
             "cross-entropy, with SDLM's Gauss-Newton term p(1-p) at the logits."]
    stuck = [r for r in rows if r["test_error_pct_mean"] > 50]
    if stuck:
        notes.append("Did not train (error near chance after every pass): "
                     + ", ".join(r["variant"] for r in stuck) + ". With the logistic sigmoid, F6's "
                     "outputs lie in (0, 1) while the RBF prototypes are +-1, and with the paper's "
                     "small initial weights and step sizes the network stays on its initial plateau "
                     "(loss ~80, the distance of a mid-range F6 output to every prototype).")
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes + [default_recipe_note()],
            "figures": {}, "data": {k: v.tolist() for k, v in test.items()}}


def figures(results, opts, folder, plt):
    test = by_variant(results, "test_error_pct")
    keys = list(test)[::-1]
    means = np.array([test[k].mean() for k in keys])
    lo = np.maximum(means - np.array([test[k].min() for k in keys]), 0)  # (rounding: never < 0)
    hi = np.maximum(np.array([test[k].max() for k in keys]) - means, 0)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(keys) + 1.2))
    colors = ["#c44e52" if k == "tutorial" else "#4c72b0" if k != "exact" else "#55a868" for k in keys]
    trained = [test[k].max() for k in keys if test[k].mean() <= 50] or [means.max()]
    right = 1.25 * max(trained)  # rows that did not train would flatten the rest: cut, labelled
    off = means > right
    shown = np.where(off, right, means)
    ax.barh(range(len(keys)), shown, xerr=[np.where(off, 0, lo), np.where(off, 0, hi)], color=colors,
            capsize=3, hatch=None)
    for i in np.flatnonzero(off):
        ax.text(right * 0.98, i, f"{means[i]:.1f}% (did not train) →", ha="right", va="center",
                color="white", fontsize=8, fontweight="bold")
    ax.set_xlim(0, right)
    exact = test["exact"]
    ax.axvspan(exact.min(), exact.max(), color="#55a868", alpha=0.15, label="exact: seed range")
    ax.set_yticks(range(len(keys)), keys)
    ax.set_xlabel("test error after the last pass (%), mean and range over seeds")
    ax.set_title("LeNet-5 ablations: one change at a time")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    save_figure_atomic(fig, folder / "ablations.png")
    return {"ablations.png": "Test error of each row, mean and range over seeds; green band: the "
            "exact configuration's range."}
