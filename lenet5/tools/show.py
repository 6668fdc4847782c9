"""One digit going through the network, drawn in one figure (`lenet5 show`), in the spirit of
the paper's Fig. 4: the 32x32 input; the feature maps of C1, S2, C3 and S4, each layer on one
grey scale (the squashing function's range, -1.7159 .. 1.7159, black = high); C5's 120
outputs as a strip; F6's 84 outputs as the 7x12 bitmap they were designed to be read as, next
to the prototype bitmaps of the winning class and the runner-up; the ten RBF distances as
bars; the prediction, the top-2 gap and whether the rejection threshold would reject it.
Needs matplotlib (the `[plots]` extra)."""
import numpy as np

from ..core.architecture import PROTOTYPES, TANH_A
from ..core.paper import BACKGROUND, INK
from ..core.prototypes import BITMAP_COLS, BITMAP_ROWS
from ..errors import Lenet5Error
from ..files import headless_pyplot, write_atomic
from .rejection import top2_gap, verdict

NEEDS_MATPLOTLIB = 'lenet5 show needs matplotlib: pip install -e ".[plots]"'
MAP_ROWS = (("C1", "C1: 6 feature maps, 28x28"), ("S2", "S2: 6 subsampled maps, 14x14"),
            ("C3", "C3: 16 feature maps, 10x10 ({c3})"), ("S4", "S4: 16 subsampled maps, 5x5"))
C3_WIRING = {"table": "Table I connections", "full": "every map reads all 6 S2 maps"}
CMAP = "gray_r"  # as the paper draws digits: high values (ink) black
WINNER, RUNNER_UP, OTHER = "#1f6fb4", "#e07b1a", "#b9b9b9"


def pyplot():
    """matplotlib.pyplot with the file-only backend, or Lenet5Error naming the extra."""
    plt = headless_pyplot()
    if plt is None:
        raise Lenet5Error(NEEDS_MATPLOTLIB)
    return plt


def activation_range(net, acts):
    """(low, high) of the layers' outputs: the squashing function's range."""
    kind = getattr(getattr(net, "variant", None), "activation", "scaled-tanh")
    if kind == "scaled-tanh":
        return -TANH_A, TANH_A
    if kind == "tanh":
        return -1.0, 1.0
    if kind == "sigmoid":
        return 0.0, 1.0
    return 0.0, max(1e-6, max(float(acts[k].max()) for k in ("C1", "S2", "C3", "S4", "C5", "F6")))


def _off(ax):
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)


def _image(ax, data, lo, hi, title=None, frame=True):
    shown = ax.imshow(data, cmap=CMAP, vmin=lo, vmax=hi, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(frame)
        spine.set_color("#999999")
        spine.set_linewidth(0.6)
    if title:
        ax.set_title(title, fontsize=8.5, pad=3)
    return shown


def _scale(fig, cax, shown, lo, hi, label):
    bar = fig.colorbar(shown, cax=cax, ticks=[lo, 0, hi] if lo < 0 < hi else [lo, hi])
    bar.ax.tick_params(labelsize=7, length=2)
    bar.ax.set_yticklabels([f"{v:g}" for v in bar.get_ticks()])
    bar.set_label(label, fontsize=7)
    bar.outline.set_linewidth(0.5)


def draw(net, image, path, caption="", label=None, threshold=None):
    """Write the figure of `image` (float32 32x32, preprocessed) through `net` to `path` (PNG).
    caption: where the image came from; label: its true digit if known; threshold: the
    checkpoint's rejection Threshold or None. Returns a summary dict of what it shows."""
    arch = getattr(getattr(net, "variant", None), "arch", "lenet5")
    if arch != "lenet5":  # the figure's panels are laid out for LeNet-5's layers
        raise Lenet5Error(f"lenet5 show draws LeNet-5 networks; this checkpoint is {arch}")
    plt = pyplot()
    from matplotlib.gridspec import GridSpec

    acts = net.layers(image)
    y = acts["OUT"].astype(np.float64)
    order = np.argsort(y, kind="stable")
    winner, runner = int(order[0]), int(order[1])
    gap = float(top2_gap(y))
    lo, hi = activation_range(net, acts)
    rbf = PROTOTYPES in net.params

    fig = plt.figure(figsize=(13.5, 9.4))
    grid = GridSpec(7, 2, figure=fig, width_ratios=[1.0, 4.3], wspace=0.08, hspace=0.55,
                    height_ratios=[1.45, 1.05, 0.78, 0.78, 0.42, 0.05, 2.0],
                    left=0.03, right=0.955, top=0.93, bottom=0.05)

    # the input
    ax = fig.add_subplot(grid[0:2, 0])
    shown = _image(ax, acts["input"], BACKGROUND, INK, "input, 32x32")
    cax = ax.inset_axes([1.04, 0.0, 0.05, 1.0])
    _scale(fig, cax, shown, BACKGROUND, INK, "")
    cax.set_yticks([BACKGROUND, INK], [f"{BACKGROUND:g}", f"{INK:g}"])

    # the feature maps, one row per layer, one grey scale per layer
    for row, (name, title) in enumerate(MAP_ROWS):
        maps = acts[name]
        cells = grid[row, 1].subgridspec(1, len(maps) + 1, wspace=0.12,
                                         width_ratios=[1.0] * len(maps) + [0.09 * len(maps) / 6])
        for m, fmap in enumerate(maps):
            ax = fig.add_subplot(cells[0, m])
            shown = _image(ax, fmap, lo, hi)
        cax = fig.add_subplot(cells[0, -1])
        _scale(fig, cax, shown, lo, hi, "")
        top = fig.add_subplot(grid[row, 1], frameon=False)
        _off(top)
        c3 = getattr(getattr(net, "variant", None), "c3", "table")
        top.set_title(title.format(c3=C3_WIRING.get(c3, c3)), fontsize=9, loc="left", pad=2)
        if row == 0:
            top.set_title(f"each layer on one grey scale: f(a) from {lo:g} (white) to {hi:g} (black)",
                          fontsize=8, loc="right", pad=2, color="#555555")

    # C5: 120 numbers as a strip
    ax = fig.add_subplot(grid[4, 1])
    shown = _image(ax, acts["C5"][None, :], lo, hi)
    ax.set_aspect("auto")
    ax.set_title("C5: 120 units (5x5 convolutions over all 16 S4 maps: one number each)", fontsize=9,
                 loc="left", pad=2)

    # the summary, under the input
    _summary(fig.add_subplot(grid[2:6, 0]), caption, label, winner, runner, y, gap, threshold, rbf)

    # F6 as a bitmap beside the winner's and the runner-up's prototype, and the distances
    bottom = grid[6, :].subgridspec(1, 5, width_ratios=[1, 1, 1, 0.25, 4.2], wspace=0.25)
    bitmaps = [(acts["F6"], "F6: 84 units\nas a 7x12 bitmap", "#000000")]
    if rbf:
        protos = net.params[PROTOTYPES]
        bitmaps += [(protos[winner], f"prototype of {winner}\n(winner)", WINNER),
                    (protos[runner], f"prototype of {runner}\n(runner-up)", RUNNER_UP)]
    for k, (bits, title, colour) in enumerate(bitmaps):
        ax = fig.add_subplot(bottom[0, k])
        shown = _image(ax, np.reshape(bits, (BITMAP_ROWS, BITMAP_COLS)), -1.0, 1.0)
        ax.set_title(title, fontsize=8.5, color=colour, pad=4)
    holder = fig.add_subplot(bottom[0, 3])
    _off(holder)
    _scale(fig, holder.inset_axes([0.0, 0.2, 0.3, 0.6]), shown, -1.0, 1.0, "")
    _distances(fig.add_subplot(bottom[0, 4]), y, winner, runner, rbf)

    what = "RBF distance" if rbf else "-log p"
    fig.suptitle(f"LeNet-5 on one digit: predicted {winner}"
                 + (f" (true {label})" if label is not None else "")
                 + f" — {what} {y[winner]:.2f}, runner-up {runner} at {y[runner]:.2f}", fontsize=13, y=0.985)
    write_atomic(path, lambda f: fig.savefig(f, format="png", dpi=100))
    plt.close(fig)
    return {"digit": winner, "runner_up": runner, "gap": gap, "distances": y.tolist(),
            "verdict": verdict(gap, threshold)}


def _summary(ax, caption, label, winner, runner, y, gap, threshold, rbf):
    _off(ax)
    judged = verdict(gap, threshold)
    lines = [(f"prediction  {winner}", 17, "bold", WINNER)]
    if label is not None:
        right = label == winner
        lines.append((f"true digit  {label}  ({'right' if right else 'WRONG'})", 11, "bold",
                      "#2a7a2a" if right else "#c0392b"))
    lines.append((f"runner-up   {runner}", 11, "normal", RUNNER_UP))
    lines.append((f"top-2 gap   {gap:.2f}", 11, "normal", "black"))
    if threshold is None:
        lines.append(("no rejection threshold known", 9, "normal", "#666666"))
    else:
        sign = ">=" if judged == "confident" else "<"
        lines.append((f"{sign} {threshold.gap:.2f}, the threshold", 9, "normal", "#444444"))
        lines.append((f"for {threshold.target_error_pct:g}% test error:", 9, "normal", "#444444"))
        lines.append(("confident" if judged == "confident" else "would be REJECTED", 12, "bold",
                      "#2a7a2a" if judged == "confident" else "#c0392b"))
    height = ax.get_window_extent().height / ax.figure.dpi * 72  # the axes' height in points
    yy = 1.0
    for text, size, weight, colour in lines:
        ax.text(0.0, yy, text, fontsize=size, fontweight=weight, color=colour, va="top",
                family="DejaVu Sans Mono", transform=ax.transAxes)
        yy -= 1.55 * size / height
    if caption:
        ax.text(0.0, yy - 0.02, caption, fontsize=8, color="#555555", va="top", transform=ax.transAxes)


def _distances(ax, y, winner, runner, rbf):
    colours = [WINNER if d == winner else RUNNER_UP if d == runner else OTHER for d in range(10)]
    ax.barh(range(10), y, color=colours, height=0.72)
    ax.invert_yaxis()
    ax.set_yticks(range(10), [str(d) for d in range(10)], fontsize=9)
    ax.set_xlim(0, float(y.max()) * 1.2)
    for d, v in enumerate(y):
        text = {winner: f"{v:.2f}  winner", runner: f"{v:.2f}  runner-up"}.get(d, f"{v:.1f}")
        ax.text(v + y.max() * 0.012, d, text, va="center", fontsize=8 if d in (winner, runner) else 7.5,
                color="#555555" if colours[d] == OTHER else colours[d],
                fontweight="bold" if d in (winner, runner) else "normal")
    for tick, colour in zip(ax.get_yticklabels(), colours, strict=True):
        if colour != OTHER:
            tick.set_color(colour)
            tick.set_fontweight("bold")
    what = "RBF output: squared distance of F6 to each prototype (smaller = closer)" if rbf \
        else "output: -log p (smaller = more likely)"
    ax.set_title(what, fontsize=9, loc="left", pad=4)
    ax.set_ylabel("digit", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
