"""LeNet-4 / K-NN and / local learning (lenet5.baselines.local) against a brute-force
computation on small random features."""
import numpy as np

from lenet5.baselines import local


def brute_local(train, labels, point, neighbours, ridge):
    """Full sort of the distances, then the ridge fit as an augmented least-squares problem."""
    order = sorted(range(len(train)), key=lambda i: (float(((train[i] - point) ** 2).sum()), i))[:neighbours]
    x, y = train[order] - point, labels[order]
    if len(set(y.tolist())) == 1:
        return int(y[0])
    a = np.c_[x, np.ones(len(x))]
    lam = ridge * np.trace(x.T @ x) / x.shape[1]
    penalty = np.c_[np.sqrt(lam) * np.eye(x.shape[1]), np.zeros((x.shape[1], 1))]
    targets = np.where(y[:, None] == np.arange(10)[None, :], 1.0, -1.0)
    w, *_ = np.linalg.lstsq(np.vstack([a, penalty]), np.vstack([targets, np.zeros((x.shape[1], 10))]),
                            rcond=None)
    return int(np.argmax(w[-1]))


def test_local_learning_matches_brute_force():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 5)) * 2
    labels = rng.integers(0, 10, size=300)
    train = centres[labels] + rng.normal(size=(300, 5))
    test = centres[rng.integers(0, 10, size=40)] + rng.normal(size=(40, 5))
    got = local.local_learning_predict(train, labels, test, neighbours=30, ridge=0.05)
    want = [brute_local(train, labels, p, 30, 0.05) for p in test]
    assert list(got) == want
    assert len(set(want)) > 3  # the fits do pick different classes
    # a neighbourhood of one class answers that class without a fit
    assert local.local_fit_predict(train[labels == 4][:5], labels[labels == 4][:5], test[0]) == 4


def test_feature_errors_reports_knn_and_local():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 4)) * 6
    y = rng.integers(0, 10, size=200)
    x = centres[y] + rng.normal(size=(200, 4))
    ty = rng.integers(0, 10, size=50)
    tx = centres[ty] + rng.normal(size=(50, 4))
    out = local.feature_errors(x, y, tx, ty, neighbours=25, ridge=0.01)
    nearest = np.argmin(((tx[:, None, :] - x[None]) ** 2).sum(axis=2), axis=1)
    assert out["knn_k1"] == 100.0 * np.mean(y[nearest] != ty)
    want = np.mean(np.array([brute_local(x, y, p, 25, 0.01) for p in tx]) != ty) * 100
    assert out["local"] == want and out["local"] < 20
