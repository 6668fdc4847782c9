"""Files that used to end in a traceback where a one-line error is promised: a checkpoint zip
flagged as encrypted, meta entries of the wrong type, and an MNIST label cache whose labels
are out of range though its sidecar matches (rebuilt from the source instead)."""
import json
import shutil

import numpy as np
import pytest
from reliability_tools import one_line_error

from lenet5.cli import main
from lenet5.core.model import LeNet5, reference_checkpoint
from lenet5.data import mnist as mnist_module
from lenet5.data.mnist import load_mnist
from lenet5.errors import Lenet5Error


def encrypted_copy(source, dest):
    """The checkpoint with the "encrypted" flag set on every entry (local and central headers)."""
    data = bytearray(source.read_bytes())
    for signature, flag_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
        start = 0
        while (start := data.find(signature, start)) >= 0:
            data[start + flag_at] |= 0x1
            start += 4
    dest.write_bytes(bytes(data))
    return dest


def test_an_encrypted_checkpoint_is_one_line(tmp_path, capsys):
    path = encrypted_copy(reference_checkpoint(), tmp_path / "locked.npz")
    with pytest.raises(Lenet5Error, match="is encrypted; a checkpoint never is"):
        LeNet5.load(path)
    err = one_line_error(capsys, ["evaluate", "--checkpoint", str(path)])
    assert "encrypted" in err


def with_meta(tmp_path, **meta):
    arrays = LeNet5.init(seed=0).arrays()
    arrays.update({f"meta.{k}": np.asarray(v) for k, v in meta.items()})
    path = tmp_path / "odd.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("meta, message", [
    ({"variant": json.dumps({"c3": ["table"]})}, "meta.variant must be a JSON object of text choices"),
    ({"variant": json.dumps({"c3": {"x": 1}})}, "meta.variant must be a JSON object of text choices"),
    ({"variant": json.dumps(["c3"])}, "meta.variant must be a JSON object of text choices"),
    ({"variant": "{not json"}, "meta.variant is not JSON"),
    ({"variant": 5}, "meta.variant must be a text entry"),
    ({"c3": [1, 2]}, "meta.c3 must be a text entry"),
    ({"dtype": 32}, "meta.dtype must be a text entry"),
])
def test_meta_entries_of_the_wrong_type_are_one_line(tmp_path, capsys, meta, message):
    path = with_meta(tmp_path, **meta)
    with pytest.raises(Lenet5Error, match=message):
        LeNet5.load(path)
    for command in (["evaluate", "--checkpoint", str(path)],
                    ["predict", "--checkpoint", str(path), str(tmp_path / "x.png")]):
        assert message in one_line_error(capsys, command)


@pytest.mark.slow
def test_a_label_cache_out_of_range_is_rebuilt(tmp_path, mnist_dir, capsys):
    data = tmp_path / "mnist"
    shutil.copytree(mnist_dir, data)
    images, labels = load_mnist("test", data_dir=data)  # builds the caches
    source = data / "t10k-labels-idx1-ubyte.gz"
    npy, sidecar = mnist_module._cache_paths(source)
    bad = labels.copy()
    bad[:3] = [12, -1, 10]
    np.save(npy, bad)
    sidecar.write_text(json.dumps(mnist_module._cache_meta(source, bad), indent=1))  # matches
    _, reloaded = load_mnist("test", data_dir=data)
    np.testing.assert_array_equal(reloaded, labels)
    np.testing.assert_array_equal(np.load(npy), labels)  # and the cache is good again
    np.save(npy, bad)
    sidecar.write_text(json.dumps(mnist_module._cache_meta(source, bad), indent=1))
    assert main(["evaluate", "--data-dir", str(data), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["errors"] < 150
