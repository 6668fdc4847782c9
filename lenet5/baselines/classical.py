"""The classical rows of the paper's Fig. 9 (section III-C.1 to III-C.5), numpy only.

All three work on the raw 28x28 pixels, 0..255 (`raw_pixels` undoes the preprocessing of
lenet5.data.mnist exactly), as 784-vectors in float64.

k-nearest neighbours (paper: "K-NN Euclidean", 5.0%)
    Euclidean distance on the raw pixels. Squared distances by ||a||^2 - 2 a.b + ||b||^2, a
    chunk of test images at a time. With integer pixels every term is an integer below 2^53,
    so float64 computes them exactly and equal distances really are equal. Order of the
    neighbours: by distance, then by training index (the earlier training image first).
    Vote (k > 1): the label with the most neighbours; a tie between labels goes to the tied
    label whose nearest member comes first in that order.

40 PCA + quadratic classifier (paper: 3.3%)
    The paper: project on the 40 principal components of the training set (mean subtracted,
    covariance diagonalised), then "a second degree polynomial classifier ... a linear
    classifier with 821 inputs, preceded by a module that computes all products of pairs of
    input variables". 821 is 1 + 820 and fits both 40 + 780 (linear terms and products of
    distinct pairs) and 40*41/2 (products with squares, no linear terms), so we use the full
    second-degree polynomial, a superset of both: 1 + 40 + 820 = 861 features. Components are
    whitened (divided by the square root of their eigenvalue) so the products are O(1); the
    linear layer is the least-squares fit (numpy lstsq, i.e. the pseudo-inverse) to one-hot
    targets; the class is the argmax. Also reported, as the other interpretation of "quadratic
    classifier": per-class Gaussians with full covariance in the same 40-d space (QDA: class
    prior from its frequency, the class with the highest log posterior wins).

1000 RBF units + linear classifier (paper: 3.6%)
    The paper: 1,000 Gaussian RBF units on the 28x28 inputs, 10 groups of 100, each group
    trained by (adaptive) k-means on the training images of one class; a 1000-input, 10-output
    linear second layer "computed using a regularized pseudo-inverse method". Our choices
    (the paper states none of them): batch k-means (Lloyd) per class, 100 centres started at
    100 distinct images of the class drawn with the seed, at most KMEANS_ITERATIONS passes or
    until no assignment changes, an emptied centre re-seeded at the member farthest from its
    centre; unit k outputs exp(-||x - c_k||^2 / (2 sigma_k^2)) with sigma_k the root-mean-square
    distance of its cluster's members to c_k; the linear layer (1000 weights + a bias per
    output) by ridge regression to one-hot targets, W = (A^T A + lambda I)^-1 A^T T with
    lambda = RIDGE times the mean diagonal of A^T A; the class is the argmax.
"""
import numpy as np

from ..core.paper import BACKGROUND, INK
from ..data.idx import IMAGE_SIZE, NUM_CLASSES
from ..data.mnist import PAD

PCA_COMPONENTS = 40
RBF_PER_CLASS = 100  # 10 groups of 100 units
KMEANS_ITERATIONS = 30
RIDGE = 1e-6
CHUNK = 500  # test images per distance block (500 x 60,000 float64: 240 MB)


def raw_pixels(images):
    """Preprocessed (N, 32, 32) images -> (N, 784) float64 raw pixels 0..255 (integers): the
    padding cropped and the linear map of lenet5.data.mnist.preprocess undone."""
    inner = np.asarray(images, dtype=np.float64)[:, PAD:PAD + IMAGE_SIZE, PAD:PAD + IMAGE_SIZE]
    return np.rint((inner - BACKGROUND) * (255.0 / (INK - BACKGROUND))).reshape(len(inner), -1)


def squared_distances(a, b, b_norms=None):
    """||a_i - b_j||^2 for every pair, (len(a), len(b)), as ||a||^2 - 2 a.b + ||b||^2."""
    b_norms = np.einsum("ij,ij->i", b, b) if b_norms is None else b_norms
    d = (a * a).sum(axis=1)[:, None] - 2.0 * (a @ b.T) + b_norms[None, :]
    return np.maximum(d, 0.0, out=d)  # (rounding on non-integer data)


def nearest_neighbours(train, test, k, chunk=CHUNK):
    """(indices (len(test), k), squared distances) of each test vector's k nearest training
    vectors, ordered by distance, then by training index."""
    norms = np.einsum("ij,ij->i", train, train)
    index = np.empty((len(test), k), dtype=np.int64)
    dist = np.empty((len(test), k))
    for start in range(0, len(test), chunk):
        d = squared_distances(test[start:start + chunk], train, norms)
        kth = np.partition(d, k - 1, axis=1)[:, k - 1:k]  # the k-th smallest distance per row
        for row in range(len(d)):
            candidates = np.flatnonzero(d[row] <= kth[row])  # ascending index; ties included
            best = candidates[np.argsort(d[row, candidates], kind="stable")[:k]]
            index[start + row], dist[start + row] = best, d[row, best]
    return index, dist


def vote(neighbour_labels):
    """Majority label of each row of neighbours (nearest first); a tie goes to the tied label
    whose nearest member comes first."""
    out = np.empty(len(neighbour_labels), dtype=np.int64)
    for row, labels in enumerate(neighbour_labels):
        counts = np.bincount(labels, minlength=NUM_CLASSES)
        out[row] = next(label for label in labels if counts[label] == counts.max())
    return out


def knn_errors(train, train_labels, test, test_labels, ks=(1, 3)):
    """k -> test error % of k-NN with Euclidean distance, for every k in ks (one search)."""
    index, _ = nearest_neighbours(train, test, max(ks))
    labels = train_labels[index]
    return {k: error_pct(vote(labels[:, :k]), test_labels) for k in ks}


def error_pct(predicted, labels):
    return float(100.0 * np.mean(np.asarray(predicted) != np.asarray(labels)))


# ---------------------------------------------------------------- PCA + quadratic

def pca(train, components=PCA_COMPONENTS):
    """(mean, basis (784, components), eigenvalues) of the training set's covariance, largest
    first; each basis vector's sign makes its largest-magnitude entry positive."""
    mean = train.mean(axis=0)
    centred = train - mean
    values, vectors = np.linalg.eigh(centred.T @ centred / len(train))
    order = np.argsort(values)[::-1][:components]
    basis, values = vectors[:, order], values[order]
    signs = np.sign(basis[np.abs(basis).argmax(axis=0), np.arange(components)])
    return mean, basis * signs, values


def quadratic_features(z):
    """[1, z_i, z_i z_j (i <= j)]: the full second-degree polynomial of each row of z."""
    i, j = np.triu_indices(z.shape[1])
    return np.hstack([np.ones((len(z), 1)), z, z[:, i] * z[:, j]])


def one_hot(labels):
    return np.eye(NUM_CLASSES)[labels]


def pca_quadratic_errors(train, train_labels, test, test_labels, components=PCA_COMPONENTS):
    """Test error % of the polynomial classifier and of the per-class Gaussians (QDA), both on
    the whitened projections onto the top principal components (see the module docstring)."""
    mean, basis, values = pca(train, components)
    project = lambda x: (x - mean) @ basis / np.sqrt(values)  # noqa: E731
    z_train, z_test = project(train), project(test)
    weights, *_ = np.linalg.lstsq(quadratic_features(z_train), one_hot(train_labels), rcond=None)
    poly = (quadratic_features(z_test) @ weights).argmax(axis=1)
    return {"polynomial": error_pct(poly, test_labels),
            "gaussian": error_pct(gaussian_classes(z_train, train_labels, z_test), test_labels),
            "features": int(weights.shape[0])}


def gaussian_classes(z_train, train_labels, z_test):
    """Predicted class of each z_test row under per-class Gaussians (full covariance, maximum
    likelihood) and class priors from the training frequencies."""
    scores = np.empty((len(z_test), NUM_CLASSES))
    for c in range(NUM_CLASSES):
        members = z_train[train_labels == c]
        mu, cov = members.mean(axis=0), np.cov(members, rowvar=False, bias=True)
        chol = np.linalg.cholesky(cov)
        w = np.linalg.solve(chol, (z_test - mu).T)  # Mahalanobis via the Cholesky factor
        log_det = 2.0 * np.log(np.diag(chol)).sum()
        scores[:, c] = -0.5 * (w * w).sum(axis=0) - 0.5 * log_det + np.log(len(members) / len(z_train))
    return scores.argmax(axis=1)


# ---------------------------------------------------------------- RBF network

def kmeans(x, k, rng, iterations=KMEANS_ITERATIONS):
    """Lloyd's k-means: (centres (k, d), assignment of each row of x, passes run)."""
    centres = x[rng.choice(len(x), size=k, replace=False)].copy()
    norms = np.einsum("ij,ij->i", x, x)
    assign = np.full(len(x), -1)
    for done in range(1, iterations + 1):
        d = squared_distances(centres, x, norms)  # (k, n)
        new = d.argmin(axis=0)
        if np.array_equal(new, assign):
            return centres, assign, done
        assign = new
        for c in range(k):
            members = x[assign == c]
            if len(members):
                centres[c] = members.mean(axis=0)
            else:  # re-seed an emptied centre at the point farthest from its own centre
                far = int(d[assign, np.arange(len(x))].argmax())
                centres[c], assign[far] = x[far], c
    return centres, assign, iterations


def rbf_centres(train, train_labels, per_class=RBF_PER_CLASS, seed=0):
    """(centres (10 * per_class, 784), widths sigma) from k-means on each class's images."""
    rng = np.random.default_rng(seed)
    centres, widths = [], []
    for c in range(NUM_CLASSES):
        x = train[train_labels == c]
        found, assign, _ = kmeans(x, per_class, rng)
        for k in range(per_class):
            members = x[assign == k]
            spread = np.sqrt(((members - found[k]) ** 2).sum(axis=1).mean()) if len(members) else 0.0
            widths.append(spread)
        centres.append(found)
    widths = np.array(widths)
    widths[widths == 0] = np.median(widths[widths > 0])  # (a centre on a single image)
    return np.vstack(centres), widths


def rbf_activations(x, centres, widths, chunk=CHUNK * 4):
    """Gaussian unit outputs exp(-||x - c||^2 / (2 sigma^2)), (len(x), units), plus a bias column."""
    norms = np.einsum("ij,ij->i", centres, centres)
    out = np.empty((len(x), len(centres) + 1))
    out[:, -1] = 1.0
    for start in range(0, len(x), chunk):
        d = squared_distances(x[start:start + chunk], centres, norms)
        out[start:start + chunk, :-1] = np.exp(-d / (2.0 * widths ** 2))
    return out


def rbf_network_error(train, train_labels, test, test_labels, per_class=RBF_PER_CLASS, seed=0):
    """Test error % of the RBF network (see the module docstring), and its unit count."""
    centres, widths = rbf_centres(train, train_labels, per_class, seed)
    a = rbf_activations(train, centres, widths)
    gram = a.T @ a
    gram[np.diag_indices_from(gram)] += RIDGE * np.trace(gram) / len(gram)
    weights = np.linalg.solve(gram, a.T @ one_hot(train_labels))
    predicted = (rbf_activations(test, centres, widths) @ weights).argmax(axis=1)
    return {"error_pct": error_pct(predicted, test_labels), "units": len(centres),
            "median_width": float(np.median(widths))}
