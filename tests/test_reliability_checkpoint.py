"""Checkpoints are checked before they are trusted (state entries, prototypes, sizes before
decompressing), and the Python API refuses input it cannot use with a clear Lenet5Error."""
import io
import json
import zipfile

import numpy as np
import pytest

from lenet5 import LeNet5, Lenet5Error
from lenet5.cli import main
from lenet5.core import checkpoint_format
from lenet5.core.architecture import PROTOTYPES


@pytest.fixture(scope="module")
def net():
    return LeNet5.init(seed=0)


STATE = {"state.config": json.dumps({"epochs": 2, "seed": 0}), "state.history": json.dumps([]),
         "state.epoch": 1, "state.position": 0}


def write(path, arrays):
    np.savez(path, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


def saved_with(tmp_path, net, **changes):
    """A checkpoint of `net` with STATE, entries changed (None: removed)."""
    arrays = dict(net.arrays(), **STATE)
    for name, value in changes.items():
        name = name.replace("__", ".")
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    return write(tmp_path / "ckpt.npz", arrays)


def test_a_valid_state_loads(tmp_path, net):
    _, state = LeNet5.load(saved_with(tmp_path, net), with_state=True)
    assert int(state["state.epoch"]) == 1


@pytest.mark.parametrize("changes,message", [
    (dict(state__config="{not json"), "state.config must be a JSON object"),
    (dict(state__config=json.dumps([1, 2])), "state.config must be a JSON object"),
    (dict(state__history="[{]"), "state.history must be a JSON list"),
    (dict(state__epoch="three"), "state.epoch must be the pass in progress, an integer >= 1"),
    (dict(state__epoch=1.5), "state.epoch must be"),
    (dict(state__epoch=0), "state.epoch must be"),
    (dict(state__position=-1), "state.position must be"),
    (dict(state__eta=np.full(5, 0.1)), "state.eta must be"),
    (dict(state__epoch_seconds=np.nan), "state.epoch_seconds must be"),
    (dict(state__surprise=1), "unknown training-state entries ['state.surprise']"),
    (dict(state__epoch=4), "state.epoch is 4 but state.history lists 0 finished passes"),
    (dict(state__position=10), "saved in the middle of a pass but"),
])
def test_bad_training_state_is_refused(tmp_path, net, changes, message):
    with pytest.raises(Lenet5Error, match=message.replace("[", r"\[").replace("]", r"\]")):
        LeNet5.load(saved_with(tmp_path, net, **changes), with_state=True)


def test_resume_from_a_damaged_state_is_one_line_exit_2(tmp_path, net, capsys):
    path = saved_with(tmp_path, net, state__config="{oops")
    assert main(["train", "--resume", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "state.config must be a JSON object" in err


@pytest.mark.parametrize("value", [1e30, 0.5, 0.0])
def test_prototypes_must_be_plus_minus_one(tmp_path, net, value):
    prototypes = net.params[PROTOTYPES].copy()
    prototypes[3, :5] = value
    with pytest.raises(Lenet5Error, match=r"OUT.prototypes must be \(10, 84\) of \+1 and -1"):
        LeNet5.load(saved_with(tmp_path, net, OUT__prototypes=prototypes))


def zipped(path, entries):
    """A zip of {name: bytes}, deflated (zeros compress ~1000:1)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def npy(array):
    out = io.BytesIO()
    np.save(out, array)
    return out.getvalue()


def test_an_entry_too_large_decompressed_is_refused_before_reading(tmp_path, net, monkeypatch):
    big = npy(np.zeros(checkpoint_format.MAX_ENTRY_BYTES // 8 + 1))
    entries = {f"{k}.npy": npy(v) for k, v in net.arrays().items()}
    path = zipped(tmp_path / "bomb.npz", dict(entries, **{"state.junk.npy": big}))
    assert path.stat().st_size < 1_000_000  # small on disk, 16 MB unpacked
    read = []
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: read.append(1))
    with pytest.raises(Lenet5Error, match=r"entry state.junk.npy is 16,777,352 bytes decompressed; "
                       r"no checkpoint entry exceeds 16,777,216"):
        LeNet5.load(path)
    assert read == []  # refused from the zip directory alone


def test_too_much_in_total_or_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_format, "MAX_TOTAL_BYTES", 1000)
    path = zipped(tmp_path / "a.npz", {f"x{i}.npy": npy(np.zeros(100)) for i in range(3)})
    with pytest.raises(Lenet5Error, match="bytes decompressed; a checkpoint holds at most 1,000"):
        LeNet5.load(path)
    path = zipped(tmp_path / "b.npz", {f"x{i}.npy": npy(np.zeros(1)) for i in range(65)})
    with pytest.raises(Lenet5Error, match="65 entries; a checkpoint has at most 64"):
        LeNet5.load(path)


def test_a_header_that_promises_more_than_the_entry_holds_is_refused(tmp_path, net):
    """The .npy header says 10^12 floats; the entry holds 8 bytes: refused before any allocation."""
    lying = npy(np.zeros(1)).replace(b"(1,)", b"(1000000000000,)")
    entries = {f"{k}.npy": npy(v) for k, v in net.arrays().items()}
    path = zipped(tmp_path / "lie.npz", dict(entries, **{"C1.bias.npy": lying}))
    with pytest.raises(Lenet5Error, match="entry C1.bias.npy claims 8,000,000,000,000 bytes of data"):
        LeNet5.load(path)


def test_entries_that_are_not_arrays_are_refused(tmp_path):
    path = zipped(tmp_path / "odd.npz", {"readme.txt": b"hello", "a.npy": npy(np.zeros(2))})
    with pytest.raises(Lenet5Error, match=r"entries that are not single .npy arrays: \['readme.txt'\]"):
        LeNet5.load(path)


def test_a_trainer_checkpoint_round_trips_through_the_checks(tmp_path, mnist):
    from lenet5.training.trainer import TrainConfig, Trainer

    (tx, ty), (vx, vy) = mnist
    trainer = Trainer(TrainConfig(epochs=1, train_size=600), ((tx[:600], ty[:600]), (vx[:100], vy[:100])),
                      tmp_path, progress=False, log=lambda line: None)
    trainer.stop.request()  # interrupted after the first chunk: every state entry is written
    with pytest.raises(Exception, match="interrupted in epoch 1 after 500"):
        trainer.run()
    _, state = LeNet5.load(trainer.checkpoint_path, with_state=True)
    # every entry but the one only an end-of-pass save writes (tests/test_train.py) and the kept
    # Hessian of hessian_passes > 1 (tests/test_sdlm.py)
    assert set(state) == set(checkpoint_format.STATE_ENTRIES) - {"state.pending_row", "state.hessian"}


@pytest.mark.parametrize("change, message", [
    ({"state.pending_row": np.array('{"epoch": 2}')}, "pending_row must be the pass before state.epoch"),
    ({"state.history": np.array('[{"epoch": 1}]')}, "state.epoch is 2 but state.history lists 2"),
    ({"state.position": np.array(5)}, "pending_row must be the pass before state.epoch"),
])
def test_a_pending_row_must_fit_the_pass_saved(tmp_path, change, message):
    """state.pending_row (a pass saved before its evaluation) is the pass just before state.epoch,
    at the start of the next pass, and counts as finished."""
    net = LeNet5.init(seed=0)
    state = {"state.history": np.array("[]"), "state.epoch": np.array(2), "state.position": np.array(0),
             "state.pending_row": np.array('{"epoch": 1}')}
    net.save(tmp_path / "ok.npz", extra=state)
    assert "state.pending_row" in LeNet5.load(tmp_path / "ok.npz", with_state=True)[1]
    net.save(tmp_path / "bad.npz", extra={**state, **change})
    with pytest.raises(Lenet5Error, match=message):
        LeNet5.load(tmp_path / "bad.npz")


# ---------------------------------------------------------------- the Python API

BAD_IMAGES = {
    "NaN": (np.full((2, 32, 32), np.nan), r"NaN or infinite values \(first in image 0\)"),
    "object": (np.zeros((2, 32, 32), dtype=object), "real floating-point numbers, got dtype object"),
    "uint8": (np.zeros((2, 32, 32), dtype=np.uint8),
              r"integers \(uint8\), i.e. raw pixels: map raw uint8 .* lenet5.data.mnist.preprocess"),
    "0..255 floats": (np.full((2, 32, 32), 255.0), r"reach 255, .* lenet5.data.mnist.preprocess"),
    "complex": (np.zeros((2, 32, 32), dtype=complex), "got dtype complex128"),
    "empty": (np.zeros((0, 32, 32)), "no images: the batch is empty"),
}


@pytest.mark.parametrize("kind", BAD_IMAGES)
def test_forward_and_gradients_refuse_unusable_images(net, kind):
    images, message = BAD_IMAGES[kind]
    with pytest.raises(Lenet5Error, match=message):
        net.forward(images)
    with pytest.raises(Lenet5Error, match=message):
        net.loss_and_gradients(images, np.zeros(len(images), dtype=int))


def test_preprocessed_digits_pass(net, mnist):
    y = net.forward(mnist[1][0][:3])
    assert y.shape == (3, 10) and np.isfinite(y).all()


def test_save_to_a_folder_is_one_clear_error(net, tmp_path):
    with pytest.raises(Lenet5Error, match=f"cannot save to {tmp_path}: it is a folder; give a file name"):
        net.save(tmp_path)
    assert list(tmp_path.iterdir()) == []
