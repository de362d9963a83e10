"""nblstm's CUDA backend against torch.nn.LSTM (cuDNN) on one GPU, in one run.

1. Check: the same weights through both, float32 with TF32 off, on a small
   problem with ragged lengths: y, h_n, c_n, dx and the weight gradients must
   agree (relative error below 1e-4). Nothing is timed if they do not.
2. Time, with CUDA events around each call (numba events for nblstm, torch
   events for cuDNN, each on its default stream), after warm-up (compilation
   is outside the timed region), taking the median of repeats:
   B in {1, 4, 16, 64}, H in {256, 512, 1024}, T in {25, 100}, I = H, float32,
   inference (``nblstm.lstm`` / ``nn.LSTM`` under ``no_grad``) and training
   (forward + backward, dx included on both sides); cuDNN with its default
   TF32 setting (``torch.backends.cudnn.allow_tf32``, True by default) and
   with TF32 off. nblstm gets device arrays in and keeps results on the device,
   with ``check_finite=False`` (cuDNN does not check either).

Usage::

    python bench/gpu_compare.py --out results.md [--budget-s 280] [--quick]

Prints the table and writes it (markdown, with the card's name) to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import traceback
from pathlib import Path

os.environ.setdefault("NUMBA_CUDA_LOW_OCCUPANCY_WARNINGS", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

BATCHES = (1, 4, 16, 64)
HIDDEN = (256, 512, 1024)
STEPS = (25, 100)


def torch_lstm(torch, I, H, seed=0):
    torch.manual_seed(seed)
    return torch.nn.LSTM(I, H, batch_first=True).cuda().float()


def nblstm_params(module):
    """The module's weights as device LSTMParams (biases summed, gate order i f g o as torch)."""
    from numba import cuda

    from nblstm import LSTMParams

    sd = {k: v.detach().float().cpu().numpy() for k, v in module.state_dict().items()}
    return LSTMParams(cuda.to_device(np.ascontiguousarray(sd["weight_ih_l0"])),
                      cuda.to_device(np.ascontiguousarray(sd["weight_hh_l0"])),
                      cuda.to_device(sd["bias_ih_l0"] + sd["bias_hh_l0"]))


def check(torch):
    """nblstm == cuDNN on a small ragged problem (TF32 off); returns a report line."""
    from numba import cuda

    import nblstm

    B, T, I, H = 5, 9, 24, 40
    rng = np.random.default_rng(0)
    lengths = np.array([9, 3, 7, 1, 9])
    module = torch_lstm(torch, I, H)
    p = nblstm_params(module)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    for b, n in enumerate(lengths):
        dy[b, n:] = 0
    prev = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        tx = torch.tensor(x, device="cuda", requires_grad=True)
        packed = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first=True,
                                                         enforce_sorted=False)
        out, (h_n, c_n) = module(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
        y.backward(torch.tensor(dy, device="cuda"))
        ref = dict(y=y, h_n=h_n[0], c_n=c_n[0], dx=tx.grad, dW_ih=module.weight_ih_l0.grad,
                   dW_hh=module.weight_hh_l0.grad, db=module.bias_ih_l0.grad)
        ref = {k: v.detach().cpu().numpy() for k, v in ref.items()}
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    yy, (hh, cc), cache = nblstm.lstm_forward(cuda.to_device(x), p, lengths=lengths, backend="cuda")
    g = nblstm.lstm_backward(cache, cuda.to_device(dy))
    got = dict(y=yy, h_n=hh, c_n=cc, dx=g.dx, dW_ih=g.dparams.W_ih, dW_hh=g.dparams.W_hh,
               db=g.dparams.b)
    errs = {}
    for k, want in ref.items():
        have = got[k].copy_to_host()
        errs[k] = float(np.abs(have - want).max() / max(np.abs(want).max(), 1e-30))
    worst = max(errs.values())
    ok = worst < 1e-4
    line = ("check vs cuDNN (float32, TF32 off, ragged lengths): " + ("PASS" if ok else "FAIL")
            + " — max relative error " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()))
    return ok, line


class Timer:
    """Median milliseconds of ``fn`` between CUDA events, after warm-up."""

    def __init__(self, deadline):
        self.deadline = deadline

    def run(self, fn, make_events, sync, warmup=2, reps=15, max_s=3.0):
        for _ in range(warmup):
            fn()
        sync()
        times = []
        t_end = time.perf_counter() + max_s
        for _ in range(reps):
            start, stop = make_events()
            start.record()
            fn()
            stop.record()
            stop.synchronize()
            times.append(start.elapsed_time(stop))  # ms; numba and torch events agree on this
            if time.perf_counter() > min(t_end, self.deadline) and len(times) >= 3:
                break
        return statistics.median(times), len(times)


def bench_case(torch, timer, mode, B, T, H):
    from numba import cuda

    import nblstm
    from nblstm.cuda import forward, plan

    I = H
    module = torch_lstm(torch, I, H, seed=B + T + H)
    p = nblstm_params(module)
    rng = np.random.default_rng(B * T + H)
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    dy = rng.standard_normal((B, T, H)).astype(np.float32)
    d_x, d_dy = cuda.to_device(x), cuda.to_device(dy)
    tx = torch.tensor(x, device="cuda")
    tdy = torch.tensor(dy, device="cuda")
    tx_grad = tx.clone().requires_grad_(True)

    if mode == "inference":
        def run_nblstm():
            nblstm.lstm(d_x, p, backend="cuda", check_finite=False)

        def run_torch():
            with torch.no_grad():
                module(tx)
    else:
        def run_nblstm():
            _, _, cache = nblstm.lstm_forward(d_x, p, backend="cuda", check_finite=False)
            nblstm.lstm_backward(cache, d_dy)

        def run_torch():
            y, _ = module(tx_grad)
            y.backward(tdy)

    numba_events = lambda: (cuda.event(timing=True), cuda.event(timing=True))  # noqa: E731
    torch_events = lambda: (torch.cuda.Event(enable_timing=True),  # noqa: E731
                            torch.cuda.Event(enable_timing=True))
    row = dict(mode=mode, B=B, T=T, H=H)
    row["nblstm"], row["n_nb"] = timer.run(run_nblstm, numba_events, cuda.synchronize)
    prev = torch.backends.cudnn.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = True
        row["cudnn_tf32"], _ = timer.run(run_torch, torch_events, torch.cuda.synchronize)
        torch.backends.cudnn.allow_tf32 = False
        row["cudnn_fp32"], _ = timer.run(run_torch, torch_events, torch.cuda.synchronize)
    finally:
        torch.backends.cudnn.allow_tf32 = prev
    # which recurrence path nblstm took (forward kernel, this shape)
    fp = plan.plan(H, B, 4, 4, forward._forward_persistent_kernel, _fwd_args(B, T, H))
    row["path"] = ("persistent" if fp.persistent else "per-step") + \
        f" U={fp.units} blocks={fp.blocks} thr={fp.threads} S={fp.lanes} W_hh in " + \
        ("smem" if fp.w_shared else "global")
    return row


def _fwd_args(B, T, H):
    from numba import cuda

    def make(p):
        d = lambda *s: cuda.device_array(s, np.float32)  # noqa: E731
        # the arguments of forward._forward_persistent_kernel, in its order
        return (d(T, B, 4 * H), d(4 * H * H), d(B, H), d(B, H), d(T, B, H), d(B, H), d(B, H),
                d(T, B, 4 * H), d(T, B, H), True, cuda.to_device(np.zeros(T + 1, np.int64)),
                p.units, p.lanes, p.w_shared, p.red_offset, p.stage_offset, p.stage_len)
    return make


def table(rows, device, check_line, elapsed):
    lines = [f"# nblstm CUDA vs cuDNN — {device}", "", check_line, "",
             "Median ms per call (CUDA events). ratio = nblstm / cuDNN, same card, same run. "
             "float32, I = H.", "",
             "| mode | B | T | H | nblstm ms | cuDNN TF32 ms | cuDNN FP32 ms | ratio vs TF32 | "
             "ratio vs FP32 | nblstm forward path |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['mode']} | {r['B']} | {r['T']} | {r['H']} | error: {r['error']} "
                         "| | | | | |")
            continue
        lines.append(
            f"| {r['mode']} | {r['B']} | {r['T']} | {r['H']} | {r['nblstm']:.3f} | "
            f"{r['cudnn_tf32']:.3f} | {r['cudnn_fp32']:.3f} | "
            f"{r['nblstm'] / r['cudnn_tf32']:.2f} | {r['nblstm'] / r['cudnn_fp32']:.2f} | {r['path']} |")
    lines += ["", f"total run time {elapsed:.0f} s"]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="file to write the markdown table to")
    ap.add_argument("--budget-s", type=float, default=280.0,
                    help="stop timing new cases after this many seconds")
    ap.add_argument("--quick", action="store_true", help="B in {1, 16}, H in {256, 1024}, T = 25")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    import torch

    import nblstm.cuda as nc

    nc.require()
    if not torch.cuda.is_available():
        raise SystemExit("torch has no CUDA device")
    device = torch.cuda.get_device_name(0)
    print(f"device: {device}; torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}",
          flush=True)
    ok, check_line = check(torch)
    print(check_line, flush=True)
    rows = []
    if ok:
        timer = Timer(deadline=t0 + args.budget_s)
        batches, hidden, steps = ((1, 16), (256, 1024), (25,)) if args.quick else (BATCHES, HIDDEN, STEPS)
        for mode in ("inference", "training"):
            for H in hidden:
                for T in steps:
                    for B in batches:
                        if time.perf_counter() > t0 + args.budget_s:
                            rows.append(dict(mode=mode, B=B, T=T, H=H, error="skipped (time budget)"))
                            continue
                        try:
                            rows.append(bench_case(torch, timer, mode, B, T, H))
                        except Exception as exc:  # noqa: BLE001 (record it and go on)
                            traceback.print_exc()
                            rows.append(dict(mode=mode, B=B, T=T, H=H,
                                             error=f"{type(exc).__name__}: {str(exc)[:120]}"))
                        r = rows[-1]
                        if "error" not in r:
                            print(f"{mode:9s} B={B:3d} T={T:3d} H={H:4d}  nblstm {r['nblstm']:9.3f} ms"
                                  f"  cuDNN tf32 {r['cudnn_tf32']:8.3f}  fp32 {r['cudnn_fp32']:8.3f}"
                                  f"  ratio {r['nblstm'] / r['cudnn_tf32']:6.2f}  [{r['path']}]",
                                  flush=True)
                        else:
                            print(f"{mode} B={B} T={T} H={H}: {r['error']}", flush=True)
    text = table(rows, device, check_line, time.perf_counter() - t0)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
