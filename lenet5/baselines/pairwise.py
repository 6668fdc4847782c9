"""The pairwise linear classifier of the paper's Fig. 9 (section III-C.2, 7.6% test error).

The paper: a single layer of 45 units labelled 0/1, 0/2, ..., 8/9; "unit i/j is trained to
produce +1 on patterns of class i, -1 on patterns of class j, and is not trained on other
patterns. The final score for class i is the sum of the outputs of all the units labelled i/x
minus the sum of the outputs of all the units labelled y/i, for all x and y."

Our choices (the paper gives no training procedure): each unit is linear (784 weights + a
bias) on the raw pixels scaled to 0..1, and is the minimiser of the squared error to its +-1
targets on the training patterns of its two classes, with a small ridge term for the pixels
that are blank in both classes: (A^T A + lambda I) w = A^T t, lambda = RIDGE times the mean
diagonal of A^T A (the bias not penalised). That is what gradient descent on the mean squared
error converges to, computed directly. The class is the argmax of the scores.

What a unit's "output" is the paper does not say either; its units are usually squashed.
Computed for three interpretations (OUTPUTS): "vote", each unit's output thresholded to +-1 (the
score of class i is then its wins minus its losses); "tanh", tanh of the unit's sum; "linear",
the sum itself. With linear outputs, the units i/j, which never saw the other eight classes,
give large outputs of either sign on them and swamp the two units that know the answer;
squashing bounds them (measured on MNIST: vote 6.98%, tanh 9.95%, linear 18.05%; the paper
7.6%).
"""
import numpy as np

from ..data.idx import NUM_CLASSES

RIDGE = 1e-4
OUTPUTS = {"vote": np.sign, "tanh": np.tanh, "linear": lambda a: a}
PAIRS = tuple((i, j) for i in range(NUM_CLASSES) for j in range(i + 1, NUM_CLASSES))  # 45 units


def with_bias(x):
    return np.hstack([np.asarray(x, dtype=np.float64), np.ones((len(x), 1))])


def fit_unit(a, t, ridge=RIDGE):
    """Ridge least squares (A^T A + lambda I) w = A^T t, the last column (bias) not penalised."""
    gram = a.T @ a
    penalty = ridge * np.trace(gram[:-1, :-1]) / (len(gram) - 1)
    gram[np.arange(len(gram) - 1), np.arange(len(gram) - 1)] += penalty
    return np.linalg.solve(gram, a.T @ t)


def fit(x, labels, ridge=RIDGE):
    """(45, d + 1) weights of the units in PAIRS order, unit i/j fitted on classes i and j only."""
    a = with_bias(x)
    weights = []
    for i, j in PAIRS:
        mine = (labels == i) | (labels == j)
        weights.append(fit_unit(a[mine], np.where(labels[mine] == i, 1.0, -1.0), ridge))
    return np.array(weights)


def scores(weights, x, output="vote"):
    """(N, 10) class scores: sum of the outputs of units i/x minus those of units y/i, a unit's
    output being OUTPUTS[output] of its weighted sum."""
    outputs = OUTPUTS[output](with_bias(x) @ weights.T)  # (N, 45)
    out = np.zeros((len(outputs), NUM_CLASSES))
    for unit, (i, j) in enumerate(PAIRS):
        out[:, i] += outputs[:, unit]
        out[:, j] -= outputs[:, unit]
    return out


def pairwise_error(train, train_labels, test, test_labels, ridge=RIDGE):
    """Test (and training) error % of the pairwise linear classifier for each reading of a
    unit's output (inputs: raw pixels 0..255)."""
    weights = fit(train / 255.0, train_labels, ridge)
    out = {"units": len(PAIRS)}
    for output in OUTPUTS:
        for name, x, labels in (("", test, test_labels), ("train_", train, train_labels)):
            wrong = scores(weights, x / 255.0, output).argmax(axis=1) != labels
            out[f"{name}{output}"] = float(100.0 * np.mean(wrong))
    return out
