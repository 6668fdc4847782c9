"""The polynomial SVM (lenet5.baselines.svm): its decision values recomputed from the support
vectors with the kernel written out, and the message when scikit-learn is missing."""
import sys

import numpy as np
import pytest

from lenet5.baselines import svm
from lenet5.errors import Lenet5Error


@pytest.mark.slow
def test_svm_decisions_match_the_kernel_expansion():
    rng = np.random.default_rng(0)
    centres = rng.random((3, 12))
    y = rng.integers(0, 3, size=90)
    x = np.clip(centres[y] + 0.3 * rng.normal(size=(90, 12)), 0, 1)
    model = svm.fit(x, y, "scale")
    probe = rng.random((7, 12))
    # one-vs-one: f_ij(p) = sum over SVs of classes i, j of dual_coef * K(sv, p) + b_ij
    assert model.gamma == pytest.approx(1 / (12 * x.var()))
    k = svm.poly_kernel(probe, model.support_vectors_, model.gamma)
    starts = np.r_[0, np.cumsum(model.n_support_)]
    want, unit = [], 0
    for i in range(3):
        for j in range(i + 1, 3):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            f = (k[:, si] @ model.dual_coef_[j - 1, si] + k[:, sj] @ model.dual_coef_[i, sj]
                 + model.intercept_[unit])
            want.append(f)
            unit += 1
    assert np.allclose(model.decision_function(probe), np.array(want).T, atol=1e-8)
    result = svm.svm_error(x * 255, y, x[:30] * 255, y[:30])
    assert result["error_pct"] < 10 and result["support_vectors"] <= 90


def test_missing_scikit_learn_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.svm", None)
    with pytest.raises(Lenet5Error, match=r"lenet5\[baselines\]"):
        svm.svc_class()
