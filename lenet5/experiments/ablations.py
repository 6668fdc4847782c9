"""`ablations`: change one component at a time from the exact configuration (RBF output +
MAP criterion, SDLM, trainable subsampling, scaled tanh) and report the test error of each."""
from ..model import MAP_J
from .jobs import per_pass, unsupported
from .runner import Job

# key -> (what changes, TrainConfig overrides); the first row is the exact configuration
VARIANTS = {
    "exact": ("nothing: RBF + MAP, SDLM, trainable subsampling, scaled tanh", {}),
    "output=softmax": ("RBF + MAP -> linear output + softmax + cross-entropy", {"output": "softmax"}),
    "optimizer=sgd": ("SDLM -> plain online SGD (lr 1e-3)", {"optimizer": "sgd"}),
    "pooling=average": ("trainable subsampling -> fixed 2x2 average (coefficient 1/4, bias 0)",
                        {"pooling": "average"}),
    "pooling=max": ("trainable subsampling -> 2x2 max pooling", {"pooling": "max"}),
    "activation=sigmoid": ("scaled tanh -> logistic sigmoid", {"activation": "sigmoid"}),
    "j=0.1": (f"MAP constant j = 0.1 (exact: {MAP_J})", {"j": 0.1}),
    "j=3": (f"MAP constant j = 3 (exact: {MAP_J})", {"j": 3.0}),
    "j=10": (f"MAP constant j = 10 (exact: {MAP_J})", {"j": 10.0}),
}


def not_built():
    """Variants the trainer cannot run yet: key -> why."""
    return {key: unsupported(overrides) for key, (_, overrides) in VARIANTS.items()
            if unsupported(overrides)}


def jobs(opts):
    seed = opts.seed_list((0,))[0]
    skip = not_built()
    for key, why in skip.items():
        opts.log(f"[{key}] not run: {why}")
    return [Job(key, "lenet5.experiments.jobs:train_run",
                dict(config=dict(overrides, seed=seed, epochs=opts.passes()),
                     runs=str(opts.runs / "ablations"), data_dir=opts.data_dir, tiny=opts.tiny))
            for key, (_, overrides) in VARIANTS.items() if key not in skip]


def report(results, opts):
    test, train = per_pass(results, "test_error_pct"), per_pass(results, "train_error_pct")
    exact = test[0, -1]
    lines = ["| change | test error % | vs exact (points) | training error % | best test error % |",
             "|---|---:|---:|---:|---:|"]
    rows = []
    for i, key in enumerate(results):
        what = VARIANTS[key][0]
        lines.append(f"| {what} | {test[i, -1]:.2f} | {test[i, -1] - exact:+.2f} | "
                     f"{train[i, -1]:.2f} | {test[i].min():.2f} |")
        rows.append({"variant": key, "change": what, "test_error_pct": float(test[i, -1]),
                     "train_error_pct": float(train[i, -1]), "best_test_error_pct": float(test[i].min()),
                     "passes": int(test.shape[1])})
    missing = not_built()
    for key, why in missing.items():
        lines.append(f"| {VARIANTS[key][0]} | not run: {why} | | | |")
        rows.append({"variant": key, "change": VARIANTS[key][0], "test_error_pct": None,
                     "train_error_pct": None, "best_test_error_pct": None, "passes": 0})
    done = [r for r in rows if r["test_error_pct"] is not None and r["variant"] != "exact"]
    worst = max(done, key=lambda r: r["test_error_pct"])
    headline = (f"exact {exact:.2f}%; largest loss from one change: {worst['variant']} "
                f"({worst['test_error_pct']:.2f}%)" + (f"; {len(missing)} of {len(VARIANTS) - 1} "
                                                      "changes not run yet" if missing else ""))
    notes = [f"One seed ({opts.seed_list((0,))[0]}), {test.shape[1]} pass(es) each; differences "
             "under about 0.1-0.15 points are within seed-to-seed spread (see curves)."]
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes,
            "data": {"test_error_pct": test.tolist()}}
