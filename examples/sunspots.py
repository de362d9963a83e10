"""Forecast the yearly sunspot numbers 20 years ahead with nblstm.sklearn.LSTMRegressor.

The data are statsmodels' yearly sunspot numbers (1700-2008; statsmodels is a
dependency of this example only: ``pip install statsmodels``). Each sample is
a window of the 24 years before a year, scaled by the training series'
maximum (into [0, 1]: scaled by the standard deviation instead, the
forecasts were several times worse); the model is fitted on all years before the last 20 and
forecasts those 20 recursively (each prediction becomes the last input of the
next window). Two baselines: the last observed value, and statsmodels'
``AutoReg`` with 9 lags. Run ``python examples/sunspots.py [seed ...]``.
"""
import sys
import time
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from statsmodels.datasets import sunspots
from statsmodels.tsa.ar_model import AutoReg

from nblstm.sklearn import LSTMRegressor

WINDOW = 24
HORIZON = 20


def windows(series):
    """(n, WINDOW) windows and the value after each."""
    X = np.lib.stride_tricks.sliding_window_view(series[:-1], WINDOW)
    return X.copy(), series[WINDOW:].copy()


def recursive_forecast(model, history, steps):
    window = list(history[-WINDOW:])
    out = []
    for _ in range(steps):
        y = float(model.predict(np.array(window)[None, :])[0])
        out.append(y)
        window = window[1:] + [y]
    return np.array(out)


def main(seeds):
    series = sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(dtype=np.float64)
    train, test = series[:-HORIZON], series[-HORIZON:]
    scale = train.max()
    X, y = windows(train / scale)

    def rmse(forecast):
        return float(np.sqrt(np.mean((forecast - test) ** 2)))

    print(f"naive (last value): RMSE {rmse(np.full(HORIZON, train[-1])):.1f}")
    ar = AutoReg(train, lags=9).fit()
    print(f"AutoReg(9):         RMSE {rmse(ar.predict(len(train), len(train) + HORIZON - 1)):.1f}")
    for seed in seeds:
        model = LSTMRegressor(hidden_size=16, solver="lbfgs", max_iter=500, alpha=1e-2,
                              random_state=seed)
        t0 = time.perf_counter()
        with warnings.catch_warnings():       # max_iter bounds the fit on purpose
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X, y)
        fitted = time.perf_counter() - t0
        forecast = recursive_forecast(model, train / scale, HORIZON) * scale
        print(f"LSTM, seed {seed}:      RMSE {rmse(forecast):.1f}  "
              f"({model.n_iter_} iterations, {fitted:.1f} s)")


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0, 1, 2])
