"""`sdlm`: SDLM at the paper's printed mu = 0.02, one interpretation at a time.

Section III: with mu = 0.02 "the resulting effective learning rates during the first pass
varied between approximately 7e-5 and 0.016 over the set of parameters" (eta_k =
epsilon / (mu + h_kk), epsilon = 5e-4 in pass 1). For each interpretation of what the paper leaves
open (lenet5.training.config: --init, --subsample, --gn-seed, --hessian-every, --inputs) this screens the pass-1
rates per layer -- the trainer's own pass-1 Hessian sample, computed in float64 -- and, unless
--rates-only, trains 20 passes at mu = 0.02 over 3 seeds with the paper's epsilon schedule.
"""
import json
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..files import save_figure_atomic
from ..training.config import PAPER_MU
from .jobs import mean_range, mnist, train_run
from .pool import Job
from .runner import TINY_TRAIN_SIZE

FLAGS = ("seeds", "epochs", "rates_only")  # the options beyond the common ones it takes (runner.check)

PAPER_RANGE = (7e-5, 0.016)  # Section III, the pass-1 effective rates at mu = 0.02
WINDOW = 2.0  # the selection rule: the range's ends within a factor 2 of the paper's
CAP_MARGIN = 1.1  # "at the cap": eta >= (epsilon / mu) / 1.1, i.e. h < mu / 10
SEEDS = (0, 1, 2)
RATE_SEED = 0
LAYERS = ("C1", "S2", "C3", "S4", "C5", "F6")
BINS = np.logspace(-6, -1, 51)  # log-spaced rate bins for the figure
# every interpretation is the paper as printed (these settings, whatever TrainConfig's defaults) with overrides
AS_PRINTED = {"mu": PAPER_MU, "init": "paper", "inputs": "paper", "subsample": "sum", "gn_seed": "2",
              "hessian_every": 0, "schedule": "paper"}
# key -> (what it reads, overrides of AS_PRINTED); the first is the paper as printed
INTERPRETATIONS = {
    "paper": ("as printed: init +-2.4/F, subsampling sum, GN seed 2, h before each pass", {}),
    "gn=1": ("GN seed 1 (Lush's 1/2 ||x-p||^2)", {"gn_seed": "1"}),
    "average": ("subsampling read as the block's average", {"subsample": "average"}),
    "sqrt": ("init +-1/sqrt(F) for every parameter", {"init": "sqrt"}),
    "sqrt,gn=1": ("init sqrt, GN seed 1", {"init": "sqrt", "gn_seed": "1"}),
    "sqrt,average": ("init sqrt, subsampling average", {"init": "sqrt", "subsample": "average"}),
    "sqrt,gn=exact": ("init sqrt, exact MAP GN seed", {"init": "sqrt", "gn_seed": "exact"}),
    "lush": ("init lush (weights +-1/sqrt(F), biases 0, coefficients 0.5)", {"init": "lush"}),
    "lush,average": ("init lush, subsampling average", {"init": "lush", "subsample": "average"}),
    "lush,gn=exact": ("init lush, exact MAP GN seed", {"init": "lush", "gn_seed": "exact"}),
    "lush,h5000": ("init lush, h re-estimated every 5,000 samples",
                   {"init": "lush", "hessian_every": 5000}),
    "unit": ("inputs standardised to mean 0, variance 1 (the paper's stated intent)", {"inputs": "unit"}),
    "sqrt,unit": ("init sqrt, unit inputs", {"init": "sqrt", "inputs": "unit"}),
    "lush,unit": ("init lush, unit inputs", {"init": "lush", "inputs": "unit"}),
    "lush,unit,h5000": ("init lush, unit inputs, h re-estimated every 5,000 samples",
                        {"init": "lush", "inputs": "unit", "hessian_every": 5000}),
}
# the interpretations trained for 20 passes over SEEDS (every interpretation's rates are screened); the first
# study's runs of the others are in STUDY
TRAINED = ("sqrt,gn=exact", "lush,h5000", "lush,unit", "lush,unit,h5000")
STUDY = "twenty-passes.md"  # the study's 20-pass table, kept beside the generated README
RATE_FIELDS = ("min", "p1", "median", "max", "cap_pct", "above_paper_pct")


def interpretation_config(overrides, seed=RATE_SEED, tiny=False):
    """TrainConfig fields of an interpretation at the paper's mu."""
    config = dict(AS_PRINTED, **overrides, seed=seed)
    if tiny:
        config["train_size"] = TINY_TRAIN_SIZE
    return config


def pass1_rates(config, data):
    """(net, h, eta, free) of an interpretation's untrained network: the pass-1 Hessian diagonal and
    effective rates in the interpretation's parametrisation, from the trainer's own pass-1 Hessian
    sample, in float64; `free` masks the parameters training changes."""
    from ..training.config import TrainConfig
    from ..training.trainer import Trainer

    settings = TrainConfig(**dict(config, dtype="float64"))
    trainer = Trainer(settings, data, Path("unused"), progress=False, log=lambda line: None)
    h, eta = trainer.pass_rates(1)
    return trainer.net, h, eta, ~trainer.net.fixed_mask()


def layer_masks(net, free):
    """{layer: boolean mask over theta} of each layer's free parameters."""
    from ..core.model import LeNet5

    masks = {}
    for name, view in LeNet5.views(np.arange(net.theta.size)).items():
        layer = name.split(".")[0]
        if layer in LAYERS:
            m = masks.setdefault(layer, np.zeros(net.theta.size, bool))
            m[view.reshape(-1)] = True
    return {layer: m & free for layer, m in masks.items()}


def rate_summary(eta, cap):
    """min, 1st percentile, median, max, share at the cap and above the paper's max (%)."""
    return {"min": float(eta.min()), "p1": float(np.percentile(eta, 1)), "median": float(np.median(eta)),
            "max": float(eta.max()), "cap_pct": 100.0 * float(np.mean(eta >= cap / CAP_MARGIN)),
            "above_paper_pct": 100.0 * float(np.mean(eta > PAPER_RANGE[1]))}


def rate_screen(key, config, data_dir=None):
    """Job: the pass-1 rate range of one interpretation, per layer and over all free parameters."""
    from ..training.step_sizes import sdlm_epsilon

    net, h, eta, free = pass1_rates(config, mnist(data_dir))
    cap = sdlm_epsilon(1) / PAPER_MU
    out = {"config": config, "all": rate_summary(eta[free], cap), "layers": {}}
    for layer, mask in layer_masks(net, free).items():
        out["layers"][layer] = dict(rate_summary(eta[mask], cap), h_median=float(np.median(h[mask])),
                                    histogram=np.histogram(eta[mask], BINS)[0].tolist())
    return out


def train_interpretation(key, config, runs, data_dir=None, tiny=False, reuse=False):
    """Job: 20 passes of one interpretation and seed; a diverged run is a result (what it reached)."""
    try:
        return train_run(key, config, runs, data_dir=data_dir, tiny=tiny, reuse=reuse)
    except Lenet5Error as e:
        if "diverged" not in str(e):
            raise
        metrics = Path(runs) / key / "metrics.json"
        history = json.loads(metrics.read_text()) if metrics.exists() else []
        return {"config": config, "history": history, "diverged": str(e), "seconds": 0.0}


def jobs(opts):
    out = [Job(f"rates/{key}", "lenet5.experiments.sdlm:rate_screen",
               dict(config=interpretation_config(overrides, tiny=opts.tiny), data_dir=opts.data_dir))
           for key, (_, overrides) in INTERPRETATIONS.items()]
    if opts.rates_only:
        return out
    return out + [Job(f"train/{key}/seed{seed}", "lenet5.experiments.sdlm:train_interpretation",
                      dict(config=dict(interpretation_config(INTERPRETATIONS[key][1], seed), epochs=opts.passes()),
                           runs=str(opts.runs / "sdlm"), data_dir=opts.data_dir, tiny=opts.tiny))
                  for key in TRAINED for seed in opts.seed_list(SEEDS)]


def within_window(summary):
    low, high = PAPER_RANGE
    return (low / WINDOW <= summary["min"] <= low * WINDOW) and (high / WINDOW <= summary["max"] <= high * WINDOW)


def stability(history, passes):
    """'stable', or why not: diverged, or the mean training loss rose from one pass to the next."""
    losses = [row["train_loss"] for row in history]
    if len(losses) < passes:
        return f"diverged in pass {len(losses) + 1}"
    rises = [i + 2 for i in range(len(losses) - 1) if losses[i + 1] > losses[i]]
    return "stable" if not rises else f"loss rose in pass {rises[0]}"


def report(results, opts):
    rates = {k.split("/", 1)[1]: r for k, r in results.items() if k.startswith("rates/")}
    fmt = "{:.2e}".format
    lines = [f"Pass-1 effective rates at mu = {PAPER_MU} (the paper: {PAPER_RANGE[0]:g} .. "
             f"{PAPER_RANGE[1]:g}); 'in window' = min and max within {WINDOW:g}x of the paper's.", "",
             "| interpretation | layer | min | 1st pct | median | max | at cap % | > 0.016 % | in window |",
             "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    rows = []
    for key, r in rates.items():
        for layer, s in [("all", r["all"])] + list(r["layers"].items()):
            window = ("yes" if within_window(s) else "no") if layer == "all" else ""
            name = key if layer == "all" else ""
            lines.append(f"| {name} | {layer} | {fmt(s['min'])} | {fmt(s['p1'])} | {fmt(s['median'])} | "
                         f"{fmt(s['max'])} | {s['cap_pct']:.1f} | {s['above_paper_pct']:.1f} | {window} |")
            rows.append(dict({"interpretation": key, "layer": layer}, **{f: s[f] for f in RATE_FIELDS}))
    trained = {}
    for key, r in results.items():
        if key.startswith("train/"):
            _, interpretation, _ = key.split("/")
            trained.setdefault(interpretation, []).append(r)
    passes = opts.passes()
    if trained:
        lines += ["", f"Training at mu = {PAPER_MU}, {passes} pass(es), the paper's epsilon schedule:", "",
                  "| interpretation | seeds | stable | test error % after the last pass | training error % | "
                  "pass-1 loss |", "|---|---|---|---:|---:|---:|"]
    for interpretation, runs in trained.items():
        verdicts = [stability(r["history"], passes) for r in runs]
        done = [r for r, v in zip(runs, verdicts) if not v.startswith("diverged")]
        test = mean_range([r["history"][-1]["test_error_pct"] for r in done]) if done else "-"
        train = mean_range([r["history"][-1]["train_error_pct"] for r in done]) if done else "-"
        first = ", ".join(f"{r['history'][0]['train_loss']:.2f}" if r["history"] else "-" for r in runs)
        lines.append(f"| {interpretation} | {len(runs)} | {sum(v == 'stable' for v in verdicts)}/{len(runs)} | "
                     f"{test} | {train} | {first} |")
        for r, v in zip(runs, verdicts):
            last = r["history"][-1] if r["history"] else {}
            rows.append({"interpretation": interpretation, "layer": "training", "seed": r["config"]["seed"],
                         "stability": v,
                         "test_error_pct": last.get("test_error_pct"),
                         "train_error_pct": last.get("train_error_pct")})
    closest = min(rates, key=lambda k: abs(np.log(rates[k]["all"]["min"] / PAPER_RANGE[0]))
                  + abs(np.log(rates[k]["all"]["max"] / PAPER_RANGE[1])))
    inside = [k for k in rates if within_window(rates[k]["all"])]
    headline = (f"pass-1 rates at mu = {PAPER_MU}: {len(inside)} of {len(rates)} interpretations within "
                f"{WINDOW:g}x of the paper's {PAPER_RANGE[0]:g}..{PAPER_RANGE[1]:g}"
                + (f" ({', '.join(inside)})" if inside else "")
                + f"; closest: {closest} ({fmt(rates[closest]['all']['min'])}..{fmt(rates[closest]['all']['max'])})")
    notes = [f"Rates: eta = epsilon / (mu + h) with epsilon = 5e-4 and the trainer's own pass-1 Hessian "
             f"sample ({'the tiny training set' if opts.tiny else '500 images'}, float64) of seed "
             f"{RATE_SEED}'s untrained network; free parameters only (C3's unconnected kernels left "
             f"out); 'at cap' = eta >= (epsilon/mu)/{CAP_MARGIN:g}, i.e. h < mu/10. With --subsample "
             "average the coefficient's h and eta are the average's (h 16x smaller).",
             "An interpretation's h every N samples does not change the pass-1 rates (the same first estimate).",
             "'Stable' = the run finished and its mean training loss never rose from one pass to "
             "the next.",
             "unit inputs: the network standardises its input, (x - mean) / std with the padded "
             "training set's mean 0.0275 and standard deviation 0.351 (the printed -0.1/1.175 levels "
             "give variance 0.123, not the paper's intended 1); Variant(inputs=\"unit\"), carried by "
             "the checkpoint, applied by forward, evaluate, predict, export."]
    picked = rule_pick(rates, trained, passes)
    notes += decision_notes(picked, trained)
    if picked:
        headline += f"; 20 passes: {picked[0]} ({picked[1]:.2f}% mean test error)"
    if (Path(opts.results) / "sdlm" / STUDY).exists():
        notes.append(f"20-pass runs at mu = {PAPER_MU} of the first study of these interpretations, with the "
                     f"`lenet5 train` command of each row: [{STUDY}]({STUDY}).")
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes,
            "figures": {}, "data": {k: r for k, r in rates.items()}}


def rule_pick(rates, trained, passes):
    """The selection rule for the default: of the interpretations that train stably at mu = 0.02 on
    every seed and put the pass-1 range within WINDOW of the paper's, the lowest mean test
    error (the interpretations are all the printed settings plus overrides, so each is as close to it as its
    overrides are few). (interpretation, its mean test error %), or None when no interpretation qualifies."""
    eligible = {}
    for interpretation, runs in trained.items():
        if interpretation in rates and within_window(rates[interpretation]["all"]) and runs and all(
                stability(r["history"], passes) == "stable" for r in runs):
            eligible[interpretation] = float(np.mean([r["history"][-1]["test_error_pct"] for r in runs]))
    if not eligible:
        return None
    pick = min(eligible, key=eligible.get)
    return pick, eligible[pick]


def decision_notes(picked, trained):
    """What the rule picked (rule_pick), which recipe has those settings, and where the default
    recipe comes from."""
    from ..training.config import DEFAULT_RECIPE

    if picked is None:
        return ["The selection rule finds no interpretation that is stable on every seed with its pass-1 "
                "range within 2x of the paper's."]
    pick, mean = picked
    recipe = recipe_of(pick)
    named = f"the `{recipe}` recipe" if recipe else "no recipe has exactly these settings"
    return [f"The selection rule (stable at mu = {PAPER_MU} on every seed, pass-1 range within "
            f"{WINDOW:g}x of the paper's, then the lowest mean test error) picks {pick} "
            f"({mean:.2f}% mean test error): {named}. The default recipe, `{DEFAULT_RECIPE}`, is "
            "the one with the lowest mean test error over 5 seeds among the recipes at mu = "
            f"{PAPER_MU}, whatever their step schedule (`lenet5 experiment recipes`)."]


def recipe_of(interpretation):
    """The recipe (lenet5.training.config.RECIPES) whose settings are the interpretation's, or None."""
    from ..training.config import RECIPES

    settings = dict(AS_PRINTED, **INTERPRETATIONS[interpretation][1])
    for name, recipe in RECIPES.items():
        if all(settings.get(k) == v for k, v in recipe.items()):
            return name
    return None


def figures(results, opts, folder, plt):
    hists = {k.split("/", 1)[1]: [r["layers"][layer]["histogram"] for layer in LAYERS]
             for k, r in results.items() if k.startswith("rates/")}
    rates = {}  # an interpretation whose pass-1 rates equal an earlier one's is drawn once
    for k, r in results.items():
        key = k.split("/", 1)[1]
        if k.startswith("rates/") and all(hists[key] != hists[drawn] for drawn in rates):
            rates[key] = r
    fig, axes = plt.subplots(2, 3, figsize=(12, 6.5), sharex=True)
    centres = np.sqrt(BINS[:-1] * BINS[1:])
    colors = plt.get_cmap("tab20").colors
    for ax, layer in zip(axes.flat, LAYERS):
        for (key, r), color in zip(rates.items(), colors):
            counts = np.array(r["layers"][layer]["histogram"], float)
            recipe = recipe_of(key)  # an interpretation that is one of the recipes stands out
            mine = recipe is not None
            label = f"{key} (the {recipe} recipe)" if mine else key
            ax.step(centres, counts / max(counts.sum(), 1), where="mid", lw=2.2 if mine else 1,
                    color="black" if mine else color, label=label, zorder=3 if mine else 2)
        ax.axvspan(*PAPER_RANGE, color="#55a868", alpha=0.15)
        ax.set_xscale("log")
        ax.set_title(layer)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("pass-1 effective rate eta")
    axes[0, 0].set_ylabel("share of the layer's parameters")
    axes[0, 2].legend(fontsize=6, ncol=2)
    fig.suptitle(f"SDLM pass-1 rates at mu = {PAPER_MU} per layer; green: the paper's range")
    fig.tight_layout()
    save_figure_atomic(fig, folder / "rates.png")
    return {"rates.png": "Distribution of the pass-1 effective rates per layer, one line per interpretation "
            "(interpretations with the same pass-1 rates drawn once); the green band is the paper's 7e-5 .. 0.016."}
