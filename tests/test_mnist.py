"""IDX reading, the paper's input mapping, and cached loading of the real MNIST test set."""
import gzip
import os
import shutil
import struct

import numpy as np
import pytest

from lenet5 import files
from lenet5.data import idx
from lenet5.data.idx import read_idx
from lenet5.data.mnist import load_mnist, preprocess
from lenet5.errors import Lenet5Error

TEST_FILES = idx.SPLITS["test"]


def idx_bytes(array, magic=None, dims=None):
    """The IDX encoding of a uint8 array (magic number and dimensions overridable)."""
    array = np.asarray(array, dtype=np.uint8)
    dims = array.shape if dims is None else dims
    magic = (0x0800 | len(dims)) if magic is None else magic
    return struct.pack(f">I{len(dims)}I", magic, *dims) + array.tobytes()


def write(path, data, gz=True):
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def images():
    return np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)


# --- read_idx -------------------------------------------------------------------------------

def test_read_idx_reads_gzip_and_raw_images_and_labels(tmp_path, images):
    labels = np.array([7, 0, 9], dtype=np.uint8)
    for gz, suffix in ((True, ".gz"), (False, "")):
        got = read_idx(write(tmp_path / f"img{suffix}", idx_bytes(images), gz))
        assert got.dtype == np.uint8 and got.shape == (3, 28, 28)
        np.testing.assert_array_equal(got, images)
        np.testing.assert_array_equal(read_idx(write(tmp_path / f"lab{suffix}", idx_bytes(labels), gz)), labels)


@pytest.mark.parametrize("make, reason", [
    (lambda im: idx_bytes(im, magic=0x00000804), "bad IDX magic number 0x00000804"),
    (lambda im: idx_bytes(im, magic=0x00000D03), "bad IDX magic number 0x00000d03"),  # float data
    (lambda im: idx_bytes(im)[:-10], "truncated"),
    (lambda im: idx_bytes(im) + b"\0", "trailing bytes"),
    (lambda im: idx_bytes(im)[:10], "truncated IDX header"),
    (lambda im: idx_bytes(im[:, :, :27].copy()), "images are 28x27, expected 28x28"),
    (lambda im: idx_bytes(im, dims=(4, 28, 28)), "truncated"),  # header promises more images
])
def test_read_idx_rejects_malformed_content(tmp_path, images, make, reason):
    path = write(tmp_path / "bad-idx3-ubyte.gz", make(images))
    with pytest.raises(Lenet5Error, match=reason) as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_rejects_truncated_gzip(tmp_path, images):
    data = gzip.compress(idx_bytes(images))
    path = tmp_path / "cut.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(Lenet5Error, match="truncated gzip") as e:
        read_idx(path)
    assert str(path) in str(e.value)


def test_read_idx_rejects_bad_gzip(tmp_path, images):
    data = bytearray(gzip.compress(idx_bytes(images)))
    data[-8] ^= 0xFF  # the stored CRC-32
    crc = tmp_path / "crc.gz"
    crc.write_bytes(bytes(data))
    raw = write(tmp_path / "raw.gz", idx_bytes(images), gz=False)  # named .gz but not gzip
    for path in (crc, raw):
        with pytest.raises(Lenet5Error, match="bad gzip") as e:
            read_idx(path)
        assert str(path) in str(e.value)


def test_read_idx_missing_file(tmp_path):
    with pytest.raises(Lenet5Error, match="not found"):
        read_idx(tmp_path / "nope.gz")


# --- preprocess -----------------------------------------------------------------------------

def test_preprocess_maps_linearly_and_pads_with_background():
    levels = np.arange(256, dtype=np.uint8)
    raw = np.zeros((2, 28, 28), dtype=np.uint8)
    raw[0].flat[:256] = levels
    raw[1] = 255
    x = preprocess(raw)
    assert x.shape == (2, 32, 32) and x.dtype == np.float32
    inner = x[:, 2:30, 2:30]
    np.testing.assert_allclose(inner[0].flat[:256], -0.1 + levels * (1.275 / 255), rtol=0, atol=1e-6)
    assert inner[0].flat[0] == pytest.approx(-0.1, abs=1e-7)
    np.testing.assert_allclose(inner[1], 1.175, rtol=0, atol=1e-6)
    border = np.ones((32, 32), dtype=bool)
    border[2:30, 2:30] = False
    assert np.all(x[:, border] == np.float32(-0.1))


def test_preprocess_centres_the_digit():
    raw = np.zeros((1, 28, 28), dtype=np.uint8)
    raw[0, 0, 0] = raw[0, 27, 27] = 255
    x = preprocess(raw)[0]
    assert np.argwhere(x > 1).tolist() == [[2, 2], [29, 29]]


def test_preprocess_rejects_wrong_input():
    with pytest.raises(ValueError):
        preprocess(np.zeros((2, 32, 32), dtype=np.uint8))
    with pytest.raises(ValueError):
        preprocess(np.zeros((2, 28, 28), dtype=np.float32))


# --- load_mnist on the real test set ----------------------------------------------------------

@pytest.fixture
def test_set_dir(tmp_path, shared_mnist_dir):
    """A data folder holding a copy of the real MNIST test-set files."""
    for name in TEST_FILES:
        shutil.copy(shared_mnist_dir / name, tmp_path / name)
    return tmp_path


@pytest.fixture
def reference(shared_mnist_dir):
    """The test set as preprocessed straight from the shared files (no cache involved)."""
    images_name, labels_name = TEST_FILES
    return preprocess(read_idx(shared_mnist_dir / images_name)), read_idx(shared_mnist_dir / labels_name)


def count_gz_reads(monkeypatch):
    calls = []
    real = idx.read_bytes
    monkeypatch.setattr(idx, "read_bytes", lambda *a, **k: calls.append(a[0]) or real(*a, **k))
    return calls


def test_load_mnist_test_set(test_set_dir, reference):
    images, labels = load_mnist("test", data_dir=test_set_dir, download=False)
    assert images.shape == (10000, 32, 32) and images.dtype == np.float32
    assert labels.shape == (10000,) and labels.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(10))
    np.testing.assert_array_equal(images, reference[0])
    np.testing.assert_array_equal(labels, reference[1])
    # the paper's mapping gives mean ~0.03 and std ~0.35 on the test set (not 0 and 1)
    assert images.mean(dtype=np.float64) == pytest.approx(0.0294, abs=0.002)
    assert images.std(dtype=np.float64) == pytest.approx(0.3537, abs=0.002)


def test_second_load_comes_from_the_cache_and_is_identical(test_set_dir, monkeypatch):
    first = load_mnist("test", data_dir=test_set_dir, download=False)
    assert (test_set_dir / "t10k-images-idx3-ubyte.f32.npy").exists()
    assert (test_set_dir / "t10k-labels-idx1-ubyte.i64.npy").exists()
    reads = count_gz_reads(monkeypatch)
    second = load_mnist("test", data_dir=test_set_dir, download=False)
    assert reads == []  # nothing decompressed
    for a, b in zip(first, second):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    assert not [p for p in os.listdir(test_set_dir) if p.startswith(".")]  # no temp files left


@pytest.mark.parametrize("damage", ["flip_data", "truncate", "garbage", "sidecar"])
def test_corrupt_cache_is_rebuilt(test_set_dir, reference, monkeypatch, damage):
    load_mnist("test", data_dir=test_set_dir, download=False)
    cache = test_set_dir / "t10k-images-idx3-ubyte.f32.npy"
    data = bytearray(cache.read_bytes())
    if damage == "flip_data":  # still a valid .npy of the right shape: only the CRC can tell
        data[len(data) // 2] ^= 0x01
    elif damage == "truncate":
        data = data[: len(data) - 4096]
    elif damage == "garbage":
        data = bytearray(b"not a numpy file")
    if damage == "sidecar":
        (test_set_dir / "t10k-images-idx3-ubyte.f32.json").write_text("{")
    else:
        cache.write_bytes(bytes(data))
    reads = count_gz_reads(monkeypatch)
    images, _ = load_mnist("test", data_dir=test_set_dir, download=False)
    assert [p.name for p in reads] == ["t10k-images-idx3-ubyte.gz"]  # rebuilt from the .gz
    np.testing.assert_array_equal(images, reference[0])
    reads.clear()
    load_mnist("test", data_dir=test_set_dir, download=False)
    assert reads == []  # and the rebuilt cache is good


def test_cache_is_stale_once_the_source_changes(test_set_dir, monkeypatch):
    load_mnist("test", data_dir=test_set_dir, download=False)
    source = test_set_dir / "t10k-labels-idx1-ubyte.gz"
    os.utime(source, ns=(0, 0))  # same content, different modification time
    reads = count_gz_reads(monkeypatch)
    load_mnist("test", data_dir=test_set_dir, download=False)
    assert [p.name for p in reads] == ["t10k-labels-idx1-ubyte.gz"]


def test_corrupt_source_is_not_masked_by_the_cache(test_set_dir):
    load_mnist("test", data_dir=test_set_dir, download=False)
    (test_set_dir / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(Lenet5Error, match="t10k-images-idx3-ubyte.gz.*bad gzip"):
        load_mnist("test", data_dir=test_set_dir, download=False)


def test_missing_files_without_download(tmp_path):
    with pytest.raises(Lenet5Error, match="not found; run `lenet5 download"):
        load_mnist("test", data_dir=tmp_path, download=False)


def test_missing_and_corrupt_files_are_fetched(tmp_path, shared_mnist_dir, monkeypatch, reference):
    monkeypatch.setenv("LENET5_MNIST_MIRROR", str(shared_mnist_dir))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    images, labels = load_mnist("test", data_dir=tmp_path)
    np.testing.assert_array_equal(labels, reference[1])
    assert (tmp_path / "t10k-images-idx3-ubyte.gz").exists()


def test_data_dir_defaults_to_environment(test_set_dir, monkeypatch):
    monkeypatch.setenv("LENET5_DATA_DIR", str(test_set_dir))
    assert load_mnist("test", download=False)[0].shape == (10000, 32, 32)


def test_unwritable_data_dir_just_means_no_cache(test_set_dir, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(files, "open_temp_beside", refuse)
    assert load_mnist("test", data_dir=test_set_dir, download=False)[1].shape == (10000,)
    assert sorted(os.listdir(test_set_dir)) == sorted(TEST_FILES)


def test_unknown_split(tmp_path):
    with pytest.raises(Lenet5Error, match="unknown MNIST split"):
        load_mnist("validation", data_dir=tmp_path)
