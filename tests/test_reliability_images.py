"""`lenet5 predict` on hostile inputs: a 13000 x 13000 PNG (refused with one line in little
memory, no raw Pillow warning), large photos (reduced right after decoding, still read
right), EXIF rotation after the reduction, and FIFOs given as an image, a checkpoint or a
rejection sidecar (refused at once, the other files still classified)."""
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps
from reliability_tools import REPO, lenet5_env, run_measured

from lenet5.cli import main
from lenet5.core.model import reference_checkpoint
from lenet5.data.idx import read_idx
from lenet5.data.image_files import MAX_PIXELS, MAX_SIDE, read_grayscale
from lenet5.errors import Lenet5Error


@pytest.fixture(scope="module")
def digits(shared_mnist_dir):
    images = read_idx(shared_mnist_dir / "t10k-images-idx3-ubyte.gz")[:3]
    labels = read_idx(shared_mnist_dir / "t10k-labels-idx1-ubyte.gz")[:3]
    return images, labels


@pytest.fixture(scope="module")
def ok_png(tmp_path_factory, digits):
    path = tmp_path_factory.mktemp("ok") / "ok.png"
    Image.fromarray(255 - digits[0][0]).resize((84, 84), Image.BICUBIC).save(path)
    return path


def big_digit(digit, canvas, side, mode="L"):
    """An MNIST digit drawn `side` pixels tall, dark on white, on a canvas (w, h)."""
    ink = Image.fromarray(digit).resize((side, side), Image.BICUBIC)
    page = Image.new("L", canvas, 255)
    page.paste(Image.fromarray(255 - np.asarray(ink)), ((canvas[0] - side) // 3, (canvas[1] - side) // 2))
    return page.convert(mode)


@pytest.mark.slow
def test_a_13000_pixel_square_png_is_refused_in_little_memory(tmp_path, ok_png, digits):
    huge = tmp_path / "huge.png"
    page = Image.new("L", (13000, 13000), 255)
    ImageDraw.Draw(page).rectangle((6000, 5000, 6400, 8000), fill=0)  # one stroke of ink
    page.save(huge, compress_level=1)
    del page
    peak_mb, code, out, err = run_measured("predict", huge, ok_png)
    print(f"\nlenet5 predict on a 13000 x 13000 PNG ({huge.stat().st_size / 1e3:.0f} KB) and a "
          f"digit: peak memory {peak_mb:.0f} MB")
    assert code == 2
    assert err.strip() == (f"lenet5: error: {huge}: the image claims 169.0 million pixels; lenet5 "
                           f"reads images of at most {MAX_PIXELS // 1_000_000} million pixels: "
                           "scale it down first")
    assert out.startswith(f"{ok_png}: {digits[1][0]} ")  # the other file is still classified
    assert peak_mb < 500


def test_an_image_over_the_pixel_cap_but_under_pillows_is_refused_too(tmp_path):
    path = tmp_path / "big.png"
    Image.new("L", (7000, 7000), 255).save(path, compress_level=1)
    with pytest.raises(Lenet5Error, match="the image is 7000 x 7000 = 49.0 million pixels"):
        read_grayscale(path)


@pytest.mark.slow
@pytest.mark.parametrize("fmt, mode", [("png", "L"), ("png", "RGB"), ("jpg", "RGB"), ("png", "LA")])
def test_large_photos_are_reduced_early_and_still_read_right(tmp_path, digits, fmt, mode):
    images, labels = digits
    path = tmp_path / f"photo.{fmt}"
    page = big_digit(images[2], (6000, 4000), 2400, mode)
    if mode == "LA":  # ink opaque, paper transparent (and black underneath)
        grey = np.asarray(page)[..., 0]
        page = Image.fromarray(np.dstack([np.zeros_like(grey), 255 - grey]), "LA")
    page.save(path, quality=90) if fmt == "jpg" else page.save(path, compress_level=1)
    gray = read_grayscale(path)
    assert max(gray.shape) <= MAX_SIDE and gray.dtype == np.uint8
    peak_mb, code, out, err = run_measured("predict", path)
    print(f"\n6000 x 4000 {fmt} {mode}: peak memory {peak_mb:.0f} MB")
    assert code == 0, err
    assert out.startswith(f"{path}: {labels[2]} ")
    assert peak_mb < 500


def with_orientation(array, orientation, fmt="PNG"):
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    image.save(buf, format=fmt, exif=exif.tobytes())
    return buf.getvalue()


@pytest.mark.slow
@pytest.mark.parametrize("side", [40, 3 * MAX_SIDE])  # (whole boxes: reducing and turning commute)
def test_exif_rotation_matches_pillows_after_the_reduction(tmp_path, side):
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (side // 2, side), dtype=np.uint8)
    for orientation in range(1, 9):
        path = tmp_path / f"o{orientation}.png"
        path.write_bytes(with_orientation(base, orientation))
        with Image.open(path) as img:
            expected = ImageOps.exif_transpose(img)
            if side > MAX_SIDE:
                expected = expected.reduce(-(-side // MAX_SIDE))
            np.testing.assert_array_equal(read_grayscale(path), np.asarray(expected), str(orientation))


def run_predict(*args):
    return subprocess.run([sys.executable, "-m", "lenet5", "predict", *map(str, args)], cwd=REPO,
                          env=lenet5_env(), capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_a_fifo_as_an_image_is_refused_and_the_others_classified(tmp_path, ok_png, digits):
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    result = run_predict(fifo, ok_png)  # (hung for ever, waiting for a writer)
    assert result.returncode == 2
    assert result.stderr == f"lenet5: error: {fifo}: is a FIFO (named pipe), not a regular file\n"
    assert result.stdout.startswith(f"{ok_png}: {digits[1][0]} ")


@pytest.mark.slow
def test_a_fifo_as_a_checkpoint_or_sidecar_does_not_hang(tmp_path, ok_png, digits):
    fifo = tmp_path / "net.npz"
    os.mkfifo(fifo)
    result = run_predict("--checkpoint", fifo, ok_png)
    assert result.returncode == 2
    assert result.stderr == f"lenet5: error: checkpoint {fifo}: is a FIFO (named pipe), not a regular file\n"
    ckpt = tmp_path / "mine.npz"
    shutil.copyfile(reference_checkpoint(), ckpt)
    os.mkfifo(tmp_path / "mine.rejection.json")
    env_dir = tmp_path / "no-mnist"
    result = run_predict("--checkpoint", ckpt, "--data-dir", env_dir, ok_png)
    assert result.returncode == 0 and result.stdout.startswith(f"{ok_png}: {digits[1][0]} unknown")


def test_a_folder_or_fifo_through_the_cli_in_process(tmp_path, ok_png, capsys):
    os.mkfifo(tmp_path / "f")
    assert main(["predict", str(tmp_path / "f"), str(tmp_path), str(ok_png)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [f"lenet5: error: {tmp_path / 'f'}: is a FIFO (named pipe), not a regular file",
                   f"lenet5: error: {tmp_path}: is a folder, not a file"]
