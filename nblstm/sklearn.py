"""scikit-learn estimators: an LSTM and a linear readout, fitted with Adam or L-BFGS-B.

:class:`LSTMRegressor` and :class:`LSTMClassifier` take X of shape
(n_samples, T, n_features), or (n_samples, T) for one feature per step, so that
plain scikit-learn tools (pipelines, cross-validation, grid search) work on
them. Their options mean what ``sklearn.neural_network.MLPRegressor``'s mean
where the two overlap. They are built from :func:`nblstm.loss_and_grad` and
:func:`nblstm.minimize_adam`. This module needs the ``sklearn`` extra
(``pip install "nblstm[sklearn]"``); ``import nblstm`` does not import it.
"""
from __future__ import annotations

import sys
import warnings

import numpy as np
from scipy import optimize
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import accuracy_score, r2_score
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import assert_all_finite, check_random_state
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_consistent_length, check_is_fitted, column_or_1d

from .model import init_model, loss_and_grad, model_predict
from .optimize import minimize_adam
from .params import ravel

try:                                      # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _sklearn_validate_data
except ImportError:                       # pragma: no cover - scikit-learn 1.3 to 1.5
    _sklearn_validate_data = None

__all__ = ["LSTMRegressor", "LSTMClassifier"]

SOLVERS = ("adam", "lbfgs")


def _validate_2d(estimator, X, reset, dtype):
    if _sklearn_validate_data is not None:
        return _sklearn_validate_data(estimator, X, reset=reset, dtype=dtype)
    return estimator._validate_data(X, reset=reset, dtype=dtype)


def _ndim(X):
    """X's number of axes, None for what only scikit-learn's checks can read (sparse matrices, ragged lists)."""
    if hasattr(X, "tocsr"):
        return None
    ndim = getattr(X, "ndim", None)
    if ndim is None:
        try:
            ndim = np.asarray(X).ndim        # lists, and objects with only __array__
        except (TypeError, ValueError):
            return None
    return ndim


def _positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


def _number(name, value, expected, ok):
    """``value`` as a float, when it is a finite real number for which ``ok`` holds."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = np.nan
    if isinstance(value, (bool, np.bool_, str)) or not (np.isfinite(number) and ok(number)):
        raise ValueError(f"{name}: expected a finite number {expected}, got {value!r}")
    return number


_X_SHAPES = "(n_samples, T) or (n_samples, T, n_features)"
def _n_columns(X):
    shape = getattr(X, "shape", None)
    return shape[1] if shape is not None and len(shape) == 2 else None


def _check_label_types(y):
    """Refuse strings mixed with numbers as scikit-learn's unique_labels does (sorting them is a TypeError)."""
    if y.dtype == object and len({isinstance(label, str) for label in y.ravel()}) > 1:
        raise ValueError("Mix of label input types (string and number)")


class _LSTMBase(BaseEstimator):
    """What the regressor and the classifier share: the options, X's checks, the fit."""

    _loss = "squared_error"

    def __init__(self, hidden_size=32, *, num_layers=1, bidirectional=False, per_step=False, solver="adam",
                 alpha=1e-4, batch_size="auto", learning_rate_init=1e-3, max_iter=200, tol=1e-4,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-8, shuffle=True, max_fun=15000, random_state=None, verbose=False, dtype="float64"):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.per_step = per_step
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.tol = tol
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.shuffle = shuffle
        self.max_fun = max_fun
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    # ------------------------------------------------------------------ input
    def _check_X(self, X, reset):
        """X as (n_samples, T, n_features) of the estimator's dtype.

        At predict, T may differ from fit's for a 3-D X (the LSTM reads
        sequences of any length); a 2-D X is held to fit's ``n_features_in_``
        columns, as scikit-learn's estimator checks ask, and the error says to
        pass ``X[..., None]`` for another T.
        """
        dtype = np.dtype(self.dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype: expected 'float32' or 'float64', got {self.dtype!r}")
        ndim = _ndim(X)
        if ndim is not None and ndim not in (2, 3):
            hint = "" if ndim > 3 else " Reshape your data: one sequence of T steps is X[None], shape (1, T)."
            raise ValueError(f"X: expected {_X_SHAPES}, got shape {np.shape(X)}.{hint}")
        if ndim == 3:
            X = check_array(X, allow_nd=True, dtype=dtype, input_name="X")
            if X.shape[2] == 0:
                raise ValueError(f"X: expected {_X_SHAPES} with n_features >= 1, got shape {X.shape}")
            if reset:
                self.n_features_in_ = X.shape[2]
            elif X.shape[2] != self.input_size_:
                raise ValueError(f"X has {X.shape[2]} features per step, but {type(self).__name__} is expecting "
                                 f"{self.input_size_} features per step as input.")
        elif reset or self._fitted_2d:
            try:
                X = _validate_2d(self, X, reset, dtype)[:, :, None]
            except ValueError as exc:
                if reset or "features, but" not in str(exc):
                    raise
                # scikit-learn holds a 2-D X to fit's columns (its checks ask it): say how to pass another T
                raise ValueError(f"{exc} A 2-D X's columns are its T steps: for another T, pass "
                                 f"X[..., None], shape (n_samples, T, 1).") from None
        else:                                        # fitted on 3-D X: any T, one feature per step
            X = check_array(X, dtype=dtype, input_name="X")[:, :, None]
            if self.input_size_ != 1:
                raise ValueError(f"X: expected (n_samples, T, {self.input_size_}) as at fit, got shape "
                                 f"{X.shape[:2]}; a 2-D X means (n_samples, T), one feature per step. For one "
                                 f"sequence of shape (T, {self.input_size_}), pass X[None].")
        if reset:
            self._fitted_2d = ndim != 3
            self.input_size_ = X.shape[2]
        if X.shape[1] == 0:
            raise ValueError(f"X: expected at least 1 time step, got shape {X.shape}")
        return X

    def _check_params(self, n_samples):
        """The estimator's options, checked here so that errors name them (not minimize_adam's arguments)."""
        if self.solver not in SOLVERS:
            raise ValueError(f"solver: expected one of {', '.join(map(repr, SOLVERS))}, got {self.solver!r}")
        if not (isinstance(self.batch_size, str) and self.batch_size == "auto") and not (
                isinstance(self.batch_size, (int, np.integer)) and self.batch_size >= 1):
            raise ValueError(f"batch_size: expected 'auto' or a positive integer, got {self.batch_size!r}")
        _positive_int("max_iter", self.max_iter)
        _number("alpha", self.alpha, ">= 0", lambda a: a >= 0)
        _number("tol", self.tol, ">= 0", lambda a: a >= 0)
        if self.solver == "lbfgs":
            _positive_int("max_fun", self.max_fun)
            return
        _number("learning_rate_init", self.learning_rate_init, "> 0", lambda a: a > 0)
        _number("beta_1", self.beta_1, "in [0, 1)", lambda a: 0 <= a < 1)
        _number("beta_2", self.beta_2, "in (0, 1)", lambda a: 0 < a < 1)
        _number("epsilon", self.epsilon, "> 0", lambda a: a > 0)
        _positive_int("n_iter_no_change", self.n_iter_no_change)
        if self.early_stopping:
            fraction = _number("validation_fraction", self.validation_fraction, "in (0, 1)", lambda a: 0 < a < 1)
            n_val = int(np.ceil(fraction * n_samples))
            if n_val >= n_samples:
                raise ValueError(f"validation_fraction: expected a fraction that leaves samples to train on "
                                 f"(n_samples = {n_samples}), got {self.validation_fraction!r}")

    # ------------------------------------------------------------------ fit
    def _fit(self, X, target, n_outputs, score):
        """Fit an LSTMModel with K = n_outputs; ``score(model, X, y)`` is the validation score (higher is better)."""
        n = X.shape[0]
        self._check_params(n)
        seed = np.random.default_rng(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        model = init_model(X.shape[2], self.hidden_size, n_outputs, num_layers=self.num_layers,
                           bidirectional=bool(self.bidirectional), dtype=np.dtype(self.dtype), seed=seed)
        theta0, unravel = ravel(model)
        args = (unravel, X, target, None, self._loss, bool(self.per_step), self.alpha)
        self.validation_scores_ = None
        self.best_validation_score_ = None
        if self.solver == "lbfgs":
            last, curve = [np.nan], []

            def fun(theta, *args):
                value, grad = loss_and_grad(theta, *args)
                last[0] = value
                return value, grad.astype(np.float64)

            def record(xk):
                curve.append(last[0])
                if self.verbose:
                    print(f"Iteration {len(curve)}, loss = {last[0]:.8f}", file=sys.stderr, flush=True)

            result = optimize.minimize(fun, theta0.astype(np.float64), args=args, jac=True, method="L-BFGS-B",
                                       callback=record, options=dict(maxiter=self.max_iter, maxfun=self.max_fun,
                                                                     gtol=self.tol))
            converged = result.status != 1                 # 1: max_iter or max_fun reached
            self.n_iter_ = int(result.nit)
            self.loss_curve_ = curve or [float(result.fun)]
            self.loss_ = float(result.fun)
        else:
            batch_size = min(200, n) if isinstance(self.batch_size, str) else min(int(self.batch_size), n)
            validation = self.validation_fraction if self.early_stopping else None

            def validation_score(theta, unravel, X, y, *_):
                return -score(unravel(theta), X, y)

            result = minimize_adam(loss_and_grad, theta0, args=args, batch_args=(1, 2), batch_size=batch_size,
                                   shuffle=bool(self.shuffle), learning_rate=self.learning_rate_init,
                                   beta1=self.beta_1, beta2=self.beta_2, epsilon=self.epsilon,
                                   maxiter=self.max_iter, tol=self.tol, n_iter_no_change=self.n_iter_no_change,
                                   validation=validation,
                                   validation_fun=validation_score if self.early_stopping else None,
                                   seed=seed, verbose=bool(self.verbose))
            converged = result.status != 1
            self.n_iter_ = int(result.nit)
            self.loss_curve_ = [float(v) for v in result.loss_curve]
            self.loss_ = float(result.loss_curve[-1])
            if self.early_stopping:
                self.validation_scores_ = [-float(v) for v in result.validation_curve]
                self.best_validation_score_ = -result.best_validation_score
        self.model_ = unravel(result.x)
        if not converged:
            warnings.warn(f"{type(self).__name__}: the {self.solver} solver reached max_iter={self.max_iter} "
                          "before converging; raise max_iter", ConvergenceWarning, stacklevel=3)
        return self

    def _outputs(self, X):
        check_is_fitted(self, "model_")
        X = self._check_X(X, reset=False)
        return model_predict(X, self.model_, per_step=bool(self.per_step))

    def _check_y_given(self, y):
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None")


class LSTMRegressor(RegressorMixin, _LSTMBase):
    """An LSTM and a linear readout fitted to real targets by squared error.

    The model is :func:`nblstm.init_model`'s (an LSTM stack and a readout of
    its last state, or of every step with ``per_step``), the loss
    :func:`nblstm.model_loss`'s ``"squared_error"`` with the L2 penalty
    ``alpha``, fitted with :func:`nblstm.minimize_adam` (``solver="adam"``) or
    SciPy's L-BFGS-B (``solver="lbfgs"``).

    Parameters
    ----------
    hidden_size : int
        H, the hidden size of every layer.
    num_layers : int
        L, layers of the stack.
    bidirectional : bool
        Two directions per layer; the readout sees both.
    per_step : bool
        One target per step, y of shape (n_samples, T) or (n_samples, T, K),
        instead of one per sequence, (n_samples,) or (n_samples, K).
    solver : {"adam", "lbfgs"}
        The optimizer.
    alpha : float
        L2 penalty on the weight matrices (not the biases), as MLPRegressor's.
    batch_size : int or "auto"
        Minibatch size of Adam; "auto" is ``min(200, n_samples)``.
    learning_rate_init : float
        Adam's step size.
    max_iter : int
        Epochs of Adam, iterations of L-BFGS-B.
    tol : float
        Adam: the improvement of the loss (or validation score) that counts;
        L-BFGS-B: ``gtol``.
    early_stopping : bool
        Adam only: hold out ``validation_fraction`` of the samples and stop when
        their R^2 score has not improved by ``tol`` for ``n_iter_no_change``
        epochs, keeping the best weights.
    validation_fraction : float
        In (0, 1), the held-out share with ``early_stopping``.
    n_iter_no_change : int
        Epochs without improvement before Adam stops.
    beta_1, beta_2, epsilon : float
        Adam's decay rates and epsilon.
    shuffle : bool
        Shuffle the samples every epoch (Adam).
    max_fun : int
        Most evaluations of the loss with L-BFGS-B.
    random_state : None, int or numpy.random.RandomState
        Draws the initial weights, the shuffles and the validation split.
    verbose : bool
        Show progress on stderr (tqdm's bar for Adam when tqdm is installed).
    dtype : {"float64", "float32"}
        dtype of the weights and of the computation.

    Attributes
    ----------
    model_ : LSTMModel
        The fitted LSTM stack and readout.
    n_iter_ : int
        Epochs (Adam) or iterations (L-BFGS-B) run.
    loss_curve_ : list of float
        The training loss after every epoch or iteration.
    loss_ : float
        The last training loss.
    validation_scores_ : list of float or None
        R^2 on the held-out samples after every epoch, with ``early_stopping``.
    best_validation_score_ : float or None
        The best of them.
    n_features_in_ : int
        Columns of the 2-D X of fit (its steps, T), or features per step of a
        3-D X. predict holds a 2-D X to these columns, as scikit-learn asks;
        a 3-D X may have another T (the LSTM reads sequences of any length),
        so another T is passed as ``X[..., None]``.
    input_size_ : int
        Features per step the LSTM reads.
    n_outputs_ : int
        K, outputs per sequence (or per step).
    n_steps_ : int
        T of the X the estimator was fitted on (predict takes any T).

    See Also
    --------
    LSTMClassifier : The same for class labels.
    nblstm.model_loss : The loss and gradient it minimizes.
    sklearn.neural_network.MLPRegressor : Whose options these are.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8), pp. 1735-1780, 1997.
    .. [2] D. P. Kingma and J. Ba, "Adam: a method for stochastic
       optimization", ICLR 2015.

    Examples
    --------
    >>> import numpy as np
    >>> from nblstm.sklearn import LSTMRegressor
    >>> X = np.random.default_rng(0).normal(size=(64, 10))
    >>> y = X.sum(axis=1) / 3
    >>> est = LSTMRegressor(8, solver="lbfgs", max_iter=200, tol=1e-3, random_state=0).fit(X, y)
    >>> bool(est.score(X, y) > 0.9)
    True
    """

    def fit(self, X, y):
        """Fit the LSTM and the readout to ``X`` and ``y``.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences (2-D: one feature per step).
        y : array_like
            Shape (n_samples,) or (n_samples, K); with ``per_step``
            (n_samples, T) or (n_samples, T, K).

        Returns
        -------
        LSTMRegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            X or y of the wrong shape or with NaN or Inf; an unknown option.

        See Also
        --------
        predict : Predictions of the fitted model.
        """
        self._check_y_given(y)
        X = self._check_X(X, reset=True)
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=np.dtype(self.dtype), input_name="y")
        check_consistent_length(X, y)
        lead = 2 if self.per_step else 1
        if y.ndim not in (lead, lead + 1) or (self.per_step and y.shape[1] != X.shape[1]):
            T = X.shape[1]
            want = f"(n_samples, T={T}) or (n_samples, T={T}, K)" if self.per_step else "(n_samples,) or (n_samples, K)"
            raise ValueError(f"y: expected shape {want}, got shape {y.shape}")
        self._y_flat = y.ndim == lead
        target = y[..., None] if self._y_flat else y
        self.n_outputs_ = target.shape[-1]
        self.n_steps_ = X.shape[1]
        return self._fit(X, target, self.n_outputs_, self._r2)

    def _r2(self, model, X, y):
        out = model_predict(X, model, per_step=bool(self.per_step))
        return r2_score(y.reshape(-1, y.shape[-1]), out.reshape(-1, out.shape[-1]))

    def predict(self, X):
        """Predict with the fitted model.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences.

        Returns
        -------
        ndarray
            Shaped like the ``y`` of :meth:`fit` with ``n_samples`` rows, of
            ``dtype``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            X of the wrong shape (other features per step than at fit; T may
            differ) or with NaN or Inf.

        See Also
        --------
        fit : Fits the model.
        nblstm.model_predict : The function behind it.
        """
        out = self._outputs(X)
        return out[..., 0] if self._y_flat else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.regressor_tags.poor_score = True       # check_estimator caps max_iter at 5 epochs
        return tags

    def _more_tags(self):                           # scikit-learn < 1.6
        return {"poor_score": True, "multioutput": True}


class LSTMClassifier(ClassifierMixin, _LSTMBase):
    """An LSTM and a linear readout fitted to class labels by softmax cross-entropy.

    As :class:`LSTMRegressor`, with :func:`nblstm.model_loss`'s
    ``"cross_entropy"`` over K >= 2 classes (K outputs, softmax).

    Parameters
    ----------
    hidden_size : int
        H, the hidden size of every layer.
    num_layers : int
        L, layers of the stack.
    bidirectional : bool
        Two directions per layer; the readout sees both.
    per_step : bool
        One label per step, y of shape (n_samples, T), instead of one per
        sequence, (n_samples,).
    solver : {"adam", "lbfgs"}
        The optimizer.
    alpha : float
        L2 penalty on the weight matrices.
    batch_size : int or "auto"
        Minibatch size of Adam; "auto" is ``min(200, n_samples)``.
    learning_rate_init : float
        Adam's step size.
    max_iter : int
        Epochs of Adam, iterations of L-BFGS-B.
    tol : float
        Adam: the improvement that counts; L-BFGS-B: ``gtol``.
    early_stopping : bool
        Adam only: stop on the accuracy of ``validation_fraction`` held out.
    validation_fraction : float
        In (0, 1), the held-out share with ``early_stopping``.
    n_iter_no_change : int
        Epochs without improvement before Adam stops.
    beta_1, beta_2, epsilon : float
        Adam's decay rates and epsilon.
    shuffle : bool
        Shuffle the samples every epoch (Adam).
    max_fun : int
        Most evaluations of the loss with L-BFGS-B.
    random_state : None, int or numpy.random.RandomState
        Draws the initial weights, the shuffles and the validation split.
    verbose : bool
        Show progress on stderr.
    dtype : {"float64", "float32"}
        dtype of the weights and of the computation.

    Attributes
    ----------
    classes_ : ndarray, shape (K,)
        The class labels.
    model_ : LSTMModel
        The fitted LSTM stack and readout (K outputs).
    n_iter_ : int
        Epochs or iterations run.
    loss_curve_ : list of float
        The training loss after every epoch or iteration.
    loss_ : float
        The last training loss.
    validation_scores_ : list of float or None
        Accuracy on the held-out samples after every epoch, with ``early_stopping``.
    best_validation_score_ : float or None
        The best of them.
    n_features_in_ : int
        Columns of the 2-D X of fit (its steps, T), or features per step of a
        3-D X. predict holds a 2-D X to these columns, as scikit-learn asks;
        a 3-D X may have another T (the LSTM reads sequences of any length),
        so another T is passed as ``X[..., None]``.
    input_size_ : int
        Features per step the LSTM reads.
    n_outputs_ : int
        K, the number of classes.
    n_steps_ : int
        T of the X the estimator was fitted on (predict takes any T).

    See Also
    --------
    LSTMRegressor : The same for real targets.
    sklearn.neural_network.MLPClassifier : Whose options these are.

    References
    ----------
    .. [1] S. Hochreiter and J. Schmidhuber, "Long short-term memory",
       Neural Computation 9(8), pp. 1735-1780, 1997.
    .. [2] C. M. Bishop, "Pattern Recognition and Machine Learning",
       Springer, 2006, section 4.3.4 (softmax cross-entropy).

    Examples
    --------
    >>> import numpy as np
    >>> from nblstm.sklearn import LSTMClassifier
    >>> X = np.random.default_rng(0).normal(size=(64, 10))
    >>> y = np.where(X.sum(axis=1) > 0, "up", "down")
    >>> est = LSTMClassifier(8, solver="lbfgs", max_iter=200, tol=1e-3, random_state=0).fit(X, y)
    >>> est.classes_.tolist(), bool(est.score(X, y) > 0.9)
    (['down', 'up'], True)
    """

    _loss = "cross_entropy"

    def fit(self, X, y):
        """Fit the LSTM and the readout to ``X`` and the labels ``y``.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences (2-D: one feature per step).
        y : array_like, shape (n_samples,), or (n_samples, T) with ``per_step``
            Class labels, at least two classes.

        Returns
        -------
        LSTMClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            X or y of the wrong shape, with NaN or Inf, continuous labels, or
            only one class; an unknown option.

        See Also
        --------
        predict, predict_proba : Labels and probabilities of the fitted model.
        """
        self._check_y_given(y)
        X = self._check_X(X, reset=True)
        if self.per_step:
            y = check_array(y, dtype=None, input_name="y")
            if y.shape[1] != X.shape[1]:
                raise ValueError(f"y: expected shape (n_samples, T={X.shape[1]}), got shape {y.shape}")
            _check_label_types(y)
            check_classification_targets(y.ravel())
        else:
            y = column_or_1d(y, warn=True)
            assert_all_finite(y, input_name="y")
            _check_label_types(y)
            check_classification_targets(y)
        check_consistent_length(X, y)
        encoder = LabelEncoder().fit(y.ravel())
        self.classes_ = encoder.classes_
        if len(self.classes_) < 2:
            raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes, got 1 class "
                             f"({self.classes_[0]!r})")
        self.n_outputs_ = len(self.classes_)
        self.n_steps_ = X.shape[1]
        target = encoder.transform(y.ravel()).reshape(y.shape).astype(np.int64)
        return self._fit(X, target, self.n_outputs_, self._accuracy)

    def _accuracy(self, model, X, y):
        out = model_predict(X, model, per_step=bool(self.per_step))
        return accuracy_score(y.ravel(), out.argmax(axis=-1).ravel())

    def predict_proba(self, X):
        """Class probabilities: the softmax of the readout's outputs.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences.

        Returns
        -------
        ndarray, shape (n_samples, K), or (n_samples, T, K) with ``per_step``
            Probabilities of ``classes_``, each row summing to 1.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            X of the wrong shape or with NaN or Inf.

        See Also
        --------
        predict : The most probable class.
        """
        out = self._outputs(X)
        e = np.exp(out - out.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def predict_log_proba(self, X):
        """The logarithm of the class probabilities: the log-softmax of the readout's outputs.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences.

        Returns
        -------
        ndarray, shape (n_samples, K), or (n_samples, T, K) with ``per_step``
            Log-probabilities of ``classes_`` (computed stably, not as
            ``log(predict_proba(X))``: no -inf where a probability underflows).

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            X of the wrong shape or with NaN or Inf.

        See Also
        --------
        predict_proba : The probabilities themselves.
        """
        out = self._outputs(X)
        shifted = out - out.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))

    def predict(self, X):
        """The most probable class.

        Parameters
        ----------
        X : array_like, shape (n_samples, T, n_features) or (n_samples, T)
            Input sequences.

        Returns
        -------
        ndarray, shape (n_samples,), or (n_samples, T) with ``per_step``
            Labels from ``classes_``.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            Before :meth:`fit`.
        ValueError
            X of the wrong shape or with NaN or Inf.

        See Also
        --------
        predict_proba : The probabilities of every class.
        """
        out = self._outputs(X)
        return self.classes_[out.argmax(axis=-1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.poor_score = True      # check_estimator caps max_iter at 5 epochs
        return tags

    def _more_tags(self):                           # scikit-learn < 1.6
        return {"poor_score": True}
