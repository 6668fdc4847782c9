"""`lenet5 predict`: image files made from MNIST test digits -- resized, inverted, off-centre,
JPEG -- are classified as their labels; bad files get one line each and exit code 2."""
import json
import shutil
import sys

import numpy as np
import pytest
from PIL import Image

from lenet5.cli import main
from lenet5.core.model import reference_checkpoint
from lenet5.data.idx import read_idx

N_FILES = 500
FORMATS = ("png", "jpg", "bmp", "pgm")


@pytest.fixture(scope="module")
def digit_files(tmp_path_factory, shared_mnist_dir):
    """500 MNIST test digits (indices 0..499) as image files, each changed at random: size
    (the 28x28 digit enlarged to between 40 and 160 pixels a side, aspect ratio changed by up
    to 1.5, e.g. 100x140), polarity (half dark ink on white paper), placement (off-centre on a
    canvas with margins up to 1.5x the digit's size), format (PNG, JPEG, BMP, PGM)."""
    folder = tmp_path_factory.mktemp("digits")
    images = read_idx(shared_mnist_dir / "t10k-images-idx3-ubyte.gz")[:N_FILES]
    labels = read_idx(shared_mnist_dir / "t10k-labels-idx1-ubyte.gz")[:N_FILES]
    rng = np.random.default_rng(0)
    paths, formats = [], []
    for i, image in enumerate(images):
        w = int(rng.integers(40, 161))
        h = int(np.clip(w * rng.uniform(1 / 1.5, 1.5), 40, 200))
        digit = Image.fromarray(image).resize((w, h), Image.BICUBIC)
        canvas_w = w + int(rng.integers(0, int(1.5 * w) + 1))
        canvas_h = h + int(rng.integers(0, int(1.5 * h) + 1))
        canvas = Image.new("L", (canvas_w, canvas_h), 0)
        left, top = int(rng.integers(0, canvas_w - w + 1)), int(rng.integers(0, canvas_h - h + 1))
        canvas.paste(digit, (left, top))
        dark_on_light = rng.random() < 0.5
        if dark_on_light:
            canvas = Image.fromarray(255 - np.asarray(canvas))
        fmt = FORMATS[i % len(FORMATS)]
        path = folder / f"{i:03d}-label{labels[i]}.{fmt}"
        canvas.save(path, quality=85) if fmt == "jpg" else canvas.save(path)
        paths.append(path)
        formats.append(fmt)
    return paths, labels, np.array(formats)


def predict_json(capsys, *args):
    code = main(["predict", "--json", *map(str, args)])
    out = capsys.readouterr()
    return code, [json.loads(line) for line in out.out.splitlines()], out.err


def test_image_files_of_test_digits_are_classified(digit_files, capsys):
    paths, labels, formats = digit_files
    code, results, _ = predict_json(capsys, *paths)
    assert code == 0 and len(results) == N_FILES
    assert [r["file"] for r in results] == [str(p) for p in paths]
    digits = np.array([r["digit"] for r in results])
    right = digits == labels
    by_format = {f: f"{right[formats == f].mean():.1%}" for f in FORMATS}
    print(f"\nlenet5 predict on {N_FILES} altered MNIST test digits: {right.mean():.1%} as labelled "
          f"({right.sum()}/{N_FILES}); by format {by_format}")
    assert right.mean() >= 0.97
    for r in results:
        assert len(r["distances"]) == 10 and r["digit"] == int(np.argmin(r["distances"]))
        assert r["verdict"] == ("confident" if r["gap"] >= r["threshold"] else "reject")
    verdicts = [r["verdict"] for r in results]
    assert verdicts.count("confident") > 0.9 * N_FILES and "reject" in verdicts


def test_text_output_one_line_per_file(digit_files, capsys):
    paths, labels, _ = digit_files
    assert main(["predict", str(paths[0]), str(paths[1])]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{paths[0]}: {labels[0]} ") and "distances 0:" in lines[0]


def test_bad_files_are_named_and_the_others_still_classified(digit_files, tmp_path, capsys):
    paths, labels, _ = digit_files
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (60, 80), 255).save(tmp_path / "blank.png")
    noise = np.random.default_rng(0).integers(0, 256, (80, 60), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "cut.png")  # then cut in half: a truncated PNG
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:2000])
    bad = [tmp_path / name for name in ("notes.png", "blank.png", "missing.png", "cut.png")] + [tmp_path]
    code = main(["predict", str(paths[0]), *map(str, bad), str(paths[1])])
    out = capsys.readouterr()
    assert code == 2
    assert len(out.out.splitlines()) == 2  # the two good files
    errors = out.err.splitlines()
    assert len(errors) == len(bad)
    for path, line, reason in zip(bad, errors, ["not an image", "no ink", "no such file", "truncated",
                                                "folder"], strict=True):
        assert line.startswith(f"lenet5: error: {path}: ") and reason in line, line
    code, results, _ = predict_json(capsys, paths[0], tmp_path / "blank.png")
    assert code == 2 and results[0]["digit"] == labels[0]
    assert results[1]["file"] == str(tmp_path / "blank.png") and "no ink" in results[1]["error"]


def test_missing_pillow_names_the_extra(digit_files, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "PIL", None)
    assert main(["predict", str(digit_files[0][0])]) == 2
    assert 'lenet5 predict needs Pillow to read images: pip install -e ".[images]"' in capsys.readouterr().err


def test_checkpoint_without_threshold_says_unknown(digit_files, tmp_path, monkeypatch, capsys):
    ckpt = tmp_path / "mine.npz"
    shutil.copyfile(reference_checkpoint(), ckpt)
    monkeypatch.setenv("LENET5_DATA_DIR", str(tmp_path / "no-mnist-here"))
    code, results, err = predict_json(capsys, "--checkpoint", ckpt, digit_files[0][0])
    assert code == 0 and results[0]["verdict"] == "unknown" and results[0]["threshold"] is None
    assert "no rejection threshold is known" in err
