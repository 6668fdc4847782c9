"""LeNet-4 / K-NN and LeNet-4 / local learning (the paper's Fig. 9, section III-C.8: 1.1% each).

The paper replaces LeNet-4's last layer by "a Euclidean nearest neighbor classifier" or by "a
local learning method of Bottou and Vapnik, in which a local linear classifier is retrained
each time a new test pattern is shown", both working on LeNet-4's penultimate layer (C5, 120
features). The paper gives neither k nor the neighbourhood size; ours:

K-NN: Euclidean distance on the 120 features, k = 1 and 3, the search and the vote of
    lenet5.baselines.classical (ties to the earlier training image).
Local learning: for each test pattern, its NEIGHBOURS nearest training patterns (Euclidean, in
    the feature space); on them a linear classifier (120 weights + a bias per class) fitted by
    ridge least squares to +-1 targets, W = (A^T A + lambda I)^-1 A^T T, lambda = RIDGE times
    the mean diagonal of A^T A (bias not penalised; Bottou and Vapnik's weight decay keeps
    the local fit from following the few patterns); the class is the argmax of its outputs at
    the test pattern. Inputs are centred on the test pattern, so the bias is the output there.
    If all neighbours have one label, that label.
"""
import numpy as np

from ..data.idx import NUM_CLASSES
from . import classical

NEIGHBOURS = 200
RIDGE = 0.01


def features(net, images, layer="C5"):
    """(N, units) outputs of `layer` for each (32, 32) image (model.Net.layers)."""
    return np.array([net.layers(image[None])[layer].ravel() for image in images], dtype=np.float64)


def local_fit_predict(neighbours, labels, point, ridge=RIDGE):
    """Class of `point` by the ridge linear classifier fitted on (neighbours, labels)."""
    if np.all(labels == labels[0]):
        return int(labels[0])
    a = np.hstack([neighbours - point, np.ones((len(neighbours), 1))])
    gram = a.T @ a
    d = len(gram) - 1
    gram[np.arange(d), np.arange(d)] += ridge * max(np.trace(gram[:d, :d]) / d, 1e-12)
    targets = np.where(labels[:, None] == np.arange(NUM_CLASSES)[None, :], 1.0, -1.0)
    weights = np.linalg.solve(gram, a.T @ targets)
    return int(weights[-1].argmax())  # the outputs at the point itself: the bias row


def local_learning_predict(train, train_labels, test, neighbours=NEIGHBOURS, ridge=RIDGE):
    """Each test row's class by local learning on its `neighbours` nearest training rows."""
    index, _ = classical.nearest_neighbours(train, test, neighbours)
    return np.array([local_fit_predict(train[i], train_labels[i], p, ridge) for i, p in zip(index, test)])


def feature_errors(train, train_labels, test, test_labels, neighbours=NEIGHBOURS, ridge=RIDGE):
    """Test error % of k-NN (k = 1, 3) and of local learning on the given features."""
    index, _ = classical.nearest_neighbours(train, test, max(3, neighbours))
    labels = train_labels[index]
    out = {f"knn_k{k}": classical.error_pct(classical.vote(labels[:, :k]), test_labels) for k in (1, 3)}
    local = [local_fit_predict(train[i[:neighbours]], train_labels[i[:neighbours]], p, ridge)
             for i, p in zip(index, test)]
    out["local"] = classical.error_pct(local, test_labels)
    return out
