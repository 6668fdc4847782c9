"""C3 fully connected (the `connections` experiment's variant): all 96 kernels live, checked
against the numpy reference, finite differences, training and checkpoints."""
import numpy as np
import pytest
from random_inputs import images

from lenet5 import LeNet5, Lenet5Error
from lenet5.core import numpy_reference as ref
from lenet5.core.architecture import Variant
from lenet5.core.model import C3_UNCONNECTED
from lenet5.training.trainer import TrainConfig, Trainer

FULL = Variant(c3="full")



def test_full_init_uses_every_kernel_with_fan_in_150():
    net = LeNet5.init(seed=0, dtype=np.float64, variant=FULL)
    w = net.params["C3.weight"]
    assert np.all(w != 0) and np.abs(w).max() <= 2.4 / 150 and np.abs(w).max() > 0.9 * 2.4 / 150
    table = LeNet5.init(seed=0, dtype=np.float64)
    for name in ("C1.weight", "S2.coeff", "C5.weight", "F6.bias"):  # only C3 differs
        assert np.array_equal(net.params[name], table.params[name])


def test_full_forward_matches_reference_and_unconnected_pairs_matter():
    net = LeNet5.init(seed=1, dtype=np.float64, variant=FULL)
    x = images(2)
    y = net.forward(x)
    everything = np.ones((16, 6), bool)
    for n in range(2):
        np.testing.assert_allclose(y[n], ref.network_forward(x[n], net.params, everything)["y"], rtol=1e-11)
    net.params["C3.weight"][C3_UNCONNECTED] = 0.0  # dropping Table I's missing links changes y
    assert not np.allclose(net.forward(x), y)


def test_full_gradient_of_formerly_unconnected_weights_matches_central_differences():
    net = LeNet5.init(seed=2, dtype=np.float64, variant=FULL)
    x, labels = images(3, seed=4), np.array([1, 5, 7])
    _, grads = net.loss_and_gradients(x, labels, loss="map")
    g = grads["C3.weight"]
    w = net.params["C3.weight"]
    h = 1e-3
    rng = np.random.default_rng(0)
    js, is_ = np.nonzero(C3_UNCONNECTED)
    for k in rng.choice(len(js), 6, replace=False):
        idx = (js[k], is_[k], rng.integers(5), rng.integers(5))
        old = w[idx]
        f = {}
        for step in (-2, -1, 1, 2):
            w[idx] = old + step * h
            f[step] = net.loss_and_gradients(x, labels, loss="map")[0]
        w[idx] = old
        numeric = (8 * (f[1] - f[-1]) - (f[2] - f[-2])) / (12 * h)
        assert abs(g[idx] - numeric) <= 1e-6 * max(abs(g[idx]), abs(numeric)), idx


@pytest.mark.slow
def test_full_trains_all_kernels_and_round_trips(mnist, tmp_path):
    (x, y), test = mnist
    trainer = Trainer(TrainConfig(epochs=1, train_size=300, c3="full"), ((x, y), test), tmp_path,
                      progress=False, log=lambda s: None)
    before = trainer.net.params["C3.weight"].copy()
    trainer.run()
    after = trainer.net.params["C3.weight"]
    assert np.all((after != before)[C3_UNCONNECTED].reshape(-1, 25).any(axis=1))
    loaded = LeNet5.load(trainer.checkpoint_path)
    assert loaded.variant == trainer.config.variant and loaded.variant.c3 == "full"
    assert np.array_equal(loaded.theta, trainer.net.theta)
    # a Table I run cannot resume a fully connected checkpoint
    with pytest.raises(Lenet5Error, match="c3=full"):
        Trainer(TrainConfig(epochs=2), ((x, y), test), tmp_path, net=loaded)


def test_unknown_wiring_is_a_clear_error():
    with pytest.raises(Lenet5Error, match="unknown c3 'sparse'"):
        LeNet5.init(variant=Variant(c3="sparse"))
