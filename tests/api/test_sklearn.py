"""nblstm.sklearn: scikit-learn's estimator checks, its tools, pickle and joblib, the fit itself."""
import pickle

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="scikit-learn is the sklearn extra (in the [test] extra)")

from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit, cross_val_score  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import FunctionTransformer, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import nblstm  # noqa: E402
from nblstm.sklearn import LSTMClassifier, LSTMRegressor  # noqa: E402

# short fits that stop at max_iter warn, as MLPRegressor's do; the tests that mean it check for the warning
pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

# scikit-learn's checks fit many times: small models keep them to seconds
SMALL = dict(hidden_size=4, max_iter=5)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.DataConversionWarning")
@parametrize_with_checks([LSTMRegressor(**SMALL), LSTMClassifier(**SMALL)])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def _series(n=120, T=8, seed=0):
    """Windows of a noisy sine: X (n, T, 1), y the next value."""
    rng = np.random.default_rng(seed)
    s = np.sin(np.arange(n + T + 1) * 0.3) + 0.05 * rng.normal(size=n + T + 1)
    X = np.stack([s[i:i + T] for i in range(n)])[..., None]
    return X, s[T:T + n]


def test_regressor_fits_a_series_with_both_solvers():
    X, y = _series()
    for solver, kw in [("lbfgs", dict(max_iter=300)), ("adam", dict(max_iter=300, learning_rate_init=0.01))]:
        est = LSTMRegressor(8, solver=solver, random_state=0, tol=1e-6, **kw)
        est.fit(X, y)
        assert est.score(X, y) > 0.95, solver
        assert est.n_iter_ == len(est.loss_curve_) >= 1
        assert est.predict(X).shape == (120,)
        assert isinstance(est.model_, nblstm.LSTMModel)


def test_early_stopping_records_validation_scores():
    X, y = _series(n=200)
    est = LSTMRegressor(8, early_stopping=True, learning_rate_init=0.02, max_iter=400, n_iter_no_change=5,
                        random_state=0).fit(X, y)
    assert len(est.validation_scores_) == est.n_iter_ < 400
    assert est.best_validation_score_ == max(est.validation_scores_) > 0.9
    assert LSTMRegressor(4, max_iter=1).set_params(early_stopping=False).fit(X, y).validation_scores_ is None


def test_per_step_targets_3d_input_and_bidirectional_stacks():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 6, 2))
    y = np.cumsum(X[..., 0], axis=1)                     # a running sum: one target per step
    est = LSTMRegressor(6, num_layers=2, bidirectional=True, per_step=True, solver="lbfgs", max_iter=150,
                        random_state=0).fit(X, y)
    assert est.predict(X).shape == (40, 6) and est.score(X, y) > 0.9
    labels = (y > 0).astype(int)
    clf = LSTMClassifier(6, per_step=True, solver="lbfgs", max_iter=150, random_state=0).fit(X, labels)
    assert clf.predict(X).shape == (40, 6) and clf.predict_proba(X).shape == (40, 6, 2)
    assert np.mean(clf.predict(X) == labels) > 0.9
    with pytest.raises(ValueError, match="features per step"):
        est.predict(X[..., :1])


def test_classifier_probabilities_and_classes():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 7))
    y = np.array(["low", "mid", "high"])[np.digitize(X.mean(axis=1), [-0.2, 0.2])]
    clf = LSTMClassifier(8, solver="lbfgs", max_iter=200, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert proba.shape == (90, 3) and list(clf.classes_) == ["high", "low", "mid"]
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-12)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
    assert clf.score(X, y) > 0.9
    with pytest.raises(ValueError, match="at least 2 classes, got 1 class"):
        LSTMClassifier(4).fit(X, np.zeros(90))


@pytest.mark.slow
def test_pipeline_gridsearch_and_time_series_cross_validation():
    X, y = _series(n=100)
    X2 = X[..., 0]                                        # (n, T): one feature per step
    pipe = make_pipeline(StandardScaler(), LSTMRegressor(6, solver="lbfgs", max_iter=100, random_state=0))
    scores = cross_val_score(pipe, X2, y, cv=TimeSeriesSplit(n_splits=3))
    assert scores.shape == (3,) and np.all(scores > 0.5)
    grid = GridSearchCV(LSTMRegressor(solver="lbfgs", max_iter=60, random_state=0),
                        {"hidden_size": [2, 6]}, cv=TimeSeriesSplit(n_splits=2)).fit(X2, y)
    assert grid.best_params_["hidden_size"] in (2, 6) and np.isfinite(grid.best_score_)
    # a 3-D X through a pipeline step that keeps its shape
    pipe3 = make_pipeline(FunctionTransformer(lambda a: a * 2.0), LSTMRegressor(4, solver="lbfgs", max_iter=20,
                                                                                random_state=0))
    with pytest.warns(ConvergenceWarning):
        assert pipe3.fit(X, y).predict(X).shape == (100,)


def test_clone_pickle_and_joblib_give_identical_predictions(tmp_path):
    joblib = pytest.importorskip("joblib", reason="joblib comes with scikit-learn")
    X, y = _series(n=60)
    est = LSTMRegressor(5, solver="lbfgs", max_iter=30, random_state=0, dtype="float32")
    fresh = clone(est)
    assert fresh.get_params() == est.get_params() and not hasattr(fresh, "model_")
    with pytest.warns(ConvergenceWarning):
        est.fit(X, y)
    pred = est.predict(X)
    assert pred.dtype == np.float32
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(est)).predict(X), pred)
    joblib.dump(est, tmp_path / "est.joblib")
    np.testing.assert_array_equal(joblib.load(tmp_path / "est.joblib").predict(X), pred)
    with pytest.warns(ConvergenceWarning):
        np.testing.assert_array_equal(fresh.fit(X, y).predict(X), pred)      # same seed, same model


def test_verbose_shows_progress(capsys):
    X, y = _series(n=30)
    with pytest.warns(ConvergenceWarning):
        LSTMRegressor(3, max_iter=2, solver="lbfgs", verbose=True, random_state=0).fit(X, y)
    assert "Iteration 1, loss = " in capsys.readouterr().err


def test_bad_options_are_named():
    X, y = _series(n=20)
    with pytest.raises(ValueError, match="solver: expected one of 'adam', 'lbfgs', got 'sgd'"):
        LSTMRegressor(solver="sgd").fit(X, y)
    with pytest.raises(ValueError, match="batch_size: expected 'auto' or a positive integer"):
        LSTMRegressor(batch_size=0).fit(X, y)
    with pytest.raises(ValueError, match="dtype: expected 'float32' or 'float64'"):
        LSTMRegressor(dtype="float16").fit(X, y)


def test_import_nblstm_does_not_import_sklearn():
    import subprocess
    import sys
    code = "import sys, nblstm; assert 'sklearn' not in sys.modules; nblstm.sklearn.LSTMRegressor; print('ok')"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize("qualname", [f"nblstm.sklearn.{cls}{method}" for cls in ("LSTMRegressor", "LSTMClassifier")
                                      for method in ("", ".fit", ".predict")]
                         + [f"nblstm.sklearn.LSTMClassifier.{m}" for m in ("predict_proba", "predict_log_proba")])
def test_numpydoc_validation(qualname):
    validate = pytest.importorskip("numpydoc.validate", reason="numpydoc is in the [test] extra").validate
    ignored = {"ES01", "EX01", "SS05", "SS02", "PR01", "GL08"}
    errors = [f"{code}: {message}" for code, message in validate(qualname)["errors"] if code not in ignored]
    assert not errors, "\n".join(errors)


@pytest.mark.parametrize("kwargs, match", [
    (dict(early_stopping=True, validation_fraction=1.5),
     r"^validation_fraction: expected a finite number in \(0, 1\), got 1.5"),
    (dict(early_stopping=True, validation_fraction=0.99), r"^validation_fraction: expected a fraction that leaves"),
    (dict(max_iter=0), r"^max_iter: expected a positive integer, got 0"),
    (dict(learning_rate_init=0.0), r"^learning_rate_init: expected a finite number > 0, got 0.0"),
    (dict(beta_1=1.5), r"^beta_1: expected a finite number in \[0, 1\), got 1.5"),
    (dict(beta_2=0.0), r"^beta_2: expected a finite number in \(0, 1\), got 0.0"),
    (dict(epsilon=-1.0), r"^epsilon: expected a finite number > 0"),
    (dict(n_iter_no_change=0), r"^n_iter_no_change: expected a positive integer"),
    (dict(alpha=-1.0), r"^alpha: expected a finite number >= 0"),
    (dict(tol=float("nan")), r"^tol: expected a finite number >= 0"),
    (dict(solver="lbfgs", max_iter=0), r"^max_iter: expected a positive integer, got 0"),
    (dict(solver="lbfgs", max_fun=0), r"^max_fun: expected a positive integer, got 0"),
])
def test_bad_estimator_options_are_named_as_the_estimator_names_them(kwargs, match):
    X, y = _series(n=20)
    for cls, target in ((LSTMRegressor, y), (LSTMClassifier, (y > 0).astype(int))):
        with pytest.raises(ValueError, match=match):
            cls(3, **kwargs).fit(X, target)


@pytest.mark.parametrize("X, match", [
    (np.zeros((6, 4, 2, 1)), r"^X: expected \(n_samples, T\) or \(n_samples, T, n_features\), got shape \(6, 4, 2"),
    (np.zeros(6), r"^X: expected \(n_samples, T\) or \(n_samples, T, n_features\), got shape \(6,\)"),
    (np.zeros((6, 4, 0)), r"^X: expected \(n_samples, T\) or \(n_samples, T, n_features\) with n_features >= 1"),
])
def test_x_of_the_wrong_number_of_axes_is_named(X, match):
    with pytest.raises(ValueError, match=match):
        LSTMRegressor(3, max_iter=1).fit(X, np.zeros(6))


def test_predict_accepts_another_t_and_explains_a_single_sequence():
    rng = np.random.default_rng(0)
    X3, y = rng.normal(size=(10, 8, 3)), rng.normal(size=10)
    est = LSTMRegressor(3, max_iter=1).fit(X3, y)
    with pytest.raises(ValueError, match=r"2-D X means \(n_samples, T\).*pass X\[None\]"):
        est.predict(X3[0])
    assert est.predict(X3[0][None]).shape == (1,)
    assert est.predict(X3[:, :5]).shape == (10,)
    est2 = LSTMClassifier(3, max_iter=1).fit(X3[..., 0], y > 0)          # 2-D: n_features_in_ is T
    assert est2.n_features_in_ == 8
    with pytest.raises(ValueError, match=r"X has 5 features, but LSTMClassifier is expecting 8 features as "
                                         r"input\. A 2-D X's columns are its T steps.*X\[\.\.\., None\]"):
        est2.predict(X3[:, :5, 0])                                        # scikit-learn's rule for 2-D X
    assert est2.predict(X3[:, :5, :1]).shape == (10,)                     # another T, as (n, T, 1)
    assert est2.predict_proba(rng.normal(size=(4, 12, 1))).shape == (4, 2)
    step = LSTMRegressor(3, max_iter=1, per_step=True).fit(X3, X3[..., 0])
    assert step.predict(X3[:, :5]).shape == (10, 5)


def test_per_step_y_shape_gives_t_and_mixed_labels_are_named():
    X = np.random.default_rng(0).normal(size=(6, 4))
    with pytest.raises(ValueError, match=r"^y: expected shape \(n_samples, T=4\) or \(n_samples, T=4, K\), got"):
        LSTMRegressor(3, max_iter=1, per_step=True).fit(X, np.zeros((6, 3)))
    with pytest.raises(ValueError, match="Mix of label input types"):
        LSTMClassifier(3, max_iter=1).fit(X, np.array(["a", 1, "b", 2, "a", 1], dtype=object))


def test_predict_log_proba_is_the_log_of_predict_proba():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 5, 2))
    clf = LSTMClassifier(3, max_iter=2, random_state=0).fit(X, np.arange(12) % 3)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X)), clf.predict_proba(X), rtol=1e-12)
    step = LSTMClassifier(3, max_iter=2, per_step=True, random_state=0).fit(X, X[..., 0] > 0)
    assert step.predict_log_proba(X).shape == (12, 5, 2)
