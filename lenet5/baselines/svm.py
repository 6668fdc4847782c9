"""The polynomial support vector machines of the paper's Fig. 9 (section III-C.9), with
scikit-learn's solver (the optional extra [baselines]): "SVM poly 4" (1.1%), the reduced-set
"RS-SVM poly 5" (1.0%) and the virtual-support-vector "[dist] V-SVM poly 9" (0.8%).

The paper: Burges and Schoelkopf's SVM with a polynomial kernel of degree 4 on the raw images;
it gives neither the kernel's constants nor the regularisation C. Ours: pixels scaled to 0..1,
kernel K(x, y) = (gamma x.y + coef0)^DEGREE with coef0 = 1, C = 10, one-vs-one over the 10
classes (libsvm's, as scikit-learn's SVC does it), the class with most pairwise wins. Two
gammas (GAMMAS): 1/784 (x.y/784, the mean product of pixels, is O(0.1), so the degree-4 terms
weigh little: measured 2.83%), and scikit-learn's default "scale", 1/(784 var(x)), which makes
gamma x.y O(1) so the high-degree terms count (tried after the first gave 2.83%).

RS-SVM (Burges 1996's reduced set): a degree-5 SVM's 45 one-vs-one units are each an expansion
f_u(x) = sum_i a_iu K(s_i, x) + b_u over the support vectors s_i. The reduced set replaces them
by expansions over one shared set Z of m vectors, f~_u(x) = sum_z c_zu K(z, x) + b_u, so that a
recognition costs m kernel evaluations (m x 784 multiply-adds) instead of one per support
vector; m is the paper's cost, 650,000 multiply-adds / 784 inputs = 829. Burges finds Z as
synthetic vectors by gradient descent in feature space; ours takes Z among the support vectors
(reduced_set: the m with the largest sum_u |a_iu|, those the expansions lean on most) and fits
the coefficients C by least squares to the full machine's decision values f_u - b_u on
RS_FIT_IMAGES training images (fit_reduced). Measured on MNIST (degree 5, 8,826 support
vectors, the full machine 1.75%), test error and, the criterion the choice was made by,
agreement with the full machine's answers on 10,000 other training images: pivoted incomplete
Cholesky of the kernel matrix with each unit projected onto span phi(Z) in feature space
9.82% / 90.4%; the same Z fitted to the decision values 3.03% / 97.5%; Z by Cholesky of the
normalised kernel 2.63% / 98.1%; m random support vectors 2.48% / 98.5%; the largest |a|
2.38% / 98.8% (kept).

V-SVM (Schoelkopf, Burges and Vapnik 1996's virtual support vectors): train the degree-9 SVM,
keep its support vectors, add copies of them shifted by one pixel in each of the four
directions (zero fill), and train again on that set; the shifts teach the machine the
invariance that the distortions of the [dist] rows teach the networks.
"""
import time

import numpy as np

from ..errors import Lenet5Error

DEGREE = 4
COEF0 = 1.0
C = 10.0
CACHE_MB = 500
GAMMAS = ("1/784", "scale")
RS_DEGREE = 5
V_DEGREE = 9
SHIFTS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # (rows, columns) of the virtual support vectors


def svc_class():
    """scikit-learn's SVC, or a one-line error naming the extra that installs it."""
    try:
        from sklearn.svm import SVC
    except ImportError:
        raise Lenet5Error("the SVM rows need scikit-learn: pip install 'lenet5[baselines]'") from None
    return SVC


def gamma_value(gamma, x):
    """The number a GAMMAS name stands for on the training rows x (a number stands for itself)."""
    if not isinstance(gamma, str):
        return float(gamma)
    return 1.0 / x.shape[1] if gamma == "1/784" else 1.0 / (x.shape[1] * x.var())


def poly_kernel(a, b, gamma, degree=DEGREE, coef0=COEF0):
    """The kernel matrix (gamma x.y + coef0)^degree, computed directly."""
    return (gamma * (a @ b.T) + coef0) ** degree


def fit(x, labels, gamma="1/784", degree=DEGREE, c=C):
    """An SVC on rows of x (already scaled), its kernel as poly_kernel."""
    svc = svc_class()(kernel="poly", degree=degree, gamma=gamma_value(gamma, x), coef0=COEF0, C=c,
                      cache_size=CACHE_MB, decision_function_shape="ovo")
    return svc.fit(x, labels)


def svm_error(train, train_labels, test, test_labels, gamma="1/784", degree=DEGREE, c=C):
    """Test error %, support-vector count, and training and prediction seconds (inputs: raw
    pixels 0..255)."""
    started = time.perf_counter()
    model = fit(train / 255.0, train_labels, gamma, degree, c)
    fitted = time.perf_counter()
    predicted = model.predict(test / 255.0)
    done = time.perf_counter()
    return {"error_pct": float(100.0 * np.mean(predicted != test_labels)),
            "support_vectors": int(model.n_support_.sum()), "fit_seconds": round(fitted - started, 1),
            "predict_seconds": round(done - fitted, 1), "seconds": round(done - started, 1),
            "degree": degree, "C": c, "coef0": COEF0, "gamma": gamma,
            "gamma_value": gamma_value(gamma, train / 255.0)}


# ---------------------------------------------------------------- one-vs-one expansions

def pairwise_expansion(model):
    """A fitted one-vs-one SVC as 45 explicit expansions: (support vectors S (n, d), coefficients
    A (n, units), intercepts b (units,), pairs [(i, j)]); unit u's decision on x is
    K(x, S) @ A[:, u] + b[u], and > 0 votes for class i (libsvm's convention)."""
    starts = np.r_[0, np.cumsum(model.n_support_)]
    classes = len(model.classes_)
    pairs = [(i, j) for i in range(classes) for j in range(i + 1, classes)]
    coefficients = np.zeros((len(model.support_vectors_), len(pairs)))
    for u, (i, j) in enumerate(pairs):
        si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
        coefficients[si, u] = model.dual_coef_[j - 1, si]
        coefficients[sj, u] = model.dual_coef_[i, sj]
    return np.asarray(model.support_vectors_, dtype=np.float64), coefficients, model.intercept_.copy(), pairs


def vote(decisions, pairs, classes=10):
    """One-vs-one voting: unit (i, j) gives i a vote if its decision is > 0, else j; the class
    with most votes wins, ties to the lower class (as libsvm)."""
    votes = np.zeros((len(decisions), classes), dtype=np.int64)
    for u, (i, j) in enumerate(pairs):
        positive = decisions[:, u] > 0
        votes[positive, i] += 1
        votes[~positive, j] += 1
    return np.argmax(votes, axis=1)


# ---------------------------------------------------------------- reduced set

RS_FIT_IMAGES = 20_000  # training images whose decision values the reduced expansions fit
RS_RIDGE = 1e-8  # x the mean diagonal of K^T K, added to its diagonal (float64 conditioning only)


def reduced_set(coefficients, size):
    """Indices (ascending) of the `size` support vectors with the largest sum over the units of
    |coefficient|: the vectors the expansions lean on most."""
    weight = np.abs(coefficients).sum(axis=1)
    return np.sort(np.argsort(-weight, kind="stable")[:size])


def fit_reduced(rows, targets, basis, gamma, degree, ridge=RS_RIDGE):
    """Coefficients C (len(basis), units) with K(rows, basis) C ~ targets (rows, units), by
    least squares (the normal equations in float64, `ridge` x their mean diagonal added)."""
    k = poly_kernel(rows, basis, gamma, degree)
    gram = k.T @ k
    gram[np.diag_indices_from(gram)] += ridge * np.trace(gram) / len(gram)
    return np.linalg.solve(gram, k.T @ targets)


def decisions(x, basis, basis_coefficients, intercepts, gamma, degree, chunk=2000):
    """Every unit's decision on each row of x from an expansion over `basis`."""
    out = np.empty((len(x), basis_coefficients.shape[1]))
    for start in range(0, len(x), chunk):
        k = poly_kernel(x[start:start + chunk], basis, gamma, degree)
        out[start:start + chunk] = k @ basis_coefficients + intercepts
    return out


def rs_svm_error(train, train_labels, test, test_labels, size, gamma="scale", degree=RS_DEGREE, c=C,
                 fit_images=RS_FIT_IMAGES, seed=0):
    """The reduced-set SVM (inputs: raw pixels 0..255): the full degree-`degree` SVM, then its
    expansions reduced to `size` shared vectors; test error % of both, with times."""
    x, t = train / 255.0, test / 255.0
    started = time.perf_counter()
    model = fit(x, train_labels, gamma, degree, c)
    fitted = time.perf_counter()
    full = model.predict(t)
    full_predicted = time.perf_counter()
    vectors, coefficients, intercepts, pairs = pairwise_expansion(model)
    g = model.gamma
    basis = vectors[reduced_set(coefficients, size)]
    rows = x[np.sort(np.random.default_rng(seed).choice(len(x), min(fit_images, len(x)), replace=False))]
    targets = decisions(rows, vectors, coefficients, intercepts, g, degree) - intercepts
    beta = fit_reduced(rows, targets, basis, g, degree)
    reduced = time.perf_counter()
    predicted = model.classes_[vote(decisions(t, basis, beta, intercepts, g, degree), pairs,
                                    len(model.classes_))]
    done = time.perf_counter()
    return {"error_pct": float(100.0 * np.mean(predicted != test_labels)),
            "full_error_pct": float(100.0 * np.mean(full != test_labels)),
            "agreement_pct": float(100.0 * np.mean(predicted == full)),
            "support_vectors": int(len(vectors)), "reduced_set": int(len(basis)), "fit_images": int(len(rows)),
            "multiply_adds": int(len(basis) * x.shape[1]),
            "full_multiply_adds": int(len(vectors) * x.shape[1]),
            "fit_seconds": round(fitted - started, 1), "full_predict_seconds": round(full_predicted - fitted, 1),
            "reduce_seconds": round(reduced - full_predicted, 1), "predict_seconds": round(done - reduced, 1),
            "seconds": round(done - started, 1), "degree": degree, "C": c, "coef0": COEF0, "gamma": gamma,
            "gamma_value": float(g)}


# ---------------------------------------------------------------- virtual support vectors

def shifted(images, rows, columns):
    """(n, h, w) images moved by (rows, columns) pixels, the uncovered border zero (white)."""
    out = np.zeros_like(images)
    h, w = images.shape[1:]
    out[:, max(rows, 0):h + min(rows, 0), max(columns, 0):w + min(columns, 0)] = \
        images[:, max(-rows, 0):h - max(rows, 0), max(-columns, 0):w - max(columns, 0)]
    return out


def virtual_support_vectors(vectors, labels, side=28):
    """The support vectors and their copies shifted by one pixel in each direction of SHIFTS:
    (rows (5n, d), labels (5n,))."""
    images = vectors.reshape(len(vectors), side, side)
    copies = [vectors] + [shifted(images, r, c).reshape(len(vectors), -1) for r, c in SHIFTS]
    return np.concatenate(copies), np.tile(labels, len(copies))


def v_svm_error(train, train_labels, test, test_labels, gamma="scale", degree=V_DEGREE, c=C):
    """The virtual-support-vector SVM (inputs: raw pixels 0..255): a degree-`degree` SVM, then
    another trained on its support vectors and their shifted copies; test error % of both, with
    times. gamma is the first machine's, kept for the second."""
    x, t = train / 255.0, test / 255.0
    value = gamma_value(gamma, x)
    started = time.perf_counter()
    first = fit(x, train_labels, value, degree, c)
    fitted = time.perf_counter()
    first_error = float(100.0 * np.mean(first.predict(t) != test_labels))
    first_predicted = time.perf_counter()
    rows, labels = virtual_support_vectors(x[first.support_], train_labels[first.support_])
    second = fit(rows, labels, value, degree, c)
    refitted = time.perf_counter()
    predicted = second.predict(t)
    done = time.perf_counter()
    return {"error_pct": float(100.0 * np.mean(predicted != test_labels)), "first_error_pct": first_error,
            "first_support_vectors": int(len(first.support_)), "virtual_training_set": int(len(rows)),
            "support_vectors": int(len(second.support_)),
            "first_fit_seconds": round(fitted - started, 1),
            "first_predict_seconds": round(first_predicted - fitted, 1),
            "fit_seconds": round(refitted - first_predicted, 1), "predict_seconds": round(done - refitted, 1),
            "seconds": round(done - started, 1), "degree": degree, "C": c, "coef0": COEF0,
            "gamma": gamma, "gamma_value": value}
