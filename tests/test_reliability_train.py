"""`lenet5 train` never loses work or misleads: run folders, full disks, resume, divergence,
Ctrl-C, flags. Small data (2,000 images or fewer, 1-2 passes), each test in its own folder."""
import errno
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from argparse import Namespace

import numpy as np
import pytest

from lenet5 import LeNet5, Lenet5Error
from lenet5.cli import main
from lenet5.commands import train as train_command
from lenet5.commands.evaluate import reference_checkpoint
from lenet5.training import rundir, warmup
from lenet5.training.config import RECIPES, TrainConfig
from lenet5.training.interruption import Interrupted
from lenet5.training.trainer import Trainer

N = 1000  # training images per run


@pytest.fixture
def cli(tmp_path, mnist_dir, monkeypatch, capsys):
    """main(["train", ...]) in tmp_path on the test data, quiet; returns (code, out, err)."""
    monkeypatch.chdir(tmp_path)

    def run(*args, size=N):
        sized = ("--train-size", str(size)) if size and "--resume" not in args else ()
        code = main(["train", "--data-dir", str(mnist_dir), "--quiet", *sized, *args])
        out, err = capsys.readouterr()
        return code, out, err
    return run


def one_line_error(err, *parts):
    assert err.startswith("lenet5: error: ") and err.count("\n") == 1, err
    for part in parts:
        assert part in err, err


def small(mnist, n_train=N, n_test=500):
    (tx, ty), (vx, vy) = mnist
    return (tx[:n_train], ty[:n_train]), (vx[:n_test], vy[:n_test])


QUIET = dict(progress=False, log=lambda line: None)


# ---------------------------------------------------------------- the run folder

def test_out_that_is_a_file_is_refused_before_training(cli, tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    code, _, err = cli("--epochs", "1", "--out", "taken")
    assert code == 2
    one_line_error(err, "taken is a file, not a folder")


def test_unwritable_folder_is_refused_before_loading_data(cli, monkeypatch):
    def denied(path, suffix=".tmp"):
        raise PermissionError(errno.EACCES, "Permission denied", str(path))

    monkeypatch.setattr(rundir, "open_temp_beside", denied)
    monkeypatch.setattr(train_command, "load_data", lambda d: pytest.fail("data loaded before the check"))
    code, _, err = cli("--epochs", "1", "--out", "ro")
    assert code == 2
    one_line_error(err, "cannot write to run folder ro: Permission denied; nothing was trained")


def test_too_little_disk_space_is_refused_before_training(cli, monkeypatch):
    monkeypatch.setattr(rundir.shutil, "disk_usage", lambda p: Namespace(total=10**9, used=10**9, free=1000))
    code, _, err = cli("--epochs", "1", "--out", "full")
    assert code == 2
    one_line_error(err, "has 1,000 bytes free; a checkpoint needs about", "nothing was trained")


def enospc_on(monkeypatch, target, name, after=0):
    """Make `target.name` (a files helper as imported there) raise ENOSPC from its call after+1
    on for the run folder (the kernels' warm-up writes elsewhere)."""
    real, calls = getattr(target, name), []

    def failing(path, *args):
        if "lenet5-warmup-" not in str(path):
            calls.append(path)
        if len(calls) > after:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, *args)
    monkeypatch.setattr(target, name, failing)


def test_full_disk_at_the_checkpoint_says_what_was_and_was_not_saved(cli, tmp_path, monkeypatch):
    import lenet5.core.model

    enospc_on(monkeypatch, lenet5.core.model, "save_npz_atomic", after=1)  # pass 1 saves, pass 2 fails
    code, _, err = cli("--epochs", "2", "--out", "run")
    assert code == 2
    one_line_error(err, "cannot write run/checkpoint.npz: No space left on device; pass 2 (test error",
                   "was not saved; the last saved checkpoint is run/checkpoint.npz (after pass 1)")
    # the metrics never describe a pass whose checkpoint is missing
    assert [r["epoch"] for r in json.loads((tmp_path / "run" / "metrics.json").read_text())] == [1]
    _, state = LeNet5.load(tmp_path / "run" / "checkpoint.npz", with_state=True)
    assert int(state["state.epoch"]) == 2 and int(state["state.position"]) == 0


def test_full_disk_in_pass_one_says_nothing_was_saved(cli, tmp_path, monkeypatch):
    import lenet5.core.model

    enospc_on(monkeypatch, lenet5.core.model, "save_npz_atomic")
    code, _, err = cli("--epochs", "1", "--out", "run")
    assert code == 2
    one_line_error(err, "pass 1 (test error", "nothing of this run has been saved in run yet")
    assert rundir.run_files(tmp_path / "run") == []


def test_checkpoint_is_written_before_the_metrics(cli, tmp_path, monkeypatch):
    import lenet5.training.run_checkpoint

    enospc_on(monkeypatch, lenet5.training.run_checkpoint, "write_json_atomic")
    code, _, err = cli("--epochs", "1", "--out", "run")
    assert code == 2
    one_line_error(err, "cannot write the metrics in run: No space left on device; the last saved "
                   "checkpoint is run/checkpoint.npz (after pass 1) (resuming from it writes them again)")
    _, state = LeNet5.load(tmp_path / "run" / "checkpoint.npz", with_state=True)
    assert len(json.loads(str(state["state.history"]))) == 1


def test_a_folder_holding_another_run_is_refused_unless_overwrite(cli, tmp_path):
    assert cli("--epochs", "1", "--out", "run", "--optimizer", "sgd")[0] == 0
    first = (tmp_path / "run" / "checkpoint.npz").read_bytes()
    code, _, err = cli("--epochs", "1", "--out", "run", "--seed", "1")
    assert code == 2
    one_line_error(err, "run folder run already holds another run (checkpoint.npz, metrics.json, "
                   "metrics.csv); continue it with --resume run/checkpoint.npz, replace it with "
                   "--overwrite, or choose another --out")
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() == first
    assert cli("--epochs", "1", "--out", "run", "--seed", "1", "--overwrite")[0] == 0
    assert (tmp_path / "run" / "checkpoint.npz").read_bytes() != first


def test_default_run_folders_are_unique_within_a_second(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir.time, "strftime", lambda fmt: "20240101-120000")
    folders = [rundir.new_run_dir(tmp_path) for _ in range(3)]
    assert [f.name for f in folders] == ["20240101-120000", "20240101-120000-2", "20240101-120000-3"]


def test_two_default_runs_get_two_folders(cli, tmp_path):
    for _ in range(2):
        assert cli("--epochs", "1", size=300)[0] == 0
    runs = sorted((tmp_path / "runs").iterdir())
    assert len(runs) == 2 and all((r / "checkpoint.npz").exists() for r in runs)


def test_a_locked_folder_is_refused(cli, tmp_path):
    """Another process holds the run folder's lock: a second training there stops at once."""
    folder = tmp_path / "run"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", "import fcntl, os, sys, time\n"
         f"fd = os.open({str(folder / rundir.LOCK_NAME)!r}, os.O_RDWR | os.O_CREAT)\n"
         "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        code, _, err = cli("--epochs", "1", "--out", "run")
    finally:
        holder.communicate("", timeout=10)
    assert code == 2
    one_line_error(err, "run folder run is in use: another training is writing to it")
    assert rundir.run_files(folder) == []


def test_the_lock_is_held_while_a_run_writes(mnist, tmp_path):
    with rundir.RunLock(tmp_path):
        with pytest.raises(Lenet5Error, match="is in use"):
            Trainer(TrainConfig(epochs=1, train_size=300), small(mnist, 300), tmp_path, **QUIET).run()
    Trainer(TrainConfig(epochs=1, train_size=300), small(mnist, 300), tmp_path, **QUIET).run()


# ---------------------------------------------------------------- resume

@pytest.fixture(scope="module")
def pass_one(mnist, tmp_path_factory):
    """The checkpoint of a finished one-pass SGD run (made once for this module)."""
    folder = tmp_path_factory.mktemp("pass-one")
    config = TrainConfig(epochs=1, train_size=N, optimizer="sgd")
    Trainer(config, small(mnist), folder, **QUIET).run()
    return (folder / "checkpoint.npz").read_bytes()


@pytest.fixture
def saved_run(cli, tmp_path, pass_one):
    """That run in ./run, as `lenet5 train --epochs 1 --optimizer sgd --out run` leaves it."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "checkpoint.npz").write_bytes(pass_one)
    return "run/checkpoint.npz"


@pytest.mark.parametrize("flag,value,saved", [
    ("--seed", "3", "0"), ("--dtype", "float64", "float32"), ("--train-size", "500", str(N)),
    ("--optimizer", "sdlm", "sgd"), ("--c3", "full", "table"), ("--batch-size", "8", "1"),
])
def test_resume_refuses_a_conflicting_flag(cli, saved_run, flag, value, saved):
    code, _, err = cli("--resume", saved_run, "--epochs", "2", flag, value)
    assert code == 2
    one_line_error(err, f"conflict with them: {flag} {value} (the checkpoint has {saved})")


def test_resume_honours_epochs_and_lr(cli, saved_run, tmp_path):
    code, out, _ = cli("--resume", saved_run, "--epochs", "2", "--lr", "0.002")
    assert code == 0
    assert "resuming with --epochs 2 (was 1), --lr 0.002 (was 0.001)" in out
    _, state = LeNet5.load(tmp_path / saved_run, with_state=True)
    assert json.loads(str(state["state.config"]))["lr"] == 0.002
    assert [r["lr"] for r in json.loads(str(state["state.history"]))] == [0.001, 0.002]


def test_resume_with_nothing_left_to_do_says_so(cli, saved_run):
    code, _, err = cli("--resume", saved_run)
    assert code == 2
    one_line_error(err, "has finished 1 passes and it was set to run 1: nothing to do; give --epochs N")


def test_lr_under_sdlm_is_an_error_also_on_resume(cli, saved_run, tmp_path):
    code, _, err = cli("--epochs", "1", "--lr", "0.01", "--out", "new")
    one_line_error(err, "--lr is plain SGD's learning rate", "nothing with --optimizer sdlm")
    assert code == 2 and not (tmp_path / "new").exists()
    code, _, err = cli("--resume", saved_run, "--epochs", "2", "--mu", "2")
    assert code == 2
    one_line_error(err, "--mu is SDLM's damping; sgd steps by --lr")


def test_interrupt_prints_the_whole_resume_command_which_works(cli, tmp_path, mnist_dir, monkeypatch):
    real = Trainer._train_slice

    def interrupt_after_one_chunk(self, idx, losses):
        real(self, idx, losses)
        if len(idx) > warmup.WARMUP_IMAGES:  # what Ctrl-C does, in the run proper
            self.stop.request()
    monkeypatch.setattr(Trainer, "_train_slice", interrupt_after_one_chunk)
    code, _, err = cli("--epochs", "1", "--out", "run")
    assert code == 130
    assert "interrupted in epoch 1 after 500 of 1,000 samples; saved run/checkpoint.npz" in err
    hint = err.split("resume with: ")[1].strip()
    data = shlex.quote(str(mnist_dir))
    assert hint == f"lenet5 train --resume run/checkpoint.npz --data-dir {data} --quiet"
    monkeypatch.setattr(Trainer, "_train_slice", real)
    assert main(shlex.split(hint)[1:]) == 0
    _, state = LeNet5.load(tmp_path / "run" / "checkpoint.npz", with_state=True)
    assert int(state["state.epoch"]) == 2


def test_a_resumed_checkpoint_outside_a_run_folder_gets_a_new_one(cli, saved_run, tmp_path, monkeypatch):
    """Resuming a checkpoint that sits in the installed package (like the shipped reference)
    writes to a new run folder, never into the package."""
    package = tmp_path / "package"
    package.mkdir()
    (package / "checkpoint.npz").write_bytes((tmp_path / saved_run).read_bytes())
    monkeypatch.setattr(rundir, "PACKAGE_DIR", package)
    before = (package / "checkpoint.npz").read_bytes()
    code, out, _ = cli("--resume", str(package / "checkpoint.npz"), "--epochs", "2")
    assert code == 0
    assert sorted(os.listdir(package)) == ["checkpoint.npz"]
    assert (package / "checkpoint.npz").read_bytes() == before
    [folder] = list((tmp_path / "runs").iterdir())
    assert f"in a new run folder, runs/{folder.name}" in out
    assert len(json.loads((folder / "metrics.json").read_text())) == 2
    code, _, err = cli("--resume", str(package / "checkpoint.npz"), "--epochs", "2", "--out", str(package))
    assert code == 2
    one_line_error(err, "is inside the installed lenet5 package")


def test_the_shipped_reference_is_never_a_run_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = Namespace(out=None, resume=str(reference_checkpoint()))
    assert train_command.run_folder(args) is None  # a new folder under runs/
    with pytest.raises(Lenet5Error, match="inside the installed lenet5 package"):
        train_command.run_folder(Namespace(out=str(reference_checkpoint().parent), resume=None))


def test_a_checkpoint_from_other_data_is_refused(mnist, tmp_path):
    config = TrainConfig(epochs=1, train_size=600, optimizer="sgd")
    trainer = Trainer(config, small(mnist, 600), tmp_path, **QUIET)
    trainer._train_slice = lambda idx, losses, real=trainer._train_slice: (real(idx, losses),
                                                                            trainer.stop.request())
    with pytest.raises(Interrupted):
        trainer.run()
    net, state = LeNet5.load(tmp_path / "checkpoint.npz", with_state=True)
    with pytest.raises(Lenet5Error, match="pass of 600 samples, but this run has 300"):
        Trainer(TrainConfig(epochs=1, train_size=300, optimizer="sgd"), small(mnist, 300), tmp_path,
                net=net, state=state, **QUIET).run()


# ---------------------------------------------------------------- divergence

@pytest.mark.parametrize("settings,cause,advice", [
    (dict(optimizer="sgd", lr=0.1), "the loss rose to", "lower --lr (it is 0.1; the default is 0.001)"),
    (dict(RECIPES["damped"], mu=0.02), "the loss rose to",  # the printed init at the printed mu
     "raise --mu, SDLM's damping (it is 0.02), or use a recipe that is stable at its own mu "
     "(--recipe lush, standardised or damped)"),
])
def test_divergence_names_the_cause_and_the_fix(mnist, tmp_path, settings, cause, advice):
    trainer = Trainer(TrainConfig(epochs=1, train_size=N, **settings), small(mnist), tmp_path, **QUIET)
    with pytest.raises(Lenet5Error) as e:
        trainer.run()
    message = str(e.value)
    assert message.startswith(f"training diverged: {cause}") and "untrained network's" in message
    assert "nothing of this run has been saved" in message and advice in message
    assert rundir.run_files(tmp_path) == []  # the diverged network is not saved


def test_absurd_weights_are_divergence(mnist, tmp_path):
    trainer = Trainer(TrainConfig(epochs=1, train_size=N), small(mnist), tmp_path, **QUIET)
    real = trainer._train_slice

    def blow_up(idx, losses):
        real(idx, losses)
        trainer.net.theta[7] = 7e33
    trainer._train_slice = blow_up
    with pytest.raises(Lenet5Error, match=r"diverged: weights grew to 7e\+33 .* at epoch 1, sample 500"):
        trainer.run()


def test_a_nan_loss_is_divergence(mnist, tmp_path):
    trainer = Trainer(TrainConfig(epochs=1, train_size=N), small(mnist), tmp_path, **QUIET)
    real = trainer._train_slice

    def nan_at_sample_620(idx, losses):
        real(idx, losses)
        if len(losses) > 120 and trainer.position == 500:
            losses[119] = np.nan
    trainer._train_slice = nan_at_sample_620
    with pytest.raises(Lenet5Error, match=r"diverged: loss became NaN/inf at epoch 1, sample 620 of 1,000"):
        trainer.run()


def test_divergence_in_pass_two_names_the_saved_pass_one(cli, saved_run):
    code, _, err = cli("--resume", saved_run, "--epochs", "2", "--lr", "0.1")
    assert code == 2
    one_line_error(err, "training diverged: the loss rose to", "at epoch 2",
                   "the last saved checkpoint is run/checkpoint.npz (after pass 1)", "lower --lr")


# ---------------------------------------------------------------- flags

@pytest.mark.parametrize("args,message", [
    (("--threads", "0"), "--threads must be between 1 and"),
    (("--epochs", "0"), "--epochs must be at least 1, got 0"),
    (("--seed", "-1"), "--seed must be at least 0"),
    (("--mu", "inf"), "--mu must be a finite number in (0, 1000], got inf"),
    (("--mu", "nan"), "--mu must be a finite number"),
    (("--j", "nan"), "--j must be a finite number in [0, 50], got nan"),
    (("--j", "-1"), "--j must be a finite number in [0, 50]"),
    (("--optimizer", "sgd", "--lr", "1e9"), "--lr must be a finite number in (0, 1], got 1000000000.0"),
    (("--optimizer", "sgd", "--lr", "nan"), "--lr must be a finite number"),
    (("--loss", "mse", "--j", "2"), "--j is the MAP criterion's constant; it does nothing with --loss mse"),
])
def test_bad_flags_are_clear_errors_before_anything_is_written(cli, tmp_path, args, message):
    code, _, err = cli("--epochs", "1", *args) if "--epochs" not in args else cli(*args)
    assert code == 2
    one_line_error(err, message)
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_train_size_beyond_the_data_is_an_error(cli, tmp_path):
    code, _, err = cli("--epochs", "1", size=999_999)
    assert code == 2
    one_line_error(err, "--train-size 999,999 is more than the 60,000 training images")
    assert not any((tmp_path / "runs").iterdir())  # no empty run folder left behind


# ---------------------------------------------------------------- Ctrl-C twice

def double_ctrl_c_at_evaluation(monkeypatch, on_call):
    """Replace error_pct: on its `on_call`-th call for the run (not the warm-up), two real
    SIGINTs arrive."""
    import lenet5.training.trainer

    real, calls = lenet5.training.trainer.error_pct, []

    def evaluate(net, images, labels, threads=None):
        if len(images) > warmup.WARMUP_IMAGES:
            calls.append(1)
        if len(calls) == on_call:
            calls.append("fired")
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return real(net, images, labels, threads)
    monkeypatch.setattr(lenet5.training.trainer, "error_pct", evaluate)


def test_double_ctrl_c_in_the_first_evaluation_says_nothing_was_saved(cli, tmp_path, monkeypatch):
    double_ctrl_c_at_evaluation(monkeypatch, on_call=1)
    code, _, err = cli("--epochs", "1", "--out", "run")
    assert code == 130
    assert ("stopped by a second Ctrl-C during the end-of-pass evaluation of pass 1: nothing from "
            "pass 1 was saved; nothing of this run has been saved in run yet") in err
    assert "nothing to resume" in err and "Traceback" not in err
    assert rundir.run_files(tmp_path / "run") == []


def test_double_ctrl_c_in_a_later_evaluation_names_the_last_checkpoint(cli, tmp_path, monkeypatch):
    double_ctrl_c_at_evaluation(monkeypatch, on_call=3)  # two calls per pass: pass 2's first
    code, _, err = cli("--epochs", "2", "--out", "run")
    assert code == 130
    assert ("during the end-of-pass evaluation of pass 2: nothing from pass 2 was saved; the last "
            "saved checkpoint is run/checkpoint.npz (after pass 1)") in err
    assert "resume with: lenet5 train --resume run/checkpoint.npz --data-dir" in err


# ---------------------------------------------------------------- first contact

def test_compilation_is_announced_and_timed_apart_from_pass_one(cli, monkeypatch):
    monkeypatch.setattr(warmup, "NOTICE_AFTER", 0.05)  # as if the cache were empty:
    real = Trainer._train_slice

    def slow(self, idx, losses):  # the warm-up now outlasts NOTICE_AFTER
        time.sleep(0.2)
        real(self, idx, losses)
    monkeypatch.setattr(Trainer, "_train_slice", slow)
    code, out, _ = cli("--epochs", "1", "--out", "run", size=300)
    assert code == 0
    notice = out.index("compiling kernels (first run only, cached afterwards)")
    assert notice < out.index("kernels compiled in") < out.index("epoch   1")


def test_warm_cache_says_nothing_about_compiling(cli):
    code, out, _ = cli("--epochs", "1", "--out", "run", size=300)
    assert code == 0 and "compiling" not in out


def test_resume_hint_keeps_the_run_folder_when_nothing_was_saved_there(cli, saved_run, mnist_dir,
                                                                        monkeypatch):
    double_ctrl_c_at_evaluation(monkeypatch, on_call=1)
    code, _, err = cli("--resume", saved_run, "--epochs", "2", "--out", "other")
    assert code == 130
    data = shlex.quote(str(mnist_dir))
    assert (f"resume with: lenet5 train --resume run/checkpoint.npz --data-dir {data} --out other "
            "--quiet") in err
