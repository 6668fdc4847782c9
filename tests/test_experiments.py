"""Every experiment's tiny configuration runs end to end and writes its results."""
import json
import sys

import numpy as np
import pytest

from lenet5.cli import main
from lenet5.experiments import NAMES, pool, runner
from lenet5.tools.rejection import reject_for, rejection_curve


@pytest.fixture
def out(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.setenv("LENET5_DATA_DIR", str(mnist_dir))
    return tmp_path


def run_tiny(out, name, *extra):
    code = main(["experiment", name, "--tiny", "--processes", "1", "--results", str(out / "results"),
                 "--runs", str(out / "runs"), *extra])
    assert code == 0
    folder = out / "results" / name
    result = json.loads((folder / "results.json").read_text())
    assert result["tiny"] and result["rows"]
    assert (folder / "results.csv").read_text().count("\n") == len(result["rows"]) + 1
    readme = (folder / "README.md").read_text()
    assert f"lenet5 experiment {name} --tiny" in readme and "|---" in readme
    index = (out / "results" / "README.md").read_text()
    assert f"[{name}]({name}/README.md)" in index
    return result


@pytest.mark.slow
def test_curves_tiny(out):
    result = run_tiny(out, "curves")
    rows = result["rows"]
    assert [r["pass"] for r in rows] == [1]
    assert 0 <= rows[0]["test_error_pct"] <= 100
    assert result["data"]["seeds"] == ["seed0"]


@pytest.mark.slow
def test_train_size_tiny(out):
    result = run_tiny(out, "train-size")
    assert result["data"]["sizes"] == [100, 200, 300]


def test_rejection_on_a_trained_checkpoint(out, tmp_path):
    from lenet5.experiments.jobs import mnist
    from lenet5.training.trainer import TrainConfig, Trainer

    data = mnist(None)
    config = TrainConfig(epochs=1, train_size=2000, optimizer="sgd", lr=3e-3, init="paper", inputs="paper",
                         hessian_every=0)  # (a network that gets under 0.5% error once the unsure are out)
    Trainer(config, data, tmp_path / "run", progress=False, log=lambda s: None).run()
    result = run_tiny(out, "rejection", "--checkpoint", str(tmp_path / "run" / "checkpoint.npz"))
    row = result["rows"][0]
    assert 0 < row["reject_pct_for_0.5"] < 100
    assert row["test_error_pct"] > 0.5


def test_rejection_measure_on_constructed_outputs():
    # 4 patterns; the two wrong ones have the smallest gaps, so rejecting 50% leaves 0% error
    labels = np.array([0, 1, 2, 3])
    y = np.array([[0.0, 9, 9, 9], [9, 0.0, 9, 9], [0.9, 1.1, 1.0, 9], [9, 1.2, 9, 1.3]])
    rejected, error = rejection_curve(y, labels)
    assert error[-1] == 50.0
    assert reject_for(y, labels, 0.5) == 50.0
    assert reject_for(y, labels, 50.0) == 0.0


def test_without_matplotlib_figures_are_skipped_with_a_note(out, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    run_tiny(out, "curves")
    readme = (out / "results" / "curves" / "README.md").read_text()
    assert "figures skipped: matplotlib is not installed" in readme
    assert not list((out / "results" / "curves").glob("*.png"))


def job_pid(key, fail=False, meet=None, parties=2):
    """Returns its process id. With `meet` (a folder), it first waits until `parties` jobs have
    checked in there: jobs run one after another in one process would wait forever (20 s)."""
    import os
    import time
    from pathlib import Path

    if fail:
        raise ValueError("boom")
    if meet:
        (Path(meet) / f"{key}.{os.getpid()}").touch()
        deadline = time.monotonic() + 20
        while len(list(Path(meet).iterdir())) < parties:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{key}: the other job never started alongside")
            time.sleep(0.01)
    return {"pid": os.getpid()}


@pytest.mark.parametrize("processes", [1, 2])
def test_a_failed_job_is_named_and_the_others_are_kept(tmp_path, processes):
    opts = runner.Options(processes=processes, runs=tmp_path, log=lambda s: None)
    jobs = [pool.Job("ok", "test_experiments:job_pid"),
            pool.Job("bad", "test_experiments:job_pid", {"fail": True})]
    from lenet5.errors import Lenet5Error

    with pytest.raises(Lenet5Error, match="1 of 2 runs failed.*bad: ValueError: boom"):
        pool.run_jobs(jobs, opts, "demo")
    saved = tmp_path / "demo" / "ok.result.json"
    assert saved.exists()
    # --reuse takes the saved result instead of running the job again
    opts.reuse = True
    first = json.loads(saved.read_text())["result"]
    assert pool.run_jobs(jobs[:1], opts, "demo") == {"ok": first}


def test_jobs_run_in_separate_processes(tmp_path):
    import os

    opts = runner.Options(processes=2, runs=tmp_path / "runs", log=lambda s: None)
    meet = tmp_path / "meet"
    meet.mkdir()
    jobs = [pool.Job(f"j{k}", "test_experiments:job_pid", {"meet": str(meet)}) for k in range(2)]
    pids = {r["pid"] for r in pool.run_jobs(jobs, opts, "demo").values()}
    assert os.getpid() not in pids and len(pids) == 2  # both at once, each in its own process


def test_unknown_experiment_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["experiment", "nope"])
    assert e.value.code == 2
    assert NAMES[0] in capsys.readouterr().err


def test_recipes_tiny_trains_every_recipe_and_picks_by_the_rule(out):
    from lenet5.experiments.recipes import pick
    from lenet5.training.config import PAPER_MU, RECIPES

    result = run_tiny(out, "recipes")
    assert {r["recipe"] for r in result["rows"]} == set(RECIPES)
    finals = result["data"]["finals"]
    at_printed_mu = {name: np.mean(v) for name, v in finals.items() if RECIPES[name]["mu"] == PAPER_MU}
    assert result["data"]["picked"] == min(at_printed_mu, key=at_printed_mu.get)
    # the rule: the lowest mean among the recipes at the printed mu, whatever the others score
    assert pick({"standardised": [1.0, 1.2], "lush": [0.9, 0.9], "damped": [0.1]}) == "lush"


def test_baselines_tiny(out):
    result = run_tiny(out, "baselines")
    params = {r["network"]: r["n_params"] for r in result["rows"]}
    assert params == {"linear": 7_850, "mlp-300": 238_510, "mlp-1000": 795_010, "mlp-300-100": 266_610}
    assert all(r["test_error_pct"] < 90 for r in result["rows"])  # better than chance after 300 samples


@pytest.mark.slow
def test_distortions_tiny(out):
    result = run_tiny(out, "distortions")
    assert result["data"]["errors"][0] == round(result["rows"][0]["test_error_pct"] * 100)
    readme = (out / "results" / "distortions" / "README.md").read_text()
    assert "translation ±2 px" in readme


@pytest.mark.slow
def test_connections_tiny(out):
    result = run_tiny(out, "connections")
    runs = {r["run"]: r for r in result["rows"]}
    assert {"table-sdlm", "full-sgd", "learned-sgd", "learned-l1-sgd"} <= set(runs)
    alpha = np.array(result["data"]["alpha"])
    assert alpha.shape == (16, 6) and np.allclose(alpha.sum(axis=1), 1.0)
    assert np.array(result["data"]["table_mask"]).sum() == 60  # Table I's connections


@pytest.mark.slow
def test_ablations_tiny(out):
    result = run_tiny(out, "ablations")
    from lenet5.experiments.ablations import VARIANTS

    rows = {r["variant"]: r for r in result["rows"]}
    assert list(rows) == list(VARIANTS)  # every row run: none "not run"
    assert all(r["seeds"] == 1 and r["test_error_pct_mean"] is not None for r in rows.values())
    assert rows["exact"]["diff_points"] == 0 and rows["exact"]["within_seed_spread"]


@pytest.mark.slow
def test_fig9_tiny(out):
    from lenet5.core.paper import PAPER_RESULTS

    result = run_tiny(out, "fig9")
    rows = {r["classifier"]: r for r in result["rows"]}
    for name in ("k-NN Euclidean, k = 1", "k-NN Euclidean, k = 3", "1000 RBF + linear",
                 "40 PCA + quadratic (polynomial, 861 terms)"):
        assert 0 < rows[name]["test_error_pct"] < 50, name  # better than chance on 300 samples
    paper = PAPER_RESULTS["fig9_test_error_pct"]
    assert rows["k-NN Euclidean, k = 1"]["paper_test_error_pct"] == paper["knn-euclidean"]
    assert not [name for name, r in rows.items() if r["test_error_pct"] is None]  # every row measured
    for name in ("RS-SVM poly 5", "[dist] V-SVM poly 9"):  # SVMs of 300 images
        assert 0 < rows[name]["test_error_pct"] < 50 and rows[name]["source"].startswith("run here"), name
    assert result["data"]["rs-svm"]["reduced_set"] < result["data"]["rs-svm"]["support_vectors"]
    assert result["data"]["knn"]["train_size"] == 300
    for name in ("[16x16] LeNet-1", "LeNet-4"):  # trained here: one pass on 300 samples
        assert 0 < rows[name]["test_error_pct"] < 100 and rows[name]["source"].startswith("run here")
    assert {"lenet1-seed0", "lenet4-seed0", "boosted-seed0"} <= set(result["data"])
    for hidden in ("300", "1000", "300-100", "500-150"):  # on distorted copies of the 300
        dist = rows[f"[dist] 28x28-{hidden}-10"]
        assert 0 < dist["test_error_pct"] < 100 and dist["source"].startswith("run here on the distorted")
        assert result["data"][f"mlp-dist-{hidden}"]["copies"] == 9 * 300
        paper_protocol = rows[f"28x28-{hidden}-10, SDLM as LeNet-5"]  # SDLM, one pass on the 300
        assert 0 < paper_protocol["test_error_pct"] < 100 and paper_protocol["source"].startswith("run here: SDLM")
        assert result["data"][f"mlp-paper-{hidden}"]["history"][0]["epsilon"] > 0
    boosted = rows["[dist] boosted LeNet-4"]  # three LeNet-4s, one pass each on a few hundred
    assert 0 < boosted["test_error_pct"] < 100 and boosted["source"].startswith("run here")
    readme = (out / "results" / "fig9" / "README.md").read_text()
    assert "fig9.png" in readme and (out / "results" / "fig9" / "fig9.png").exists()


@pytest.mark.slow
def test_sdlm_tiny(out):
    from lenet5.experiments.sdlm import INTERPRETATIONS, LAYERS, TRAINED

    result = run_tiny(out, "sdlm")
    rates = [r for r in result["rows"] if r["layer"] != "training"]
    expected = {(k, la) for k in INTERPRETATIONS for la in ("all", *LAYERS)}
    assert {(r["interpretation"], r["layer"]) for r in rates} == expected
    assert all(0 < r["min"] <= r["p1"] <= r["median"] <= r["max"] <= 0.025 * (1 + 1e-9) for r in rates)
    training = [r for r in result["rows"] if r["layer"] == "training"]
    assert sorted(r["interpretation"] for r in training) == sorted(TRAINED)
    assert (out / "results" / "sdlm" / "rates.png").exists()
    cheap = run_tiny(out, "sdlm", "--rates-only")
    assert all(r["layer"] != "training" for r in cheap["rows"])
    assert "lenet5 experiment sdlm --tiny --rates-only" in (out / "results" / "sdlm" / "README.md").read_text()


def test_the_index_carries_the_suites_wall_time(tmp_path):
    """results/README.md is rewritten after every experiment; the suite's wall time, kept in
    suite-time.md, is copied into it each time."""
    from lenet5.experiments.report import SUITE_TIME, write_index

    write_index(tmp_path)
    assert "wall time" not in (tmp_path / "README.md").read_text()
    (tmp_path / SUITE_TIME).write_text("## The suite's wall time\n\n| a | b |\n")
    write_index(tmp_path)
    assert (tmp_path / "README.md").read_text().endswith("## The suite's wall time\n\n| a | b |\n")


def test_any_executor_gets_the_jobs_not_saved_and_its_results_are_kept(tmp_path):
    """run_jobs hands the jobs it has no saved result for to an executor, which calls
    finish(job, get) for each: results are saved and failures named whoever runs the jobs."""
    opts = runner.Options(processes=1, runs=tmp_path, log=lambda s: None)
    seen = []

    def here_backwards(todo, opts, finish):
        seen.append([job.key for job in todo])
        for job in reversed(todo):
            finish(job, lambda job=job: pool.call(job.fn, pool.job_arguments(job, opts)))

    jobs = [pool.Job(k, "test_experiments:job_pid", {"fail": k == "c"}) for k in "abc"]
    from lenet5.errors import Lenet5Error

    with pytest.raises(Lenet5Error, match="1 of 3 runs failed.*c: ValueError: boom"):
        pool.run_jobs(jobs, opts, "demo", execute=here_backwards)
    assert sorted(p.name for p in (tmp_path / "demo").iterdir()) == ["a.result.json", "b.result.json"]
    opts.reuse = True
    results = pool.run_jobs(jobs[:2], opts, "demo", execute=here_backwards)
    assert seen[-1] == [] and list(results) == ["a", "b"]  # both reused, in the jobs' order


def test_the_pool_runs_jobs_without_the_report_writer():
    """Running jobs and writing results are separate modules: the pool imports no report code."""
    import subprocess
    import sys

    code = ("import sys, lenet5.experiments.pool; "
            "print(sorted(m for m in sys.modules if m.startswith('lenet5.experiments.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "lenet5.experiments.pool" in out and "report" not in out and "runner" not in out


def test_the_readme_states_what_results_json_holds(out):
    """A results README is written from the numbers of its results.json (headline, command,
    measured times), and the shared experiment code states no measured time of its own: a
    time written into source would go stale with the next run."""
    import re
    from pathlib import Path

    from lenet5.experiments import report

    run_tiny(out, "train-size")
    meta = json.loads((out / "results" / "train-size" / "results.json").read_text())
    readme = (out / "results" / "train-size" / "README.md").read_text()
    assert f"{meta['headline']}\n\nCommand: `{meta['command']}` — {report.timing(meta)} on this machine " \
           f"({meta['machine']['cpus']} CPUs), {meta['date']}." in readme
    folder = Path(report.__file__).parent
    for name in ("jobs.py", "runner.py", "pool.py", "report.py"):
        measured = re.findall(r"\b\d+(?:\.\d+)?(?:-\d+(?:\.\d+)?)? (?:s|min)\b", (folder / name).read_text())
        assert not measured, f"{name} states measured times {measured}: take them from results JSON"


def test_experiment_help_names_every_fig9_row_group():
    """--only's help lists what fig9.GROUPS accepts (the CLI does not import the experiment)."""
    from lenet5.cli import build_parser
    from lenet5.experiments.fig9 import GROUPS

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    only = next(a for a in sub.choices["experiment"]._actions if a.dest == "only")
    named = only.help.split("(")[1].split(")")[0].split(", ")
    assert named == list(GROUPS)
