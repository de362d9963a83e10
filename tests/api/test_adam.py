"""nblstm.minimize_adam: convergence, minibatches, stopping rules, the callback, reproducibility."""
import numpy as np
import pytest
from scipy.optimize import OptimizeResult

import nblstm


def _least_squares(theta, A, b):
    """Mean squared residual of a linear model over a batch: a convex quadratic in theta."""
    r = A @ theta - b
    return float(np.mean(r ** 2)), 2 * A.T @ r / len(b)


def _data(seed=0, n=256, p=5, noise=0.0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, p)) * np.linspace(0.5, 2.0, p)       # conditioned but not round
    truth = rng.normal(size=p)
    return A, A @ truth + noise * rng.normal(size=n), truth


def test_converges_on_a_convex_quadratic_with_minibatches():
    A, b, truth = _data()
    result = nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), batch_args=(0, 1), batch_size=32,
                                  learning_rate=0.01, maxiter=1000, tol=1e-12, n_iter_no_change=20, seed=0)
    assert isinstance(result, OptimizeResult)
    assert result.success and result.status == 0, result.message
    np.testing.assert_allclose(result.x, truth, atol=1e-3)
    assert result.nit == len(result.loss_curve) and result.loss_curve[-1] < 1e-6 * result.loss_curve[0]
    assert result.nfev == result.njev == result.nit * 8 + 1             # 256 / 32 steps per epoch, and fun(x)
    assert result.validation_curve is None and result.best_validation_score is None


def test_full_batch_is_the_default_and_jac_may_be_a_function():
    A, b, truth = _data()
    fun = lambda th, A, b: _least_squares(th, A, b)[0]
    jac = lambda th, A, b: _least_squares(th, A, b)[1]
    result = nblstm.minimize_adam(fun, np.zeros(5), args=(A, b), jac=jac, learning_rate=0.05, maxiter=3000,
                                  tol=1e-14, n_iter_no_change=50)
    np.testing.assert_allclose(result.x, truth, atol=1e-3)
    assert result.nfev == result.nit + 1 and result.njev == result.nit


def test_reproducible_with_a_seed_and_shuffled_differently_with_another():
    A, b, _ = _data(noise=0.1)
    run = lambda seed: nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), batch_args=(0, 1),
                                            batch_size=16, learning_rate=0.01, maxiter=5, seed=seed,
                                            validation=0.2)
    one, two, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.loss_curve, two.loss_curve)
    assert not np.array_equal(one.x, other.x)


def test_the_callback_stops_the_run_by_returning_true_or_raising_stopiteration():
    A, b, _ = _data()
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result)
        return intermediate_result.nit == 3

    result = nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), maxiter=100, callback=callback)
    assert result.nit == 3 and result.status == 3 and not result.success
    assert result.message == "Stopped by the callback"
    assert [r.nit for r in seen] == [1, 2, 3]
    np.testing.assert_array_equal(seen[-1].x, result.x)
    assert seen[-1].fun == result.loss_curve[-1] and seen[-1].validation_score is None

    def raising(intermediate_result):
        raise StopIteration

    assert nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), callback=raising).nit == 1


def test_early_stopping_on_a_validation_split_keeps_the_best_iterate():
    A, b, _ = _data(n=60, p=40, noise=1.0, seed=1)           # overfits: the validation loss turns up
    result = nblstm.minimize_adam(_least_squares, np.zeros(40), args=(A, b), batch_args=(0, 1), batch_size=8,
                                  learning_rate=0.02, maxiter=500, validation=0.25, n_iter_no_change=5, seed=0)
    assert result.status == 2 and result.success, result.message
    curve = result.validation_curve
    assert len(curve) == result.nit < 500
    assert result.best_validation_score == curve.min() < curve[-1]
    train = np.random.default_rng(0).permutation(60)[15:]          # the split seed=0 draws first
    assert result.fun == _least_squares(result.x, A[train], b[train])[0]


def test_validation_arguments_and_score_function():
    A, b, _ = _data()
    A_val, b_val, _ = _data(seed=5)
    calls = []

    def score(theta, A, b):
        calls.append(len(b))
        return -float(np.mean(np.abs(A @ theta - b)))        # any scalar, lower is better

    result = nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), maxiter=4,
                                  validation=(A_val[:7], b_val[:7]), validation_fun=score)
    assert calls == [7] * 4 and len(result.validation_curve) == 4 and result.status == 1


def test_float32_iterates_stay_float32():
    A, b, _ = _data()
    result = nblstm.minimize_adam(_least_squares, np.zeros(5, np.float32), args=(A, b), maxiter=2)
    assert result.x.dtype == np.float32


def test_verbose_shows_progress_without_tqdm(monkeypatch, capsys):
    import importlib.util
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tqdm" else real(name, *a))
    A, b, _ = _data()
    nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), maxiter=3, verbose=True)
    err = capsys.readouterr().err
    assert err.count("Iteration ") == 3 and "Iteration 3, loss = " in err


def test_verbose_uses_tqdm_when_installed(capsys):
    pytest.importorskip("tqdm", reason="tqdm is optional (the sklearn extra)")
    A, b, _ = _data()
    nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), maxiter=3, verbose=True)
    err = capsys.readouterr().err
    last = err.rstrip("\n").split("\r")[-1]         # what stays on screen: the bar is not cleared at the end
    assert "adam" in last and "3/3" in last and "loss=" in last, repr(err)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(learning_rate=0), ValueError, "learning_rate: expected a finite number > 0"),
    (dict(beta2=1.0), ValueError, "beta2: expected a finite number > 0 and < 1"),
    (dict(maxiter=0), ValueError, "maxiter: expected a positive integer"),
    (dict(maxiter=2.5), TypeError, "maxiter: expected a positive integer"),
    (dict(batch_size=0, batch_args=(0, 1)), ValueError, "batch_size: expected a positive integer"),
    (dict(batch_args=(2,)), ValueError, r"batch_args: expected indices into args \(0 to 1\)"),
    (dict(validation=1.5, batch_args=(0, 1)), ValueError, "validation: expected a finite number > 0 and < 1"),
    (dict(validation=0.1), ValueError, "validation: expected a tuple of arguments when batch_args is empty"),
    (dict(tol=-1), ValueError, "tol: expected a number >= 0"),
    (dict(jac=False), TypeError, "jac: expected True or a callable"),
    (dict(callback=1), TypeError, "callback: expected None or a callable"),
])
def test_errors_name_the_option(kwargs, error, match):
    A, b, _ = _data()
    with pytest.raises(error, match=match):
        nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), **kwargs)


def test_samples_of_different_counts_are_refused():
    A, b, _ = _data()
    with pytest.raises(ValueError, match=r"batch_args: expected arrays with the same number of samples"):
        nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b[:-1]), batch_args=(0, 1))


def test_fun_is_the_objective_at_x_over_all_samples():
    A, b, _ = _data(noise=0.5)
    for validation in (None, 0.25):
        result = nblstm.minimize_adam(_least_squares, np.zeros(5), args=(A, b), batch_args=(0, 1), batch_size=32,
                                      learning_rate=0.05, maxiter=3, seed=0, validation=validation)
        if validation is None:
            assert result.fun == _least_squares(result.x, A, b)[0]
            assert result.fun != result.loss_curve[-1]              # the epoch mean, measured before the steps
        else:                                                       # the training samples: all but the held-out
            assert result.fun < _least_squares(np.zeros(5), A, b)[0] and np.isfinite(result.fun)


def test_converged_after_more_than_n_iter_no_change_epochs_without_improvement():
    flat = lambda theta: (1.0, np.zeros_like(theta))
    result = nblstm.minimize_adam(flat, np.zeros(2), maxiter=100, n_iter_no_change=3)
    assert result.status == 0 and result.message.startswith("Converged") and "more than" in result.message
    assert result.nit == 3 + 2                  # epoch 1 sets the best; epochs 2 to 5 make 4 > 3 without improvement
