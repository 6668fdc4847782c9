"""The network shipped in the package is the default-seed paper-protocol run it claims to be."""
import json
from importlib import resources

import numpy as np

from lenet5 import LeNet5
from lenet5.cli import main
from lenet5.core.model import reference_checkpoint


def test_shipped_checkpoint_reproduces_its_recorded_test_error(mnist, capsys, monkeypatch, mnist_dir):
    net = LeNet5.load(reference_checkpoint())
    metrics = json.loads((resources.files("lenet5") / "reference" / "lenet5-seed0.metrics.json").read_text())
    assert len(metrics) == 20 and metrics[-1]["epoch"] == 20
    images, labels = mnist[1]
    error = 100.0 * np.mean(net.predict(images.astype(net.dtype)) != labels)
    assert abs(error - metrics[-1]["test_error_pct"]) < 1e-9
    # the command the README gives, with no checkpoint argument
    monkeypatch.setenv("LENET5_DATA_DIR", str(mnist_dir))
    assert main(["evaluate", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["errors"] == round(error * 100) and len(out["misclassified"]) == out["errors"]
    assert np.array(out["confusion"]).sum() == len(labels)
