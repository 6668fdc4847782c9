"""The classical Fig. 9 rows (lenet5.baselines.classical) against brute-force references."""
import gzip

import numpy as np
import pytest

from lenet5.baselines import classical


@pytest.fixture(scope="module")
def subset(mnist):
    """Raw pixels of 2,000 training and 200 test digits."""
    (train, train_labels), (test, test_labels) = mnist
    return (classical.raw_pixels(train[:2000]), train_labels[:2000],
            classical.raw_pixels(test[:200]), test_labels[:200])


def test_raw_pixels_undo_the_preprocessing_exactly(mnist, shared_mnist_dir):
    with gzip.open(shared_mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        raw = np.frombuffer(f.read()[16:], dtype=np.uint8).reshape(-1, 784)
    assert np.array_equal(classical.raw_pixels(mnist[1][0]), raw)


def brute_force_neighbours(train, test, k):
    """Every distance summed directly, neighbours sorted by (distance, training index)."""
    out = []
    for t in test:
        d = ((train - t) ** 2).sum(axis=1)
        out.append(sorted(range(len(train)), key=lambda i: (d[i], i))[:k])
    return np.array(out)


def test_nearest_neighbours_match_brute_force(subset):
    train, _, test, _ = subset
    index, dist = classical.nearest_neighbours(train, test[:60], 3, chunk=16)
    assert np.array_equal(index, brute_force_neighbours(train, test[:60], 3))
    assert np.array_equal(dist, ((train[index] - test[:60, None]) ** 2).sum(axis=2))  # exact


def test_equal_distances_go_to_the_earlier_training_image(subset):
    train, _, test, _ = subset
    # three copies of one image at indices 5, 9, 700: each sits at the same distance from all
    train = train.copy()
    train[[9, 700]] = train[5]
    index, _ = classical.nearest_neighbours(train, train[5:6] + 1.0, 3)
    assert index.tolist() == [[5, 9, 700]]


def test_vote_majority_and_ties():
    labels = np.array([[7, 3, 3], [7, 3, 1], [2, 2, 9], [4, 4, 4]])
    assert classical.vote(labels).tolist() == [3, 7, 2, 4]  # 1-1-1 tie: the nearest wins


def test_knn_error_matches_a_brute_force_vote(subset):
    train, train_labels, test, test_labels = subset
    errors = classical.knn_errors(train, train_labels, test, test_labels)
    nearest = brute_force_neighbours(train, test, 3)
    one = 100 * np.mean(train_labels[nearest[:, 0]] != test_labels)
    assert errors[1] == pytest.approx(one)
    assert 0 < errors[1] < 25 and 0 < errors[3] < 25


def test_pca_is_the_top_of_the_covariance_spectrum(subset):
    train = subset[0]
    mean, basis, values = classical.pca(train, 5)
    assert np.allclose(basis.T @ basis, np.eye(5))
    z = (train - mean) @ basis
    assert np.allclose(z.var(axis=0), values)  # the variance along each component
    assert np.all(np.diff(values) <= 0)
    assert values[0] == pytest.approx(np.linalg.eigvalsh(np.cov(train, rowvar=False, bias=True))[-1])


def test_quadratic_features_are_all_degree_two_monomials():
    z = np.array([[2.0, 3.0, 5.0]])
    assert classical.quadratic_features(z).tolist() == [[1, 2, 3, 5, 4, 6, 10, 9, 15, 25]]
    assert classical.quadratic_features(np.zeros((1, 40))).shape[1] == 861


def test_pca_quadratic_and_rbf_learn(subset):
    train, train_labels, test, test_labels = subset
    quad = classical.pca_quadratic_errors(train, train_labels, test, test_labels, components=20)
    assert quad["features"] == 1 + 20 + 210
    assert quad["polynomial"] < 20 and quad["gaussian"] < 20
    rbf = classical.rbf_network_error(train, train_labels, test, test_labels, per_class=10)
    assert rbf["units"] == 100 and rbf["error_pct"] < 25


def test_kmeans_finds_separated_clusters():
    rng = np.random.default_rng(1)
    x = np.vstack([rng.normal(c, 0.1, (50, 2)) for c in (0.0, 10.0, 20.0)])
    centres, assign, passes = classical.kmeans(x, 3, np.random.default_rng(0))
    assert sorted(np.round(centres[:, 0]).tolist()) == [0, 10, 20]
    assert len(set(assign[:50])) == 1 and passes < classical.KMEANS_ITERATIONS
