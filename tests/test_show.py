"""`lenet5 show`: one digit through the network as a PNG, for a test image or your own file."""
import sys

import numpy as np
import pytest
from PIL import Image

from lenet5.cli import main
from lenet5.core.model import LeNet5, reference_checkpoint
from lenet5.tools.rejection import read_sidecar, top2_gap


@pytest.fixture
def data_env(mnist_dir, monkeypatch):
    monkeypatch.setenv("LENET5_DATA_DIR", str(mnist_dir))


def _png_size(path):
    with Image.open(path) as img:
        assert img.format == "PNG"
        return img.size


@pytest.mark.slow
def test_a_misclassified_test_digit_is_drawn_and_judged(data_env, mnist, tmp_path, capsys):
    """The first test digit the shipped network gets wrong with a gap under the threshold:
    the figure's summary names the prediction, the true digit and 'reject'."""
    images, labels = mnist[1]
    y = LeNet5.load(reference_checkpoint()).forward(images)
    threshold = read_sidecar(reference_checkpoint())
    doubtful = np.flatnonzero((y.argmin(axis=1) != labels) & (top2_gap(y) < threshold.gap))
    index = int(doubtful[0])
    out = tmp_path / "wrong.png"
    assert main(["show", "--index", str(index), "--out", str(out)]) == 0
    line = capsys.readouterr().out
    runner_up = int(np.argsort(y[index])[1])
    assert line.startswith(f"wrote {out}: predicted {y[index].argmin()} (runner-up {runner_up}, "
                           f"top-2 gap {top2_gap(y[index]):.2f}, reject), true {labels[index]}")
    width, height = _png_size(out)
    assert width > 1000 and height > 700


@pytest.mark.slow
def test_your_own_image_and_the_default_output_name(digit_png, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["show", "--image", str(digit_png)]) == 0
    assert "wrote lenet5-show.png: predicted " in capsys.readouterr().out
    _png_size(tmp_path / "lenet5-show.png")


@pytest.fixture
def digit_png(tmp_path, mnist_dir):
    from lenet5.data.idx import read_idx

    path = tmp_path / "seven.png"
    Image.fromarray(255 - read_idx(mnist_dir / "t10k-images-idx3-ubyte.gz")[0]).resize((90, 120)).save(path)
    return path


@pytest.mark.parametrize("args, message", [
    (["--index", "10000"], "--index 10000 is out of range"),
    (["--image", "no-such-file.png"], "no-such-file.png: no such file"),
])
def test_bad_requests_are_one_line_errors(data_env, tmp_path, args, message, capsys):
    assert main(["show", *args, "--out", str(tmp_path / "x.png")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_index_and_image_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        main(["show", "--index", "1", "--image", "x.png"])
    assert e.value.code == 2


def test_missing_matplotlib_names_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now fails
    assert main(["show", "--out", str(tmp_path / "x.png")]) == 2
    assert 'lenet5 show needs matplotlib: pip install -e ".[plots]"' in capsys.readouterr().err
