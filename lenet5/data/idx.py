"""MNIST's four IDX files: the facts about them, stated once, and reading and verifying them.

`FILES` is the one place the facts about the four files live (name -> SHA-256 of the
decompressed content, decompressed size in bytes); the downloader and the loader verify
against it. Both import this module; neither imports the other's internals.
"""
import gzip
import hashlib
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import Lenet5Error
from ..files import UnreadableFile, open_regular

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
IMAGE_SIZE = 28  # MNIST digits are 28x28
NUM_CLASSES = 10

# IDX magic number: two zero bytes, the data type (0x08: unsigned byte), the number of dims
IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
IDX_UBYTE = 0x08


class CorruptFileError(Lenet5Error):
    """A file that exists but does not hold what it should; `reason` says what is wrong."""

    def __init__(self, path, reason):
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


# --- reading IDX files --------------------------------------------------------------------

def read_bytes(path, compressed=None, limit=None):
    """The content of `path`, gunzipped if `compressed` (default: if the name ends in .gz).
    With `limit`, at most limit + 1 bytes are ever decompressed or held: content longer than
    `limit` raises CorruptFileError at the first byte over (a gzip bomb costs no more memory
    than a real file). A bad or truncated gzip stream raises CorruptFileError, a missing or
    unreadable file (a folder, a FIFO) Lenet5Error."""
    path = Path(path)
    if compressed is None:
        compressed = path.suffix == ".gz"
    size = -1 if limit is None else limit + 1
    if not path.exists():
        raise Lenet5Error(f"{path}: file not found")
    try:
        with open_regular(path) as f:  # (never blocks on a FIFO)
            if not compressed:
                data = f.read(size)
            else:
                with gzip.GzipFile(fileobj=f) as g:
                    data = g.read(size)
    except EOFError:
        raise CorruptFileError(path, "truncated gzip (compressed stream ends early)") from None
    except (gzip.BadGzipFile, zlib.error) as e:
        raise CorruptFileError(path, f"bad gzip ({e})") from None
    except UnreadableFile as e:
        raise Lenet5Error(f"{path}: {e}") from None
    except OSError as e:
        raise Lenet5Error(f"{path}: cannot read ({e.strerror or e})") from None
    if limit is not None and len(data) > limit:
        raise CorruptFileError(path, f"too large: more than {limit:,} bytes{' decompressed' * compressed}")
    return data


def looks_like_idx(data):
    """True if `data` starts with an unsigned-byte IDX header (images or labels), whatever follows."""
    return len(data) >= 4 and struct.unpack(">I", data[:4])[0] in (IMAGES_MAGIC, LABELS_MAGIC)


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
    data = read_bytes(path, compressed, limit=raw_size)
    problem = content_problem(data, sha256, raw_size)
    if problem:
        raise CorruptFileError(path, problem)
    return data
