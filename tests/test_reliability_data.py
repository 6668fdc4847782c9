"""A local mirror missing one of the four MNIST files: the other three are fetched and
verified, and the one error names the missing file and where it was looked for."""
import gzip
import hashlib
import os

import numpy as np
import pytest
from test_download import idx_bytes

from lenet5.data.download import MIRROR_ENV, ensure_mnist
from lenet5.errors import Lenet5Error

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def four_files():
    """Small generated stand-ins for the four files: {name: gz bytes} and their table."""
    rng = np.random.default_rng(1)
    raws = {name: idx_bytes(rng.integers(0, 256, (3, 28, 28)) if "images" in name else rng.integers(0, 10, 3))
            for name in NAMES}
    table = {name: (hashlib.sha256(raw).hexdigest(), len(raw)) for name, raw in raws.items()}
    return {name: gzip.compress(raw, mtime=0) for name, raw in raws.items()}, table


def test_a_mirror_missing_one_file_still_delivers_the_other_three(tmp_path, monkeypatch):
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    files, table = four_files()
    mirror, data = tmp_path / "mirror", tmp_path / "data"
    mirror.mkdir()
    missing = NAMES[1]
    for name, body in files.items():
        if name != missing:
            (mirror / name).write_bytes(body)
    with pytest.raises(Lenet5Error) as e:
        ensure_mnist(data, [str(mirror)], files=table, progress=False, include_defaults=False)
    message = str(e.value)
    assert message == (f"could not fetch {missing} into {data} -- {mirror}: missing file "
                       f"{mirror / missing}")
    assert sorted(os.listdir(data)) == sorted(n for n in NAMES if n != missing)
    for name in os.listdir(data):
        assert (data / name).read_bytes() == files[name]
