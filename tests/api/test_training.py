"""Training through nblstm's gradients: SciPy's L-BFGS-B and truncated BPTT (the examples, small)."""
import importlib.util
import pathlib

import numpy as np
import pytest

import nblstm
from nblstm.testing import check_grad

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples"


def _example(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fit_scipy():
    return _example("fit_scipy")


def test_scipy_objective_gradient_is_right(fit_scipy):
    """The (loss, grad) pair handed to SciPy agrees with central differences along theta."""
    rng = np.random.default_rng(0)
    x, target = fit_scipy.make_data(rng, 3, 6)
    theta, unravel = nblstm.ravel((nblstm.init_params(1, 3, seed=rng), (rng.normal(size=(1, 3)), np.zeros(1))))
    fun = fit_scipy.make_objective(x, target)
    result = check_grad(lambda t: fun(t, unravel)[0], lambda t: fun(t, unravel)[1], theta, seed=0)
    assert result.ok, result.summary()
    assert theta.size == 4 * 3 * (1 + 3 + 1) + 3 + 1


def test_lbfgsb_fit_beats_the_mean(fit_scipy):
    result, baseline, test_mse, unravel = fit_scipy.fit(hidden=6, batch=8, seq_len=30, maxiter=60, seed=0)
    assert baseline > 0.3
    assert result.fun < 0.1 * baseline
    assert test_mse < 0.2 * baseline                       # it generalises to new signals
    params, (W_out, c_out) = unravel(result.x)
    assert isinstance(params, nblstm.LSTMParams) and W_out.shape == (1, 6)


def test_truncated_bptt_learns():
    tbptt = _example("tbptt")
    losses, (params, _), series = tbptt.train(length=800, batch=4, chunk_len=40, hidden=8, epochs=4,
                                                 lr=0.02, seed=0)
    assert len(losses) == 4
    assert losses[-1] < 0.5 * losses[0]
    assert losses[-1] < 0.2 * series.var()     # about 0.07 of 0.63 for seeds 0-3
