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
