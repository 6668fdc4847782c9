"""Variant(inputs="unit"): the paper's stated intent for the input ("mean roughly 0, variance
roughly 1"), read as the printed -0.1/1.175 values standardised by the training set."""
import numpy as np
import pytest

from lenet5 import LeNet5
from lenet5.core.architecture import Variant
from lenet5.core.paper import TRAIN_MEAN, TRAIN_STD


@pytest.mark.slow
def test_the_standardisation_constants_are_the_training_sets(mnist):
    (train, _), _ = mnist
    values = train.astype(np.float64)
    assert abs(values.mean() - TRAIN_MEAN) < 1e-12 and abs(values.std() - TRAIN_STD) < 1e-12
    assert 0.1 < values.var() < 0.15  # the printed mapping is far from variance 1


def test_a_unit_input_network_is_the_paper_network_on_standardised_images(mnist):
    (train, labels), _ = mnist
    x, y = train[:20].astype(np.float64), labels[:20]
    unit = LeNet5.init(seed=4, dtype=np.float64, variant=Variant(inputs="unit"))
    paper = LeNet5(unit.theta.copy(), unit.prototypes, Variant())
    standard = (x - TRAIN_MEAN) / TRAIN_STD
    np.testing.assert_allclose(unit.forward(x), paper.forward(standard), rtol=1e-12)
    np.testing.assert_allclose(unit.losses_and_flat_gradient(x, y)[1], paper.losses_and_flat_gradient(standard, y)[1],
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(unit.layers(x[0])["input"], x[0], atol=1e-12)  # drawn on the printed levels
    np.testing.assert_allclose(unit.layers(x[0])["C1"], paper.layers(standard[0])["C1"], rtol=1e-12)
