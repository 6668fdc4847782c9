"""Training: the paper's schedule, a real short run on MNIST, resume == uninterrupted, NaN."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lenet5 import LeNet5, Lenet5Error
from lenet5.cli import main
from lenet5.core.prototypes import BITMAP_COLS, BITMAP_ROWS, DIGIT_BITMAPS, parse_bitmap, rbf_prototypes
from lenet5.training.config import RECIPES, TrainConfig
from lenet5.training.interruption import Interrupted
from lenet5.training.step_sizes import sdlm_epsilon
from lenet5.training.trainer import Trainer


def test_prototypes_are_ten_distinct_7x12_bitmaps():
    bitmaps = [parse_bitmap(art) for art in DIGIT_BITMAPS]
    assert len(bitmaps) == 10
    assert all(b.shape == (BITMAP_ROWS, BITMAP_COLS) == (12, 7) for b in bitmaps)
    P = rbf_prototypes()
    assert P.shape == (10, 84) and set(np.unique(P)) == {-1.0, 1.0}
    distances = ((P[:, None] - P[None]) ** 2).sum(-1)
    assert (distances + np.eye(10) * 1e9).min() > 0  # pairwise distinct
    assert np.array_equal(LeNet5.init(seed=0, dtype=np.float64).prototypes, P)


def test_epsilon_schedule_is_the_papers():
    got = [sdlm_epsilon(e) for e in range(1, 21)]
    assert got == [5e-4] * 2 + [2e-4] * 3 + [1e-4] * 3 + [5e-5] * 4 + [1e-5] * 8


def test_lush_schedule_is_ten_passes_at_each_step():
    got = [sdlm_epsilon(e, "lush") for e in range(1, 31)]
    assert got == [1e-4] * 10 + [1e-5] * 10 + [1e-6] * 10


def test_the_schedule_is_a_checked_sdlm_setting():
    assert TrainConfig(schedule="lush").epsilon(11) == 1e-5
    with pytest.raises(Lenet5Error, match="unknown schedule 'weekly'"):
        TrainConfig(schedule="weekly").check()
    from lenet5.cli import build_parser
    from lenet5.commands.train import check_used, given_settings, new_config

    given = given_settings(build_parser().parse_args(["train", "--optimizer", "sgd", "--schedule", "lush"]))
    with pytest.raises(Lenet5Error, match="--schedule is SDLM's global step schedule; it does nothing"):
        check_used(new_config(given), given)


def test_a_run_steps_by_its_schedule_records_it_and_resume_keeps_it(mnist_dir, tmp_path, capsys):
    """--recipe lush: the start line names the schedule, the passes step at 1e-4, the
    checkpoint records it, and a --resume that asks for another schedule is refused."""
    common = ["--quiet", "--data-dir", str(mnist_dir)]
    out = tmp_path / "r"
    assert main(["train", "--recipe", "lush", "--epochs", "1", "--train-size", "1000", "--out", str(out),
                 *common]) == 0
    start = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("training "))
    assert "(recipe lush: --mu 0.02, --init lush, --inputs paper, --hessian-every 0, --schedule lush)" in start
    _, state = LeNet5.load(out / "checkpoint.npz", with_state=True)
    assert json.loads(str(state["state.config"]))["schedule"] == "lush"
    assert [row["lr"] for row in json.loads(str(state["state.history"]))] == [1e-4]
    refused = main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2", "--schedule", "paper",
                    *common])
    assert refused == 2 and "--schedule paper (the checkpoint has lush)" in capsys.readouterr().err


def test_a_checkpoint_from_before_the_schedule_setting_resumes_on_the_papers():
    from lenet5.training.config import saved_config

    old = TrainConfig(**RECIPES["damped"])
    text = json.dumps({k: v for k, v in json.loads(old.to_json()).items() if k != "schedule"})
    assert saved_config(text)["schedule"] == "paper"


def small(mnist, n_train, n_test=2000):
    (tx, ty), (vx, vy) = mnist
    return (tx[:n_train], ty[:n_train]), (vx[:n_test], vy[:n_test])


def test_short_real_run_learns(mnist, tmp_path):
    """One SDLM pass over 6,000 real MNIST digits: the whole pipeline on real data."""
    config = TrainConfig(epochs=1, seed=0)
    history = Trainer(config, small(mnist, 6000), tmp_path, progress=False, log=lambda s: None).run()
    assert len(history) == 1
    row = history[0]
    assert row["test_error_pct"] < 12.0, row  # chance is 90%
    assert row["train_error_pct"] < 12.0, row
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == history
    assert (tmp_path / "metrics.csv").read_text().startswith("epoch,lr,train_loss")
    # the checkpoint holds the trained network itself: it is not the initial draw, and it
    # scores exactly the test error the run reported
    net = LeNet5.load(tmp_path / "checkpoint.npz")
    assert not np.array_equal(net.theta, LeNet5.init(seed=0, scale=config.init).theta)
    (_, _), (test_x, test_y) = small(mnist, 6000)
    assert 100.0 * np.mean(net.predict(test_x) != test_y) == row["test_error_pct"]


@pytest.mark.parametrize("optimizer,batch", [("sdlm", 1), ("sgd", 1), ("sgd", 32)])
def test_resume_after_interrupt_equals_uninterrupted(mnist, tmp_path, optimizer, batch):
    config = dict(epochs=2, seed=3, optimizer=optimizer, batch_size=batch, train_size=1200)
    data = small(mnist, 1200, 300)
    quiet = dict(progress=False, log=lambda s: None)
    straight = Trainer(TrainConfig(**config), data, tmp_path / "a", **quiet)
    straight.run()

    interrupted = Trainer(TrainConfig(**config), data, tmp_path / "b", **quiet)
    original = interrupted._train_slice
    calls = []

    def slice_then_interrupt(idx, losses):
        original(idx, losses)
        calls.append(len(idx))
        if interrupted.epoch == 2 and len(calls) >= 2:
            interrupted.stop.request()  # what Ctrl-C does

    interrupted._train_slice = slice_then_interrupt
    with pytest.raises(Interrupted, match="epoch 2"):
        interrupted.run()
    net, state = LeNet5.load(tmp_path / "b" / "checkpoint.npz", with_state=True)
    assert 0 < int(state["state.position"]) < 1200
    saved = json.loads(str(state["state.config"]))
    resumed = Trainer(TrainConfig(**saved), data, tmp_path / "b", net=net, state=state, **quiet)
    history = resumed.run()
    assert np.array_equal(resumed.net.theta, straight.net.theta)
    assert [r["test_error_pct"] for r in history] == [r["test_error_pct"] for r in straight.history]


class Crash(BaseException):
    """The process dying (not an error the trainer handles)."""


@pytest.mark.slow
def test_each_pass_is_evaluated_on_its_own_parameters_while_the_next_trains(mnist, tmp_path):
    """Pass 1's errors come from the evaluation thread while pass 2 trains; they are those of
    pass 1's parameters, as a one-pass run (evaluated at once) gives them."""
    import lenet5.training.trainer

    config = dict(seed=4, train_size=1500)
    data, quiet = small(mnist, 1500, 3000), dict(progress=False, log=lambda s: None)
    one = Trainer(TrainConfig(epochs=1, **config), data, tmp_path / "one", **quiet)
    one.run()
    threads = []
    real = lenet5.training.trainer.error_pct

    def noting_the_thread(*args):
        import threading
        threads.append(threading.current_thread().name)
        return real(*args)

    lenet5.training.trainer.error_pct = noting_the_thread
    try:
        shown = []
        three = Trainer(TrainConfig(epochs=3, **config), data, tmp_path / "three", progress=False,
                        log=shown.append, evaluate_concurrently=True)
        history = three.run()
        one_core = Trainer(TrainConfig(epochs=3, **config), data, tmp_path / "one-core", progress=False,
                           log=lambda s: None, evaluate_concurrently=False)  # (--threads 1)
        one_core_history = one_core.run()
    finally:
        lenet5.training.trainer.error_pct = real
    beside = [t.startswith("lenet5-evaluation") for t in threads]
    assert beside == [True] * 4 + [False] * 2 + [False] * 6
    assert np.array_equal(one_core.net.theta, three.net.theta)
    assert [r["test_error_pct"] for r in one_core_history] == [r["test_error_pct"] for r in history]
    strip = ("seconds", "samples_per_s")
    assert {k: v for k, v in history[0].items() if k not in strip} == \
        {k: v for k, v in one.history[0].items() if k not in strip}
    assert [row["epoch"] for row in history] == [1, 2, 3] and len(shown) == 3
    assert [line.split()[1] for line in shown] == ["1", "2", "3"]
    assert json.loads((tmp_path / "three" / "metrics.json").read_text()) == history
    _, state = LeNet5.load(tmp_path / "three" / "checkpoint.npz", with_state=True)
    assert "state.pending_row" not in state and json.loads(str(state["state.history"])) == history


def test_a_pass_saved_before_its_evaluation_finished_resumes_to_the_same_run(mnist, tmp_path, monkeypatch):
    """The process dies right after pass 1 is saved, before its errors are known: the checkpoint
    holds pass 1 with its row pending, and --resume evaluates it first, then trains on to the
    uninterrupted run's weights and history."""
    import lenet5.training.evaluation

    config = TrainConfig(epochs=2, seed=5, train_size=1200)
    data, quiet = small(mnist, 1200, 500), dict(progress=False, log=lambda s: None)
    straight = Trainer(config, data, tmp_path / "a", **quiet)
    straight.run()

    def die(*args):
        raise Crash
    monkeypatch.setattr(lenet5.training.evaluation.EVALUATOR, "submit", die)
    with pytest.raises(Crash):
        Trainer(config, data, tmp_path / "b", evaluate_concurrently=True, **quiet).run()
    monkeypatch.undo()
    net, state = LeNet5.load(tmp_path / "b" / "checkpoint.npz", with_state=True)
    pending = json.loads(str(state["state.pending_row"]))
    assert pending["epoch"] == 1 and "test_error_pct" not in pending
    assert json.loads(str(state["state.history"])) == [] and int(state["state.epoch"]) == 2
    assert not (tmp_path / "b" / "metrics.json").exists()
    shown = []
    resumed = Trainer(config, data, tmp_path / "b", net=net, state=state, progress=False, log=shown.append)
    history = resumed.run()
    assert np.array_equal(resumed.net.theta, straight.net.theta)
    strip = ("seconds", "samples_per_s")
    assert [{k: v for k, v in r.items() if k not in strip} for r in history] == \
        [{k: v for k, v in r.items() if k not in strip} for r in straight.history]
    assert history[0]["seconds"] == pending["seconds"] and len(shown) == 2
    assert json.loads((tmp_path / "b" / "metrics.json").read_text()) == history


def test_divergence_stops_with_a_clear_message(mnist, tmp_path):
    config = TrainConfig(epochs=1, optimizer="sgd", lr=1.0, train_size=600)  # (--lr is at most 1)
    trainer = Trainer(config, small(mnist, 600, 100), tmp_path, progress=False, log=lambda s: None)
    with pytest.raises(Lenet5Error, match=r"diverged: .* at epoch 1, sample [\d,]+ of 600 .*lower --lr"):
        trainer.run()


def test_bad_configs_are_rejected(mnist, tmp_path):
    for bad in (dict(optimizer="adam"), dict(loss="hinge"), dict(optimizer="sdlm", batch_size=8),
                dict(batch_size=0), dict(mu=0.0)):
        with pytest.raises(Lenet5Error):
            Trainer(TrainConfig(**bad), small(mnist, 100, 10), tmp_path)


def run_cli(*args, env_extra=None, **kwargs):
    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "lenet5", *args], capture_output=True, text=True,
                          env=env, **kwargs)


@pytest.mark.slow
def test_cli_ctrl_c_saves_and_resume_finishes(mnist_dir, tmp_path):
    """A real SIGINT mid-run: exit 130, a resume hint, and --resume reaches the same weights."""
    common = ["--train-size", "6000", "--epochs", "3", "--seed", "1", "--data-dir", str(mnist_dir), "--quiet"]
    straight = run_cli("train", *common, "--out", str(tmp_path / "a"))
    assert straight.returncode == 0, straight.stderr
    assert "Python" not in straight.stderr
    proc = subprocess.Popen([sys.executable, "-m", "lenet5", "train", *common, "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while True:  # wait until epoch 1's row is out (shown while epoch 2 trains), then interrupt
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("epoch   1"):
            break
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "resume with: lenet5 train --resume" in err and "Traceback" not in err
    resumed = run_cli("train", "--resume", str(tmp_path / "b" / "checkpoint.npz"), "--quiet",
                      "--data-dir", str(mnist_dir))
    assert resumed.returncode == 0, resumed.stderr
    a = LeNet5.load(tmp_path / "a" / "checkpoint.npz")
    b = LeNet5.load(tmp_path / "b" / "checkpoint.npz")
    assert np.array_equal(a.theta, b.theta)


@pytest.mark.slow
def test_cli_sigterm_saves_like_ctrl_c(mnist_dir, tmp_path):
    """SIGTERM (a scheduler's or a `kill`'s stop) mid-pass: the pass so far is saved, exit 143
    (128 + 15) with a resume hint, and the saved checkpoint resumes."""
    common = ["--train-size", "30000", "--epochs", "2", "--seed", "1", "--data-dir", str(mnist_dir), "--quiet"]
    proc = subprocess.Popen([sys.executable, "-m", "lenet5", "train", *common, "--out", str(tmp_path / "b")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    while True:  # wait until pass 1's row is out (shown while pass 2 trains), then stop it
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if line.startswith("epoch   1"):
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted in epoch 2" in err and "Traceback" not in err
    assert "resume with: lenet5 train --resume" in err
    _, state = LeNet5.load(tmp_path / "b" / "checkpoint.npz", with_state=True)
    assert int(state["state.epoch"]) == 2 and int(state["state.position"]) > 0  # pass 2 so far is kept
    resumed = run_cli("train", "--resume", str(tmp_path / "b" / "checkpoint.npz"), "--quiet",
                      "--data-dir", str(mnist_dir))
    assert resumed.returncode == 0, resumed.stderr


@pytest.mark.slow
def test_cli_evaluate_prints_error_and_confusion(mnist_dir, tmp_path):
    net = LeNet5.init(seed=0)
    net.save(tmp_path / "net.npz")
    out = run_cli("evaluate", "--checkpoint", str(tmp_path / "net.npz"), "--data-dir", str(mnist_dir), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert np.sum(result["confusion"]) == 10_000
    assert result["errors"] == len(result["misclassified"]) == 10_000 - np.trace(result["confusion"])
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    out = run_cli("evaluate", "--checkpoint", str(bad), "--data-dir", str(mnist_dir))
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "not a valid .npz" in out.stderr


@pytest.mark.slow
def test_cli_train_arch_lenet1(mnist_dir, tmp_path):
    """--arch lenet1 trains LeNet-1 on the same engine and trainer: its softmax output and
    cross-entropy by default, its own sizes in the checkpoint."""
    out = run_cli("train", "--arch", "lenet1", "--train-size", "300", "--epochs", "1", "--quiet",
                  "--data-dir", str(mnist_dir), "--out", str(tmp_path / "l1"))
    assert out.returncode == 0, out.stderr
    assert "2,578" in out.stdout and "training sdlm/ce" in out.stdout
    net = LeNet5.load(tmp_path / "l1" / "checkpoint.npz")
    assert net.variant.arch == "lenet1" and net.params["OUT.weight"].shape == (10, 192)
    assert "C5.weight" not in net.params
    bad = run_cli("train", "--arch", "lenet4", "--output", "rbf", "--data-dir", str(mnist_dir),
                  "--out", str(tmp_path / "l4"))
    assert bad.returncode == 2 and "use output softmax" in bad.stderr and "Traceback" not in bad.stderr


def test_the_trainers_error_pct_is_predicts(mnist):
    """The trainer's per-pass evaluation (one engine batch, no per-call checks) against
    LeNet5.predict, for the shipped network and an untrained unit-input one."""
    from lenet5.core.architecture import Variant
    from lenet5.core.model import reference_checkpoint
    from lenet5.training.evaluation import error_pct

    images, labels = mnist[1][0][:700], mnist[1][1][:700]
    for net in (LeNet5.load(reference_checkpoint()), LeNet5.init(seed=2, variant=Variant(inputs="unit"))):
        x = np.ascontiguousarray(images, dtype=net.dtype)
        assert error_pct(net, x, labels) == 100.0 * float(np.mean(net.predict(x) != labels))
