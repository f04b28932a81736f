"""scikit-learn's Array API dispatch on fusejit tensors: estimators and metrics that support
the standard take fusejit tensors (through ``Tensor.__array_namespace__``) and return fusejit
tensors on the tensors' device, equal to their results on numpy arrays (``load_digits``)."""

from __future__ import annotations

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", minversion="1.6", reason="needs scikit-learn >= 1.6")
pytest.importorskip("array_api_compat", reason="scikit-learn's Array API dispatch needs it")
pytest.importorskip("scipy", minversion="1.14", reason="scikit-learn's dispatch needs scipy 1.14")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.decomposition import PCA  # noqa: E402
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # noqa: E402
from sklearn.linear_model import Ridge  # noqa: E402
from sklearn.metrics import accuracy_score, pairwise_distances, r2_score  # noqa: E402
from sklearn.preprocessing import MinMaxScaler, StandardScaler  # noqa: E402

import fusejit  # noqa: E402

if not hasattr(fusejit.Tensor, "__array_namespace__"):
    pytest.skip(
        "fusejit tensors have no Array API namespace in this build", allow_module_level=True
    )

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not fusejit.is_cuda_available(), reason="no CUDA GPU with cupy"),
        ],
    ),
]


@pytest.fixture(autouse=True)
def _scipy_array_api(monkeypatch):
    # scikit-learn refuses array_api_dispatch unless scipy's own support is on
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X.astype(np.float64), y.astype(np.int64)


def _t(a: np.ndarray, device: str):
    return fusejit.from_numpy(np.ascontiguousarray(a)).to(device)


def _both(device, fn, *arrays):
    """``fn`` on numpy arrays, and under array_api_dispatch on fusejit tensors: (numpy result,
    the tensor result as numpy), after checking that it is a tensor on ``device``."""
    ref = fn(*arrays)
    with sklearn.config_context(array_api_dispatch=True):
        got = fn(*[_t(a, device) for a in arrays])
    if isinstance(got, fusejit.Tensor):
        assert got.device.type == device
        return ref, got.cpu().numpy()
    return ref, got


@pytest.mark.parametrize("device", DEVICES)
def test_pca_full(digits, device):
    X, _ = digits

    def fit(X):
        pca = PCA(n_components=10, svd_solver="full").fit(X)
        return pca.transform(X), pca.explained_variance_, pca.components_

    ref, got = _both(device, lambda X: fit(X)[0], X)
    # components are defined up to sign; sklearn fixes the signs (svd_flip), so they match
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    ref_v, got_v = _both(device, lambda X: fit(X)[1], X)
    np.testing.assert_allclose(got_v, ref_v, rtol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
def test_linear_discriminant_analysis(digits, device):
    X, y = digits

    def run(X, y):
        lda = LinearDiscriminantAnalysis().fit(X, y)
        return lda.predict_proba(X)

    ref, got = _both(device, run, X, y)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-9)
    ref, got = _both(device, lambda X, y: LinearDiscriminantAnalysis().fit(X, y).predict(X), X, y)
    np.testing.assert_array_equal(got, ref)


@pytest.mark.parametrize("device", DEVICES)
def test_ridge_svd(digits, device):
    X, y = digits
    yf = y.astype(np.float64)
    ref, got = _both(
        device, lambda X, y: Ridge(alpha=1.0, solver="svd").fit(X, y).predict(X), X, yf
    )
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-9)
    ref, got = _both(device, lambda X, y: Ridge(alpha=1.0, solver="svd").fit(X, y).coef_, X, yf)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("scaler", [StandardScaler, MinMaxScaler])
def test_scalers(digits, device, scaler):
    X, _ = digits
    ref, got = _both(device, lambda X: scaler().fit_transform(X), X)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
    ref, got = _both(
        device, lambda X: scaler().fit(X).inverse_transform(scaler().fit_transform(X)), X
    )
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
def test_metrics(digits, device):
    X, y = digits
    yf = y.astype(np.float64)
    pred = yf * 0.9 + np.sin(np.arange(len(yf)))
    ref, got = _both(device, r2_score, yf, pred)
    np.testing.assert_allclose(float(got), ref, rtol=1e-12)
    y_pred = np.where(np.arange(len(y)) % 7 == 0, (y + 1) % 10, y)
    ref, got = _both(device, accuracy_score, y, y_pred)
    np.testing.assert_allclose(float(got), ref, rtol=1e-12)
    ref, got = _both(device, lambda a, b: pairwise_distances(a, b), X[:300], X[-200:])
    assert got.shape == (300, 200)
    np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-7)
    ref, got = _both(device, lambda a: pairwise_distances(a, metric="manhattan"), X[:100])
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-12)
