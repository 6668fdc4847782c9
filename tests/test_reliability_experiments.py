"""Experiments: Ctrl-C or SIGTERM stops the whole experiment, workers included, and keeps
finished runs for --reuse, which resumes the interrupted one; --tiny never writes into
results/; results carry no absolute paths of the machine that made them; --reuse notices a
deleted checkpoint."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from lenet5.cli import main
from lenet5.experiments import pool, report, runner
from lenet5.training.trainer import Interrupted, Trainer

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def here(tmp_path, mnist_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LENET5_DATA_DIR", str(mnist_dir))
    return tmp_path


def job_record(key, out):
    Path(out, key).write_text("ran")
    return {"key": key}


def job_interrupted(key, out):
    raise Interrupted("interrupted in epoch 1 after 500 of 1,000 samples; saved x/checkpoint.npz")


def test_an_interrupted_run_stops_the_experiment_and_keeps_the_finished_ones(tmp_path):
    opts = runner.Options(processes=1, runs=tmp_path / "runs", log=lambda line: None)
    jobs = [pool.Job("a", "test_reliability_experiments:job_record", {"out": str(tmp_path)}),
            pool.Job("b", "test_reliability_experiments:job_interrupted", {"out": str(tmp_path)}),
            pool.Job("c", "test_reliability_experiments:job_record", {"out": str(tmp_path)})]
    with pytest.raises(Interrupted) as e:
        pool.run_jobs(jobs, opts, "demo")
    assert str(e.value).startswith("experiment demo interrupted (interrupted in epoch 1 after 500")
    assert f"1 of 3 runs finished and are kept under {tmp_path / 'runs' / 'demo'}; run the same " \
           "command with --reuse to continue" in str(e.value)
    assert (tmp_path / "runs" / "demo" / "a.result.json").exists()
    assert not (tmp_path / "c").exists()  # the experiment stopped: c never started


def test_ctrl_c_in_train_size_exits_130_and_reuse_resumes(here, monkeypatch, capsys):
    import lenet5.training.trainer

    monkeypatch.setattr(lenet5.training.trainer, "CHUNK", 50)  # so the interruption lands mid-pass
    real = Trainer._train_slice

    def ctrl_c_in_n200(self, idx, losses):
        real(self, idx, losses)
        if self.out_dir.name == "n200" and len(idx) > 4:
            self.stop.request()
    monkeypatch.setattr(Trainer, "_train_slice", ctrl_c_in_n200)
    command = ["experiment", "train-size", "--tiny", "--processes", "1"]
    assert main(command) == 130
    err = capsys.readouterr().err
    assert "experiment train-size interrupted (interrupted in epoch 1 after 50 of 200 samples" in err
    assert "1 of 3 runs finished" in err and "--reuse to continue" in err
    runs = here / "runs" / "tiny" / "experiments" / "train-size"
    assert (runs / "n100.result.json").exists() and not (runs / "n200.result.json").exists()
    assert not (runs / "n300").exists()

    monkeypatch.setattr(Trainer, "_train_slice", real)
    assert main(command + ["--reuse"]) == 0
    out = capsys.readouterr().out
    assert "[n100] reusing" in out
    relative = "runs/tiny/experiments/train-size/n200/checkpoint.npz"
    assert f"[n200] resuming {relative} (0 of 1 passes done)" in out
    assert "[n300] starting" in out
    result = json.loads((runs / "n200.result.json").read_text())["result"]
    assert len(result["history"]) == 1


def small_train_run(key, data_dir, reuse=False, **kwargs):
    """jobs.train_run evaluated on 500 test images (the worker's copy of the data is cut), each
    chunk of samples slowed to SLOW_CHUNK seconds: a run takes seconds, not a tenth of one, so a
    run cannot finish all its passes (and its worker start the third job) while the other worker
    is still compiling or the test is still reading pass 1's row, which is printed only once
    the run is in pass 2 (its evaluation runs beside pass 2)."""
    import time

    from lenet5.experiments import jobs

    (train, (images, labels)) = jobs.mnist(data_dir)
    jobs.mnist = lambda data_dir=None: (train, (images[:500], labels[:500]))
    real = Trainer._train_slice

    def slow(self, idx, losses):
        time.sleep(SLOW_CHUNK)
        real(self, idx, losses)
    Trainer._train_slice = slow
    return jobs.train_run(key, data_dir=data_dir, reuse=reuse, **kwargs)


SLOW_CHUNK = 0.25


EPOCHS = 6  # passes of each small run: long enough that both runs are mid-way at Ctrl-C
DRIVER = textwrap.dedent("""
    import sys
    from lenet5.experiments import pool, runner
    from lenet5.training.trainer import Interrupted

    runs, data, reuse = sys.argv[1], sys.argv[2], len(sys.argv) > 3
    opts = runner.Options(processes=2, runs=runs, data_dir=data, reuse=reuse)
    jobs = [pool.Job(f"s{s}", "test_reliability_experiments:small_train_run",
                       dict(config={"seed": s, "epochs": EPOCHS, "train_size": 600, "optimizer": "sgd"},
                            runs=runs + "/demo", data_dir=data)) for s in (0, 1, 2)]
    try:
        pool.run_jobs(jobs, opts, "demo")
    except Interrupted as e:
        print("INTERRUPTED", e, flush=True)
        sys.exit(130)
    print("DONE", flush=True)
""").replace("EPOCHS", str(EPOCHS))


@pytest.mark.slow
def test_ctrl_c_stops_every_worker_process_and_reuse_finishes(tmp_path, mnist_dir):
    """A real SIGINT to the parent of two worker processes (as Ctrl-C at a terminal, which
    reaches only the parent): both runs save, exit 130, and the third job, already handed to
    a worker's queue by the executor, never starts; --reuse resumes both and runs the third."""
    args = [sys.executable, "-c", DRIVER, str(tmp_path), str(mnist_dir)]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=REPO / "tests")
    started = set()
    while not {"s0", "s1"} <= started:  # both runs have finished pass 1 and are in pass 2
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if "epoch   1" in line:
            started.add(line[1:3])
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "INTERRUPTED experiment demo interrupted" in out and "Traceback" not in err
    for key in ("s0", "s1"):
        assert (tmp_path / "demo" / key / "checkpoint.npz").exists()
    if "s2" not in started:  # (unless s0 or s1 had already finished all its passes, rare)
        assert not (tmp_path / "demo" / "s2").exists() and "[s2]" not in out
    again = subprocess.run(args + ["--reuse"], capture_output=True, text=True, timeout=120,
                           cwd=REPO / "tests")
    assert again.returncode == 0 and "DONE" in again.stdout, again.stdout + again.stderr
    assert "resuming" in again.stdout  # (a run that finished before Ctrl-C is reused instead)
    for key in ("s0", "s1", "s2"):
        assert f"[{key}] resuming" in again.stdout or f"[{key}] reusing" in again.stdout or key == "s2"
        result = json.loads((tmp_path / "demo" / f"{key}.result.json").read_text())["result"]
        assert [r["epoch"] for r in result["history"]] == list(range(1, EPOCHS + 1))


def test_tiny_never_writes_into_results(here):
    assert main(["experiment", "rejection", "--tiny", "--processes", "1"]) == 0
    assert not (here / "results").exists()
    folder = here / "runs" / "tiny" / "results" / "rejection"
    result = json.loads((folder / "results.json").read_text())
    # the shipped checkpoint is named relative to the project, not by this machine's path
    assert result["rows"][0]["checkpoint"] == "lenet5/reference/lenet5-seed0.npz"
    for name in ("results.json", "results.csv", "README.md"):
        assert str(REPO) not in (folder / name).read_text()


def test_results_paths_are_written_relative_to_the_project():
    inside = str(report.PROJECT_ROOT / "lenet5" / "reference" / "x.npz")
    value = {"rows": [{"checkpoint": inside, "n": 3}], "other": "/somewhere/else.npz", "name": "a/b"}
    assert report.portable(value) == {"rows": [{"checkpoint": "lenet5/reference/x.npz", "n": 3}],
                                      "other": "/somewhere/else.npz", "name": "a/b"}


def test_reuse_notices_a_deleted_checkpoint_and_trains_again(here, mnist_dir):
    lines = []
    opts = runner.Options(processes=1, runs=here / "runs", reuse=True, log=lines.append)
    job = pool.Job("a", "lenet5.experiments.jobs:train_run",
                     dict(config={"epochs": 1, "train_size": 200}, runs=str(here / "runs" / "demo"),
                          data_dir=str(mnist_dir)))
    first = pool.run_jobs([job], opts, "demo")["a"]
    checkpoint = Path(first["checkpoint"])
    checkpoint.unlink()
    pool.run_jobs([job], opts, "demo")
    assert f"[a] its saved checkpoint {checkpoint} is missing: running it again" in lines
    assert checkpoint.exists()
    lines.clear()
    pool.run_jobs([job], opts, "demo")
    assert any(line.startswith("[a] reusing") for line in lines)


# Loaded by every Python process of the experiment below (the command and its spawned
# workers) through PYTHONPATH: the runs named in SLOW_RUNS train in chunks of 50 samples,
# each slowed by a second, so that a signal lands while they train.
SLOW_SITECUSTOMIZE = textwrap.dedent("""
    import os
    import time

    if os.environ.get("SLOW_RUNS"):
        import lenet5.training.trainer as trainer

        trainer.CHUNK = 50
        real = trainer.Trainer._train_slice

        def slow(self, idx, losses):
            if self.out_dir.name in os.environ["SLOW_RUNS"].split(","):
                time.sleep(1.0)
            real(self, idx, losses)
        trainer.Trainer._train_slice = slow
""")


def children(pid):
    """The process ids whose parent is `pid` (from /proc)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid):
    """True while `pid` exists and is not a zombie awaiting its parent."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("processes", [2, 1])
def test_sigterm_stops_the_experiment_and_its_workers_as_ctrl_c_does(tmp_path, mnist_dir, processes):
    """A real SIGTERM to a real `lenet5 experiment train-size --tiny`: exit 130, the finished
    run kept, the runs in flight saved, and no worker process left training on its own."""
    from reliability_tools import lenet5_env

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "sitecustomize.py").write_text(SLOW_SITECUSTOMIZE)
    env = lenet5_env()
    env.update(PYTHONPATH=str(tmp_path / "site") + os.pathsep + env["PYTHONPATH"], PYTHONUNBUFFERED="1",
               SLOW_RUNS="n200,n300", LENET5_DATA_DIR=str(mnist_dir))
    command = [sys.executable, "-m", "lenet5", "experiment", "train-size", "--tiny",
               "--processes", str(processes), "--results", str(tmp_path / "results"),
               "--runs", str(tmp_path / "runs")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, env=env)
    seen = []
    while "[n100] done\n" not in seen:  # n100 is fast; n200 (and n300) train 1 s per 50 samples
        line = proc.stdout.readline()
        assert line, "".join(seen) + proc.stderr.read()
        seen.append(line)
    time.sleep(1.5)  # n200 (and with two workers n300) mid-pass
    workers = children(proc.pid)
    assert len(workers) >= (processes if processes > 1 else 0)  # (and multiprocessing's resource tracker)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)  # (not communicate: a surviving worker would hold the pipes open)
    deadline = time.monotonic() + 10
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if alive(pid)]
    for pid in survivors:  # (so that a failure leaves nothing training behind)
        os.kill(pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=30)
    assert not survivors, "a worker outlived the experiment"
    assert proc.returncode == 130, out + err
    assert "lenet5: experiment train-size interrupted" in err and "Traceback" not in err
    runs = tmp_path / "runs" / "train-size"
    assert (runs / "n100.result.json").exists() and (runs / "n200" / "checkpoint.npz").exists()
    assert not (runs / "n200.result.json").exists()

    env.pop("SLOW_RUNS")
    again = subprocess.run(command + ["--reuse"], capture_output=True, text=True, timeout=120,
                           cwd=tmp_path, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "[n100] reusing" in again.stdout and "[n200] resuming" in again.stdout


def test_a_rerun_without_reuse_or_overwrite_never_trains_over_saved_runs(tmp_path):
    from lenet5.errors import Lenet5Error

    opts = runner.Options(processes=1, runs=tmp_path / "runs", log=lambda line: None)
    jobs = [pool.Job(k, "test_reliability_experiments:job_record", {"out": str(tmp_path)}) for k in "ab"]
    pool.run_jobs(jobs, opts, "demo")
    (tmp_path / "a").unlink()
    with pytest.raises(Lenet5Error) as e:
        pool.run_jobs(jobs, opts, "demo")
    assert str(e.value) == (f"{tmp_path / 'runs' / 'demo'} already holds runs of experiment demo (a, b): "
                            "pass --reuse to continue from them or --overwrite to start again")
    assert not (tmp_path / "a").exists()  # nothing ran
    # an interrupted run's folder (a checkpoint, no result yet) counts as well
    (tmp_path / "runs" / "demo" / "c").mkdir()
    (tmp_path / "runs" / "demo" / "c" / "checkpoint.npz").write_bytes(b"x")
    with pytest.raises(Lenet5Error, match=r"\(c\): pass --reuse"):
        pool.run_jobs([pool.Job("c", "test_reliability_experiments:job_record", {"out": str(tmp_path)})],
                      opts, "demo")
    opts.overwrite = True
    assert pool.run_jobs(jobs, opts, "demo") == {"a": {"key": "a"}, "b": {"key": "b"}}
    assert (tmp_path / "a").exists()
    opts.reuse = True
    with pytest.raises(Lenet5Error, match="pass one"):
        pool.run_jobs(jobs, opts, "demo")


def test_experiment_all_refuses_saved_runs_before_anything_trains(here, capsys):
    from reliability_tools import one_line_error

    from lenet5.experiments import train_size

    key = train_size.jobs(runner.Options())[0].key  # (the third experiment of `all`)
    saved = here / "runs" / "experiments" / "train-size" / f"{key}.result.json"
    saved.parent.mkdir(parents=True)
    saved.write_text("{}")
    err = one_line_error(capsys, ["experiment", "all", "--processes", "1"])
    assert f"{Path('runs') / 'experiments' / 'train-size'} already holds runs of experiment train-size ({key})" in err
    assert "--overwrite" in err
    assert sorted(p.name for p in (here / "runs" / "experiments").iterdir()) == ["train-size"]
    assert not (here / "results").exists()


@pytest.mark.parametrize("argv, message", [
    (["curves", "--rates-only"], "experiment curves does not use --rates-only (of the flags only some "
                                 "experiments use, it takes --seeds, --epochs)"),
    (["sdlm", "--only", "boosted"], "experiment sdlm does not use --only (of the flags only some "
                                    "experiments use, it takes --seeds, --epochs, --rates-only)"),
    (["curves", "--checkpoint", "x.npz"], "experiment curves does not use --checkpoint"),
    (["rejection", "--seeds", "1", "--epochs", "3"], "experiment rejection does not use --seeds, --epochs "
                                                    "(of the flags only some experiments use, it takes --checkpoint)"),
    (["train-size", "--seeds", "0,1"], "experiment train-size trains one seed: give --seeds N, not 0,1"),
])
def test_a_flag_the_experiment_does_not_use_is_refused(here, capsys, argv, message):
    from reliability_tools import one_line_error

    err = one_line_error(capsys, ["experiment", *argv, "--tiny"])
    assert message in err
    assert not (here / "runs").exists()  # refused before anything ran


def test_experiment_all_gives_each_experiment_the_flags_it_uses():
    """`all --epochs 2 --seeds 0,1 --only lenet4`: the flags go to the experiments that use them
    (rejection gets none of them, one-seed experiments the first seed), none is refused."""
    from lenet5.experiments import NAMES, module

    opts = runner.Options(epochs=2, seeds=(0, 1), only=("lenet4",), checkpoint="x.npz")
    for name in NAMES:
        suited = runner.suited(name, opts)
        exp = module(name)
        assert suited.epochs == (2 if "epochs" in exp.FLAGS else None)
        assert suited.only == (("lenet4",) if name == "fig9" else ())
        assert suited.checkpoint == ("x.npz" if name == "rejection" else None)
        assert suited.seeds == ((0, 1) if "seeds" in exp.FLAGS else (0,) if "seed" in exp.FLAGS else ())
        for field, flag in runner.FLAG_NAMES.items():  # what check() would refuse
            assert not getattr(suited, field) or field in runner.takes(exp), (name, flag)
    assert runner.suited("rejection", opts).seeds == () and runner.suited("train-size", opts).seeds == (0,)
