"""`lenet5 export --onnx`: the exported model, run in onnxruntime, computes LeNet5.forward."""
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from lenet5.cli import main
from lenet5.core.architecture import C3_TABLE, LAYER, Variant, table_mask
from lenet5.core.model import LeNet5, reference_checkpoint
from lenet5.errors import Lenet5Error
from lenet5.tools.export_onnx import build_model, unsupported


def run_onnx(model, images):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(["distances", "digit"], {"image": images[:, None].astype(np.float32)})


def test_shipped_network_matches_forward_on_1000_test_images(tmp_path, mnist, capsys):
    images = mnist[1][0][:1000]
    out = tmp_path / "lenet5.onnx"
    assert main(["export", "--onnx", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    model = onnx.load(out)
    distances, digit = run_onnx(model, images)
    expected = LeNet5.load(reference_checkpoint()).forward(images)
    rel = np.abs(distances - expected) / np.abs(expected)
    print(f"\nONNX vs LeNet5.forward on 1,000 test images: max relative difference {rel.max():.2e}")
    assert rel.max() < 1e-4
    np.testing.assert_array_equal(digit, expected.argmin(axis=1))
    # C3 really is a convolution whose kernels are zero where Table I has no connection
    c3 = next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == "C3.weight")
    unconnected = ~table_mask(C3_TABLE, LAYER["C3"].in_maps)
    assert np.all(c3[unconnected] == 0) and np.all(np.abs(c3[~unconnected]).sum(axis=(1, 2)) > 0)
    ops = {node.op_type for node in model.graph.node}
    assert {"Conv", "Tanh", "Gemm", "ReduceSum", "ArgMin"} <= ops


@pytest.mark.parametrize("variant", [
    Variant(c3="full"), Variant(pooling="average"), Variant(pooling="max"),
    Variant(activation="tanh"), Variant(activation="sigmoid"), Variant(activation="relu"),
    Variant(output="softmax"), Variant(inputs="unit"),
], ids=lambda v: v.describe())
def test_variants_export_too(variant, mnist):
    images = mnist[1][0][:100]
    net = LeNet5.init(seed=1, variant=variant)
    distances, digit = run_onnx(build_model(net), images)
    expected = net.forward(images)
    np.testing.assert_allclose(distances, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(digit, expected.argmin(axis=1))


@dataclass(frozen=True)
class LaterVariant:
    """A variant with choices this exporter does not know."""
    c3: str = "table"
    pooling: str = "trainable"
    activation: str = "scaled-tanh"
    output: str = "rbf"
    dropout: str = "none"


@pytest.mark.parametrize("variant, named", [
    (LaterVariant(activation="gelu"), "activation=gelu"),
    (LaterVariant(dropout="0.5"), "dropout=0.5"),
])
def test_other_variants_are_refused_by_name(variant, named):
    with pytest.raises(Lenet5Error, match=f"cannot export .*{named} is not supported"):
        build_model(SimpleNamespace(variant=variant, params={}))
    assert unsupported(SimpleNamespace(variant=LaterVariant())) == []  # a new field at its default


def test_missing_onnx_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnx", None)
    assert main(["export", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert 'lenet5 export needs the onnx package: pip install -e ".[onnx]"' in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
