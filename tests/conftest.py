import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = Path(os.environ.get("LENET5_SHARED_MNIST", REPO.parent / "shared" / "datasets" / "mnist"))


@pytest.fixture(scope="session")
def shared_mnist_dir():
    """The real MNIST .gz files shipped beside the project (never fetched from the network)."""
    if not (SHARED_MNIST / "train-images-idx3-ubyte.gz").exists():
        pytest.fail(f"real MNIST files not found at {SHARED_MNIST} (set LENET5_SHARED_MNIST)")
    return SHARED_MNIST


@pytest.fixture(scope="session")
def mnist_dir(tmp_path_factory, shared_mnist_dir):
    """A data folder holding the verified MNIST files, copied from the shared local mirror."""
    from lenet5.data.download import ensure_mnist

    folder = tmp_path_factory.mktemp("mnist")
    ensure_mnist(folder, mirrors=[str(shared_mnist_dir)], progress=False, include_defaults=False)
    return folder


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """((train images, labels), (test images, labels)), preprocessed."""
    from lenet5.data.mnist import load_mnist

    return load_mnist("train", data_dir=mnist_dir), load_mnist("test", data_dir=mnist_dir)
