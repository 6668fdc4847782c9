"""MNIST: the four IDX files, reading them, the paper's input mapping, and cached loading.

`FILES` is the one place the facts about the four files live (name -> SHA-256 of the
decompressed content, decompressed size in bytes); the downloader verifies against it.

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
import gzip
import hashlib
import json
import os
import secrets
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from .architecture import INPUT_SIZE
from .errors import Lenet5Error

# name -> (SHA-256 of the decompressed content, decompressed size in bytes)
FILES = {
    "train-images-idx3-ubyte.gz": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db", 47_040_016),
    "train-labels-idx1-ubyte.gz": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5", 60_008),
    "t10k-images-idx3-ubyte.gz": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7", 7_840_016),
    "t10k-labels-idx1-ubyte.gz": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2", 10_008),
}
# split -> (images file, labels file)
SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
DATA_DIR_ENV = "LENET5_DATA_DIR"
DEFAULT_DATA_DIR = Path("data") / "mnist"

IMAGE_SIZE = 28  # MNIST digits are 28x28
PAD = (INPUT_SIZE - IMAGE_SIZE) // 2  # 2 background pixels on each side
BACKGROUND = -0.1  # value of a white (0) pixel, and of the padding
INK = 1.175  # value of a fully black (255) pixel
NUM_CLASSES = 10

# IDX magic number: two zero bytes, the data type (0x08: unsigned byte), the number of dims
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IDX_UBYTE = 0x08

CACHE_VERSION = 1


class CorruptFileError(Lenet5Error):
    """A file that exists but does not hold what it should; `reason` says what is wrong."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


# --- reading IDX files --------------------------------------------------------------------

def read_bytes(path, compressed=None):
    """The content of `path`, gunzipped if `compressed` (default: if the name ends in .gz).
    A bad or truncated gzip stream raises CorruptFileError, a missing file Lenet5Error."""
    path = Path(path)
    if compressed is None:
        compressed = path.suffix == ".gz"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise Lenet5Error(f"{path}: file not found") from None
    except OSError as e:
        raise Lenet5Error(f"{path}: cannot read ({e.strerror or e})") from None
    if not compressed:
        return data
    try:
        return gzip.decompress(data)
    except EOFError:
        raise CorruptFileError(path, "truncated gzip (compressed stream ends early)") from None
    except (OSError, zlib.error) as e:  # gzip.BadGzipFile is an OSError (bad header, CRC)
        raise CorruptFileError(path, f"bad gzip ({e})") from None


def parse_idx(data, path="<bytes>"):
    """The uint8 array an IDX byte string holds: images (N, 28, 28) or labels (N,).
    Checks the magic number, the data-type byte, the dimensions and the exact length."""
    if len(data) < 4:
        raise CorruptFileError(path, f"too short for an IDX header ({len(data)} bytes)")
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (IMAGES_MAGIC, LABELS_MAGIC):
        raise CorruptFileError(path, f"bad IDX magic number 0x{magic:08x} (expected unsigned-byte "
                               f"images 0x{IMAGES_MAGIC:08x} or labels 0x{LABELS_MAGIC:08x})")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise CorruptFileError(path, f"truncated IDX header ({len(data)} of {header} bytes)")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    if ndim == 3 and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise CorruptFileError(path, f"images are {dims[1]}x{dims[2]}, expected "
                               f"{IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        kind = "truncated" if len(data) < expected else "trailing bytes"
        raise CorruptFileError(path, f"{kind}: {len(data)} bytes, the header's dimensions "
                               f"{'x'.join(map(str, dims))} need {expected}")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims).copy()


def read_idx(path):
    """The uint8 array of an IDX file (gzip-compressed if the name ends in .gz). A missing,
    truncated, corrupt or malformed file raises Lenet5Error naming the file and the fault."""
    return parse_idx(read_bytes(path), path)


def content_problem(data, sha256, raw_size):
    """Why decompressed `data` is not the expected content, or None if it is."""
    if len(data) != raw_size:
        return f"wrong size ({len(data):,} bytes decompressed, expected {raw_size:,})"
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        return f"checksum mismatch (SHA-256 {digest[:12]}..., expected {sha256[:12]}...)"
    return None


def read_verified(path, sha256, raw_size, compressed=None):
    """The decompressed content of `path`, checked against its SHA-256 and size;
    CorruptFileError if it does not match."""
    data = read_bytes(path, compressed)
    problem = content_problem(data, sha256, raw_size)
    if problem:
        raise CorruptFileError(path, problem)
    return data


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
    from .download import ensure_mnist  # imported here: download imports this module

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
        meta = json.loads(sidecar.read_text())
        array = np.load(npy, allow_pickle=False)
    except (OSError, ValueError, EOFError):  # missing, truncated, not a .npy, bad JSON
        return None
    if not isinstance(meta, dict) or not isinstance(array, np.ndarray):
        return None
    _, ndim, dtype = _cache_kind(source)
    if array.dtype != dtype or array.ndim != ndim or not array.flags.c_contiguous:
        return None
    if ndim == 3 and array.shape[1:] != (INPUT_SIZE, INPUT_SIZE):
        return None
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
        _atomic_write(npy, lambda f: np.save(f, array, allow_pickle=False))
        meta = json.dumps(_cache_meta(source, array), indent=1).encode()
        _atomic_write(sidecar, lambda f: f.write(meta))
    except OSError:
        pass


def _atomic_write(path, write):
    """Call write(file) on a temp file beside `path`, then rename it to `path`."""
    f, tmp = open_temp_beside(path)
    try:
        with f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def open_temp_beside(path, suffix=".tmp"):
    """(binary file open for writing, its Path): a new hidden file in path's directory, named
    after it, with the usual permissions (0666 less the umask, unlike tempfile's 0600)."""
    path = Path(path)
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return os.fdopen(fd, "wb"), tmp
    raise FileExistsError(f"no free temp file name beside {path}")
