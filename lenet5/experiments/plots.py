"""PNG figures through matplotlib, an optional extra (`pip install -e ".[plots]"`). Without it
the experiments still run and say which figures were skipped."""

from ..files import headless_pyplot, save_figure_atomic


def draw(figures, results, opts, folder):
    """Run an experiment's `figures` function; returns ({file: caption}, skipped-note or "")."""
    plt = headless_pyplot()
    if plt is None:
        return {}, "figures skipped: matplotlib is not installed (pip install -e \".[plots]\")"
    made = figures(results, opts, folder, plt)
    plt.close("all")
    return made, ""


def error_curves(plt, path, series, title, paper=None):
    """series: {label: (passes, values)}; paper: (pass, value, label) markers."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (x, y) in series.items():
        ax.plot(x, y, marker=".", label=label)
    for x, y, label in paper or ():
        ax.plot([x], [y], "k*", markersize=10, label=label)
    ax.set_xlabel("training pass")
    ax.set_ylabel("error (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def digit_grid(plt, path, images, titles, columns=12, title=None):
    """Small grid of 32x32 digits (ink dark on white), each with a caption."""
    rows = max(1, -(-len(images) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 0.9, rows * 1.05), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, image, text in zip(axes.ravel(), images, titles):
        ax.imshow(image, cmap="gray_r", vmin=-0.1, vmax=1.175)
        ax.set_title(text, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    save_figure_atomic(fig, path)


def matrices(plt, path, mats, titles):
    fig, axes = plt.subplots(1, len(mats), figsize=(3.2 * len(mats), 4))
    for ax, mat, text in zip(axes, mats, titles):
        im = ax.imshow(mat, cmap="viridis", vmin=0)
        ax.set_title(text, fontsize=9)
        ax.set_xlabel("S2 map i")
        ax.set_ylabel("C3 map j")
        fig.colorbar(im, ax=ax, fraction=0.05)
    fig.tight_layout()
    save_figure_atomic(fig, path)
