"""The polynomial support vector machine of the paper's Fig. 9 ("SVM poly 4", 1.1%; section
III-C.9), with scikit-learn's solver (the optional extra [baselines]).

The paper: Burges and Schoelkopf's SVM with a polynomial kernel of degree 4 on the raw images;
it gives neither the kernel's constants nor the regularisation C. Ours: pixels scaled to 0..1,
kernel K(x, y) = (gamma x.y + coef0)^DEGREE with coef0 = 1, C = 10, one-vs-one over the 10
classes (libsvm's, as scikit-learn's SVC does it), the class with most pairwise wins. Two
gammas (GAMMAS): 1/784 (x.y/784, the mean product of pixels, is O(0.1), so the degree-4 terms
weigh little: measured 2.83%), and scikit-learn's default "scale", 1/(784 var(x)), which makes
gamma x.y O(1) so the high-degree terms count (tried after the first gave 2.83%).
"""
import time

import numpy as np

from ..errors import Lenet5Error

DEGREE = 4
COEF0 = 1.0
C = 10.0
CACHE_MB = 500
GAMMAS = ("1/784", "scale")


def svc_class():
    """scikit-learn's SVC, or a one-line error naming the extra that installs it."""
    try:
        from sklearn.svm import SVC
    except ImportError:
        raise Lenet5Error("the SVM rows need scikit-learn: pip install 'lenet5[baselines]'") from None
    return SVC


def gamma_value(gamma, x):
    """The number a GAMMAS name stands for on the training rows x."""
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
