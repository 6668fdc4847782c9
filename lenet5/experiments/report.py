"""Writing an experiment's results: results/<name>/{results.json, results.csv, README.md},
our figures beside the paper's, and the index results/README.md with one line per experiment.

Every number a README states comes from the results it writes (the report's rows, the
measured wall and training times); paths under the project are written relative to it, so
results carry no machine's absolute paths.
"""
import datetime
import json
import os
import platform
from pathlib import Path

from ..files import csv_text, write_json_atomic, write_text_atomic

# paths under this folder (the repository, or site-packages for an installed copy) are
# written into results relative to it
PROJECT_ROOT = Path(__file__).resolve().parents[2]
SUITE_TIME = "suite-time.md"  # the suite's measured wall time, kept by hand


def machine():
    import numba
    import numpy as np

    return {"python": platform.python_version(), "numba": numba.__version__,
            "numpy": np.__version__, "cpus": os.cpu_count(), "platform": platform.platform()}


def command_line(name, opts):
    parts = ["lenet5 experiment", name]
    if opts.tiny:
        parts.append("--tiny")
    if opts.seeds:
        parts.append("--seeds " + ",".join(map(str, opts.seeds)))
    if opts.epochs:
        parts.append(f"--epochs {opts.epochs}")
    if opts.rates_only:
        parts.append("--rates-only")
    if opts.only:
        parts.append("--only " + ",".join(opts.only))
    if opts.checkpoint:
        parts.append(f"--checkpoint {portable(str(opts.checkpoint))}")
    return " ".join(parts)


def portable(value):
    """`value` (a JSON-able structure) with every absolute path under PROJECT_ROOT written
    relative to it, e.g. lenet5/reference/lenet5-seed0.npz."""
    if isinstance(value, dict):
        return {k: portable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [portable(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        try:
            return Path(value).resolve().relative_to(PROJECT_ROOT).as_posix()
        except (ValueError, OSError):
            return value
    return value


def run_seconds(results):
    """Training time summed over the runs (each run's own clock; sums passes if that is all
    a run reports)."""
    total = 0.0
    for r in results.values():
        if not isinstance(r, dict):
            continue
        total += r["seconds"] if "seconds" in r else sum(h.get("seconds", 0) for h in r.get("history", []))
    return total


def write_results(name, opts, report, seconds, runs_seconds=0.0):
    """results/<name>/{results.json, results.csv, README.md}; returns the folder.
    report: {"headline": str, "table": markdown str, "rows": [flat dicts], "data": {...},
             "notes": [str], "figures": {file: caption}}."""
    folder = Path(opts.results) / name
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"experiment": name, "command": command_line(name, opts), "tiny": opts.tiny,
            "date": datetime.date.today().isoformat(), "wall_seconds": round(seconds, 1),
            "run_seconds": round(runs_seconds, 1), "reused_saved_runs": opts.reuse,
            "machine": machine()}
    report = dict(report, rows=portable(report["rows"]), data=portable(report.get("data", {})))
    write_json_atomic(folder / "results.json", dict(meta, headline=report["headline"],
                                             rows=report["rows"], data=report["data"]))
    rows = report["rows"]
    if rows:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        write_text_atomic(folder / "results.csv", csv_text(rows, columns))
    lines = [f"# {name}", "", report["headline"], "", f"Command: `{meta['command']}` — {timing(meta)} "
             f"on this machine ({meta['machine']['cpus']} CPUs), {meta['date']}.", "",
             report["table"], ""]
    for note in report.get("notes", []):
        lines += [f"- {note}"]
    figures = report.get("figures", {})
    if figures:
        lines += ["", "## Figures", ""]
        lines += [f"![{file}]({file})\n\n*{caption}*\n" for file, caption in figures.items()]
    write_text_atomic(folder / "README.md", "\n".join(lines).rstrip() + "\n")
    write_index(Path(opts.results))
    return folder


def write_index(results_dir):
    """results/README.md: one line per experiment folder that holds a results.json, then
    the link to bench.md and the suite's wall time (SUITE_TIME), when they are there."""
    from . import NAMES

    lines = ["# Results", "", "Each folder holds one experiment's numbers (`results.json`, "
             "`results.csv`) and a table beside the paper's figures (`README.md`). Regenerate one "
             "with `lenet5 experiment NAME` (or `python scripts/reproduce.py NAME|all`).", "",
             "| experiment | result | command | time |", "|---|---|---|---|"]
    for name in NAMES:
        path = results_dir / name / "results.json"
        if not path.exists():
            continue
        meta = json.loads(path.read_text())
        lines.append(f"| [{name}]({name}/README.md) | {meta['headline']} | `{meta['command']}` | "
                     f"{timing(meta)} |")
    if (results_dir / "bench.md").exists():
        lines += ["", "Speed: [bench.md](bench.md) (`lenet5 bench`, against PyTorch and JAX)."]
    suite = results_dir / SUITE_TIME
    if suite.exists():  # the whole suite's wall time, measured by scripts/time_suite.py
        lines += ["", suite.read_text().strip()]
    write_text_atomic(results_dir / "README.md", "\n".join(lines) + "\n")


def timing(meta):
    """How long an experiment took: its wall time, or for a report assembled from saved runs
    (--reuse) the training time of those runs."""
    runs = meta.get("run_seconds", 0)
    if meta.get("reused_saved_runs"):
        return f"assembled from saved runs (`--reuse`) that trained for {duration(runs)} in all"
    extra = f" ({duration(runs)} of training summed over runs)" if runs > 1.2 * meta["wall_seconds"] else ""
    return f"{duration(meta['wall_seconds'])} wall{extra}"


def duration(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"
