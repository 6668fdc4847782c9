"""The `average` subsampling variant: S2/S4 coefficients fixed at 1/4 and biases at 0."""
import numpy as np
import pytest

from lenet5 import LeNet5, Lenet5Error
from lenet5.core.architecture import SUBSAMPLING_PARAMS
from lenet5.training.trainer import TrainConfig, Trainer


@pytest.mark.parametrize("optimizer,batch", [("sdlm", 1), ("sgd", 16)])
def test_average_pooling_stays_a_fixed_average_while_the_rest_trains(mnist, tmp_path, optimizer, batch):
    (x, y), test = mnist
    cfg = TrainConfig(epochs=1, train_size=320, pooling="average", optimizer=optimizer, batch_size=batch)
    trainer = Trainer(cfg, ((x, y), test), tmp_path, progress=False, log=lambda s: None)
    start = trainer.net.theta.copy()
    trainer.run()
    net = LeNet5.load(trainer.checkpoint_path)
    for name in SUBSAMPLING_PARAMS:
        assert np.all(net.params[name] == (0.25 if name.endswith("coeff") else 0.0)), name
    assert not np.array_equal(net.params["C1.weight"], LeNet5.views(start)["C1.weight"])


def test_unknown_pooling_is_a_clear_error():
    with pytest.raises(Lenet5Error, match="unknown pooling 'median'"):
        TrainConfig(pooling="median").check()
