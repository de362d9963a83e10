"""Hash the outputs of every CPU path, dtype and call shape (forward, backward, lean, jit).

    PYTHONPATH=$PWD python bench/fingerprint.py            # with MKL where installed
    NBLSTM_MKL=0 PYTHONPATH=$PWD python bench/fingerprint.py

A reorganisation must leave the printed hash unchanged (CONTRIBUTING.md). Each run of one build
prints the same hash: the results are bitwise reproducible.
"""
import hashlib

import numpy as np

import nblstm
import nblstm.jit
from nblstm import cpu


def main():
    digest = hashlib.sha256()

    def feed(tree):
        if isinstance(tree, np.ndarray):
            digest.update(f"{tree.dtype}{tree.shape}".encode())
            digest.update(np.ascontiguousarray(tree).tobytes())
        elif isinstance(tree, (tuple, list)):
            for leaf in tree:
                feed(leaf)

    rng = np.random.default_rng(0)
    T, I = 9, 6
    cases = [(path, dtype, B, H) for path in (None,) + cpu.PATHS for dtype in (np.float32, np.float64)
             for B, H in ((1, 32), (5, 24), (40, 256))]
    for path, dtype, B, H in cases:
        # plain assignment, not config.override: the script must also run on the code before it
        cpu.config.path = path
        for kind in ("layer", "stack", "lengths", "reverse"):
            params = (nblstm.init_stack(I, H, 2, bidirectional=True, seed=1, dtype=dtype)
                      if kind == "stack" else nblstm.init_params(I, H, seed=1, dtype=dtype))
            x = rng.standard_normal((B, T, I)).astype(dtype)
            kw = {}
            if kind == "lengths":
                kw["lengths"] = rng.integers(0, T + 1, B)
            if kind == "reverse":
                kw["reverse"] = True
            feed(nblstm.lstm(x, params, **kw))
            y, state, cache = nblstm.lstm_forward(x, params, **kw)
            feed((y, state))
            feed(nblstm.lstm_backward(cache, dy=np.cos(y), dh_n=np.sin(state[0]), dc_n=np.cos(state[1])))
    cpu.config.path = None
    p = nblstm.init_params(6, 16, seed=2)
    x = rng.standard_normal((9, 6))
    y, h_n, c_n = np.empty((9, 16)), np.empty(16), np.empty(16)
    nblstm.jit.lstm_sequence(x, *p, np.zeros(16), np.zeros(16), y, h_n, c_n)
    feed((y, h_n, c_n))
    print(f"{len(cases)} cases ({cpu.mkl.describe()}): {digest.hexdigest()}")


if __name__ == "__main__":
    main()
