"""``python -m nblstm``, run as a user runs it: in a subprocess, asserting on its output."""
import os
import re
import subprocess
import sys

import pytest


def _run(*args, timeout=300):
    env = dict(os.environ, PYTHONWARNINGS="error")
    return subprocess.run([sys.executable, "-m", "nblstm", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.slow
def test_demo_small_run():
    proc = _run("--steps", "30", "--seq-len", "12", "--hidden", "4", "--seed", "3")
    out = proc.stdout
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "adding problem" in out
    assert "LSTM(2 -> 4)" in out
    assert "30/30" in out                                   # the progress bar (tqdm or the plain line) finished
    m = re.search(r"test MSE (\d+\.\d+) on \d+ new sequences \(predicting the mean: 0\.167\)", out)
    assert m, out
    assert 0 <= float(m.group(1)) < 1.0
    assert re.search(r"time: \d+\.\d s for 30 training steps", out), out
    m = re.search(r"gradient check against central differences .* max relative error (\S+) -> OK", out)
    assert m, out
    assert float(m.group(1)) < 1e-5
    m = re.search(r"timing, forward \+ backward of one batch \(B=32, T=12, H=4\): "
                  r"nblstm (\d+\.\d+) ms, NumPy reference (\d+\.\d+) ms", out)
    assert m, out
    assert float(m.group(1)) > 0 and float(m.group(2)) > 0


@pytest.mark.slow
def test_demo_same_seed_same_result():
    procs = [_run("--steps", "5", "--seq-len", "6", "--hidden", "3", "--seed", "1") for _ in range(2)]
    for proc in procs:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    mses = [re.search(r"test MSE (\S+)", proc.stdout).group(1) for proc in procs]
    assert mses[0] == mses[1]


def test_demo_help():
    proc = _run("--help")
    assert proc.returncode == 0
    for option in ("--steps", "--seq-len", "--hidden", "--seed"):
        assert option in proc.stdout


@pytest.mark.parametrize("args, fragment", [
    (("--steps", "0"), "--steps: expected an integer >= 1, got 0"),
    (("--seq-len", "1"), "--seq-len: expected an integer >= 2, got 1"),
    (("--hidden", "x"), "invalid int value"),
    (("--bogus",), "unrecognized arguments"),
])
def test_demo_bad_options(args, fragment):
    proc = _run(*args)
    assert proc.returncode == 2
    assert fragment in proc.stderr


@pytest.mark.slow
def test_demo_says_compiling_on_first_run(tmp_path):
    """With an empty numba cache the kernels compile, and the demo says so before the wait."""
    env = dict(os.environ, PYTHONWARNINGS="error", NUMBA_CACHE_DIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "nblstm", "--steps", "2", "--seq-len", "4", "--hidden", "2"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    compiling = [i for i, line in enumerate(lines) if line.startswith("compiling nblstm's kernels")]
    assert compiling, proc.stdout
    assert lines[compiling[0] + 1].startswith("compiled in ")
    assert any(tmp_path.rglob("*.nbi"))                     # ... and numba cached them


def test_warm_up_covers_every_kernel_the_run_uses(monkeypatch):
    """The "compiling" notice covers all the compiling: nothing new compiles after the warm-up.

    Every CPU dispatcher's signatures are counted when the warm-up ends and
    when the demo ends; a new one (compiled, or loaded from numba's cache) means
    the warm-up ran other paths than the demo (issue 12: it warmed up on a batch
    of 2, and the batch of 32 compiled silently inside the first training steps).
    """
    import io

    from nblstm import __main__ as demo
    from nblstm.cpu import _jit

    def signatures():
        return {id(d): len(d.signatures) for d in _jit.REGISTRY}

    seen = {}
    warm_up = demo._warm_up

    def recording_warm_up(hidden):
        warm_up(hidden)
        seen["after_warm_up"] = signatures()

    monkeypatch.setattr(demo, "_warm_up", recording_warm_up)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(demo, "_progress", demo._PlainProgress)
    monkeypatch.setattr(demo, "N_TEST", 64)
    assert demo.main(["--steps", "2", "--seq-len", "5", "--hidden", "3"]) == 0
    after = signatures()
    grew = [d.py_func.__name__ for d in _jit.REGISTRY if after[id(d)] != seen["after_warm_up"][id(d)]]
    assert not grew, f"compiled after the warm-up: {grew}"


def test_plain_progress_writes_whole_lines_to_a_log(monkeypatch):
    """Without a terminal, no carriage returns: a log file gets one line per 10 %."""
    import io

    from nblstm import __main__ as demo

    log = io.StringIO()
    monkeypatch.setattr(sys, "stdout", log)         # not a tty, like a log file
    progress = demo._PlainProgress(20)
    for _ in range(20):
        progress.set_loss(0.5)
        progress.update(1)
    progress.close()
    text = log.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 10 and lines[-1].startswith("training: 20/20 steps (100%)")
    assert text.endswith("\n")


def test_tqdm_only_on_a_terminal(monkeypatch):
    """tqdm rewrites its bar with carriage returns too: with tqdm installed, a log still gets lines."""
    import io
    import types

    from nblstm import __main__ as demo

    made = []

    class FakeTqdm:                                  # records that the demo chose tqdm
        def __init__(self, *args, **kwargs):
            made.append(kwargs)

        def set_postfix(self, **kwargs):
            pass

    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=FakeTqdm))
    monkeypatch.setattr(sys, "stdout", io.StringIO())                   # a log file
    assert isinstance(demo._progress(10), demo._PlainProgress) and not made

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stdout", Terminal())
    assert isinstance(demo._progress(10), FakeTqdm) and len(made) == 1
