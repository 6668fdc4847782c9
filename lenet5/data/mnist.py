"""MNIST: the paper's input mapping and cached loading of a split (the files' facts and
their reading are in `idx`, fetching them in `download`).

`preprocess` is the paper's input mapping (section III-A): each 28x28 digit is centred in
a 32x32 field and the values are scaled linearly so that the background (white) is -0.1
and the foreground (black ink) is 1.175. Everything that feeds images to the network uses it.

`load_mnist` returns the preprocessed images and the labels of a split. The first load
reads the verified .gz files (downloading them if they are missing) and writes the
preprocessed arrays as .npy next to them; later loads read those .npy files. A cache file
is only used when its sidecar .json matches: the cache format, the preprocessing
constants, the expected SHA-256 of the source, the source .gz's size and modification
time, the array's shape and dtype, and a CRC-32 of the array's bytes. Anything else -- a
truncated, edited or stale cache, or a replaced source file -- makes it rebuild from the
.gz, after checking the .gz's SHA-256.
"""
import json
import os
import sys
import zlib
from pathlib import Path

import numpy as np

from ..core.architecture import INPUT_SIZE
from ..core.paper import BACKGROUND, INK, TRAIN_MEAN, TRAIN_STD  # noqa: F401 (read from here too)
from ..errors import Lenet5Error
from ..files import UnreadableFile, open_regular, write_atomic, write_bytes_atomic
from .download import ensure_mnist
from .idx import FILES, IMAGE_SIZE, NUM_CLASSES, SPLITS, CorruptFileError, parse_idx, read_verified

DATA_DIR_ENV = "LENET5_DATA_DIR"
DEFAULT_DATA_DIR = Path("data") / "mnist"

PAD = (INPUT_SIZE - IMAGE_SIZE) // 2  # 2 background pixels on each side

CACHE_VERSION = 1


# --- the paper's input mapping ------------------------------------------------------------

def preprocess(images_uint8):
    """The paper's input mapping: uint8 (N, 28, 28) -> float32 (N, 32, 32).

    Each digit is centred in a 32x32 field (2 background pixels on every side) and pixel
    values are mapped linearly, 0 (background) -> -0.1 and 255 (ink) -> 1.175; the padding
    is background, -0.1. The paper chose this so the mean input is roughly 0 and the
    variance roughly 1 "which accelerates learning". Measured over all 32x32 values,
    padding included: MNIST test set mean 0.0294, standard deviation 0.3537; training set
    mean 0.0275, standard deviation 0.3509.
    """
    images = np.asarray(images_uint8)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise ValueError(f"expected uint8 images of shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}), "
                         f"got {images.dtype} {images.shape}")
    scale = np.float32((INK - BACKGROUND) / 255.0)
    out = np.full((len(images), INPUT_SIZE, INPUT_SIZE), BACKGROUND, dtype=np.float32)
    inner = out[:, PAD:PAD + IMAGE_SIZE, PAD:PAD + IMAGE_SIZE]
    np.multiply(images, scale, out=inner, dtype=np.float32)
    inner += np.float32(BACKGROUND)
    return out


# --- loading a split, with the .npy cache --------------------------------------------------

def default_data_dir():
    """$LENET5_DATA_DIR, or data/mnist under the current directory."""
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


def load_mnist(split, data_dir=None, download=True):
    """(images float32 (N, 32, 32) preprocessed, labels int64 (N,)) of split "train" or "test".

    data_dir defaults to $LENET5_DATA_DIR or ./data/mnist. Missing (or corrupt) .gz files
    are fetched with `lenet5.download.ensure_mnist` when `download` is true; otherwise they
    raise Lenet5Error. Repeat loads read the validated .npy cache beside the .gz files.
    """
    if split not in SPLITS:
        raise Lenet5Error(f"unknown MNIST split {split!r} (expected 'train' or 'test')")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    images_name, labels_name = SPLITS[split]
    images = _load_array(data_dir, images_name, download)
    labels = _load_array(data_dir, labels_name, download)
    if len(images) != len(labels):
        raise Lenet5Error(f"{data_dir}: {len(images):,} images but {len(labels):,} labels in the {split} set")
    return images, labels


def _load_array(data_dir, name, download):
    """The preprocessed array of one file: from its cache if valid, else built from the .gz."""
    source = data_dir / name
    array = _read_cache(source)
    if array is None:
        array = _build_array(source, download)
        _write_cache(source, array)
    return array


def _build_array(source, download):
    """Read and verify `source` (fetching it if needed and allowed); preprocess it."""
    sha256, raw_size = FILES[source.name]
    if not source.exists():
        _fetch_or_fail(source, download, "not found")
    try:
        data = read_verified(source, sha256, raw_size)
    except CorruptFileError as e:
        _fetch_or_fail(source, download, e.reason)  # replaces the corrupt file
        data = read_verified(source, sha256, raw_size)
    raw = parse_idx(data, source)
    if raw.ndim == 3:
        return preprocess(raw)
    if raw.max(initial=0) >= NUM_CLASSES:
        raise CorruptFileError(source, f"label {raw.max()} is not a digit 0-9")
    return raw.astype(np.int64)


def _fetch_or_fail(source, download, problem):
    if not download:
        raise Lenet5Error(f"{source}: {problem}; run `lenet5 download --dir {source.parent}`")
    def note(status):
        if status.fetched_from:
            print(f"lenet5: fetched {status.path} from {status.fetched_from}", file=sys.stderr)

    ensure_mnist(source.parent, files={source.name: FILES[source.name]}, on_file=note)


def _cache_kind(source):
    """(file tag, ndim, dtype) of the cached array of an MNIST file: images or labels."""
    return ("f32", 3, np.float32) if "-images-" in source.name else ("i64", 1, np.int64)


def _cache_paths(source):
    """(cache .npy, sidecar .json) of a source .gz, e.g. train-images-idx3-ubyte.f32.npy."""
    stem = source.name.removesuffix(".gz")
    tag = _cache_kind(source)[0]
    return source.with_name(f"{stem}.{tag}.npy"), source.with_name(f"{stem}.{tag}.json")


def _cache_meta(source, array):
    """What the sidecar records: everything the cached array depends on, and its CRC-32."""
    stat = source.stat()
    return {
        "cache_version": CACHE_VERSION,
        "preprocess": {"pad": PAD, "background": BACKGROUND, "ink": INK},
        "source": source.name,
        "source_sha256": FILES[source.name][0],
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "shape": list(array.shape),
        "dtype": array.dtype.name,
        "crc32": zlib.crc32(array),
    }


def _read_cache(source):
    """The cached array of `source` if its sidecar matches the source and the array; else None."""
    npy, sidecar = _cache_paths(source)
    try:
        with open_regular(sidecar) as f:
            meta = json.loads(f.read(1 << 16))
        with open_regular(npy) as f:
            array = np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError, UnreadableFile):  # missing, truncated, not a .npy, bad JSON, a FIFO
        return None
    if not isinstance(meta, dict) or not isinstance(array, np.ndarray):
        return None
    _, ndim, dtype = _cache_kind(source)
    if array.dtype != dtype or array.ndim != ndim or not array.flags.c_contiguous:
        return None
    if ndim == 3 and array.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        return None
    if ndim == 1 and len(array) and (array.min() < 0 or array.max() >= NUM_CLASSES):
        return None  # labels must be digits, whatever the sidecar says: rebuilt from the source
    try:
        expected = _cache_meta(source, array)
    except OSError:  # the source is gone: do not trust a cache we cannot tie to it
        return None
    return array if meta == expected else None


def _write_cache(source, array):
    """Write the cache atomically (temp file + os.replace), then its sidecar. A directory we
    cannot write to (e.g. a read-only shared copy) just means no cache."""
    npy, sidecar = _cache_paths(source)
    try:
        write_atomic(npy, lambda f: np.save(f, array, allow_pickle=False))
        meta = json.dumps(_cache_meta(source, array), indent=1).encode()
        write_bytes_atomic(sidecar, meta)
    except OSError:
        pass
