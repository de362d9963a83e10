#!/usr/bin/env python
"""Time nblstm against its peers (torch, onnxruntime, JAX) and the NumPy reference in one run.

    python bench/compare.py                    # the full run (several minutes on 2 cores)
    python bench/compare.py --quick            # a smoke-test subset
    python bench/compare.py --skip sweeps,isolation,memory,startup --blocks 3
    python bench/compare.py --replace          # overwrite the committed bench/RESULTS.md
    python bench/compare.py --impls nblstm,torch,reference   # without the onnxruntime and JAX peers

Without ``--replace`` or ``--out`` a run writes to a new folder
``bench/runs/<UTC stamp>/`` (RESULTS.md, results.png, results.json), never over
the committed results. RESULTS.md holds the run's generated tables only; what
binds each target and the decisions the numbers hold are in docs/performance.md.
The peers are optional: one that is not installed is left out with a line
saying so, and one that cannot run a case (onnxruntime: training, float64) is
recorded as skipped for it. Every ratio is nblstm / peer (below 1 nblstm is
faster); "best peer" is the fastest peer at that case.
How the timing works is in ``harness.py``; the cases and implementations in
``bench_common.py``; the targets in ``targets.py``; the figure in ``plot.py``;
the subprocess probes in ``probes.py``.

Sections
--------
grid       the four points of bench_common.GRID, both dtypes and modes, all implementations
sweeps     T, H and B sweeps (nblstm and the peers), for the plot
lengths    lengths uniform in [T/2, T] against the same batch at full length
load       the float32 grid with two busy processes competing for the cores
isolation  a few cases again, each implementation alone in a fresh process
memory     peak RSS at T = 100,000 (subprocess)
startup    fresh-process start-up with a warm and an empty numba cache
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import harness
import probes
import targets
from harness import fmt_ms, md_table

import bench_common as bc

HERE = harness.HERE
TORCH_THREADS = 2
NOISY = 1.5  # steady median / fastest call above this marks a time as noisy
SECTIONS = ["grid", "sweeps", "lengths", "load", "isolation", "memory", "startup"]


# --------------------------------------------------------------------------- cases

def run_case(case, impls, args, extra=None):
    """Time ``impls`` on ``case`` (plus ``extra``: {label: (case, impl)}) in alternating blocks.

    An implementation that does not run ``case`` (``bc.not_applicable``) is
    left out, its reason kept under ``"skipped"``.
    """
    fns, outputs, skipped = {}, {}, {}
    inputs = bc.make_inputs(case)
    for name in impls:
        reason = bc.not_applicable(name, case)
        if reason:
            skipped[name] = reason
            continue
        fns[name], outputs[name] = bc.make_callable(name, case, inputs)
    for label, (other_case, name) in (extra or {}).items():
        if bc.not_applicable(name, other_case) is None:
            fns[label], _ = bc.make_callable(name, other_case)
    for fn in fns.values():          # one call each, then the agreement check, before timing
        fn()
    problems = bc.check_agreement({n: o() for n, o in outputs.items()}, case.dtype)
    for p in problems:
        print(f"  WARNING {case.label()}: {p}", flush=True)
    timings = harness.time_blocks(fns, args.blocks, args.pause, args.min_block)
    r = {"case": case._asdict(), "times": {n: t.as_dict() for n, t in timings.items()},
         "problems": problems, "skipped": skipped}
    print(f"  {case.label():58s} " + "  ".join(
        f"{n} {fmt_ms(t.steady)} ({fmt_ms(t.after_idle)})" for n, t in timings.items()),
        flush=True)
    return r


def worker_main(spec):
    """Isolation check: time one implementation alone in this fresh process."""
    case = bc.Case(*spec["case"])
    fn, _ = bc.make_callable(spec["impl"], case)
    t = harness.time_blocks({spec["impl"]: fn}, spec["blocks"], spec["pause"], spec["min_block"])
    print(json.dumps({"steady": t[spec["impl"]].steady}))


def isolation_check(results, cases, args):
    """Re-time each implementation of ``cases`` alone in its own process."""
    rows = []
    for case in cases:
        match = targets.find(results, case)
        for impl, t in match["times"].items():
            spec = {"case": list(case), "impl": impl, "blocks": args.blocks,
                    "pause": args.pause, "min_block": args.min_block}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
            env = dict(os.environ, NBLSTM_BENCH_TORCH_THREADS=str(TORCH_THREADS))
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if proc.returncode != 0:
                print(f"  isolation worker failed: {proc.stderr[-2000:]}", flush=True)
                continue
            alone = json.loads(proc.stdout.strip().splitlines()[-1])["steady"]
            rows.append({"case": case._asdict(), "impl": impl, "interleaved": t["steady"],
                         "alone": alone, "ratio": t["steady"] / alone})
            print(f"  {case.label():55s} {impl:10s} interleaved {fmt_ms(t['steady'])} ms"
                  f"  alone {fmt_ms(alone)} ms  ratio {t['steady'] / alone:5.2f}", flush=True)
    return rows


# --------------------------------------------------------------------------- tables

def fmt_time(result, impl, key="steady"):
    """Milliseconds, with '*' on a steady median above NOISY x the fastest call."""
    t = result["times"].get(impl)
    if t is None:
        return "—"
    noisy = key == "steady" and t["steady"] > NOISY * t["fastest"]
    return fmt_ms(t[key]) + ("*" if noisy else "")


def ratio_peers(impls):
    """The peers that get a ratio column: torch always (— when it is not installed), then the others run."""
    return ["torch"] + [p for p in bc.PEERS if p != "torch" and p in impls]


def fmt_best(result, nb):
    best = targets.best_peer(result)
    return "—" if nb is None or best is None else f"{nb / best[1]:.2f} ({best[0]})"


def table_rows(results, impls, rates, extra_cols=()):
    """Steady state and after-idle per implementation, ratios to each peer and to the best one,
    and GFLOP/s against the GEMM rate."""
    rows = []
    peers = ratio_peers(impls)
    for r in results:
        c = bc.Case(**r["case"])
        nb = targets.steady(r, "nblstm")
        row = [f"({c.B}, {c.T}, {c.I}, {c.H})" + (" lengths" if c.lengths else ""),
               c.dtype, c.mode]
        row += [fmt_time(r, i) for i in impls]
        row += [fmt_time(r, e) for e in extra_cols]
        row += [fmt_time(r, i, "after_idle") for i in ("nblstm", "torch") if i in impls]
        rr = targets.steady(r, "reference")
        for peer in peers:
            tp = targets.steady(r, peer)
            row.append("—" if nb is None or tp is None else f"{nb / tp:.2f}")
        row.append(fmt_best(r, nb))
        # on a shared machine the fastest calls are the closest to the uncontended cost
        fb, ft = (r["times"].get(i, {}).get("fastest") for i in ("nblstm", "torch"))
        row.append("—" if fb is None or ft is None else f"{fb / ft:.2f}")
        if "reference" in impls:
            row.append("—" if nb is None or rr is None else f"{nb / rr:.3f}")
        for impl in ("nblstm", "torch"):
            t = targets.steady(r, impl)
            if impl in impls:
                g = None if t is None else bc.flops(c) / t / 1e9
                row.append("—" if g is None else f"{g:.0f} ({100 * g / rates[c.dtype]:.0f}%)")
        rows.append(row)
    header = (["(B, T, I, H)", "dtype", "mode"] + [f"{i} ms" for i in impls]
              + [f"{e} ms" for e in extra_cols]
              + [f"{i} after idle ms" for i in ("nblstm", "torch") if i in impls]
              + [f"nblstm/{p}" for p in peers] + ["nblstm/best peer", "nblstm/torch best call"]
              + (["nblstm/reference"] if "reference" in impls else [])
              + [f"{i} GFLOP/s (% of GEMM)" for i in ("nblstm", "torch") if i in impls])
    return header, rows


def load_rows(results):
    rows = []
    for r in results:
        c = bc.Case(**r["case"])
        nb, th = r["times"].get("nblstm"), r["times"].get("torch")
        row = [f"({c.B}, {c.T}, {c.I}, {c.H})", c.dtype, c.mode, fmt_ms(nb["steady"]),
               fmt_ms(th["steady"]) if th else "—",
               f"{nb['steady'] / th['steady']:.2f}" if th else "—",
               fmt_best(r, nb["steady"]),
               f"{nb['slowest'] / nb['steady']:.1f}",
               f"{th['slowest'] / th['steady']:.1f}" if th else "—"]
        rows.append(row)
    header = ["(B, T, I, H)", "dtype", "mode", "nblstm ms", "torch ms", "nblstm/torch",
              "nblstm/best peer", "nblstm slowest / median", "torch slowest / median"]
    return header, rows


def write_markdown(path, res, env, target_rows, sections, plot_name):
    out = ["# nblstm CPU benchmark results", "",
           f"Generated by `python bench/{env['command']}` on {env['date']} "
           f"(nblstm at {env['git']}). Each implementation ran in {res['blocks']} blocks of "
           f"back-to-back calls, the blocks alternating with a {res['pause']} s pause before "
           "each. *Steady* is the median of the calls after the first of each block; "
           "*after idle* the median of the first calls, which pay for waking thread pools. "
           "Ratios are of steady medians from this run, nblstm / peer (below 1 nblstm is "
           "faster); *best peer* is the fastest of torch, onnxruntime and JAX at that case "
           "(onnxruntime runs float32 inference only). A time marked * had its median above "
           f"{NOISY} x its fastest call. What binds each target, and the design decisions these "
           "numbers hold, are in docs/performance.md.", ""]
    if res.get("busy"):
        out += [f"**WARNING: {res['busy']}**", ""]
    if res["quick"]:
        out += ["**--quick run: a subset, for smoke testing.**", ""]
    out += ["## Targets (speed against torch and the best peer, lengths, load, start-up, memory)",
            "",
            "| target | measured | verdict |", "|---|---|---|"]
    out += [f"| {t} | {m} | **{v}** |" for t, m, v, _ in target_rows]
    out.append("")
    for title, _, _, details in target_rows:
        if details:
            out += [f"<details><summary>{title}</summary>", ""]
            out += [f"- {d}" for d in details]
            out += ["", "</details>", ""]
    out += ["## Machine", ""] + harness.environment_lines(env)
    out += peer_lines(env)
    out.append(f"- load average before / after: {res['load_before']} / {res['load_after']}")
    out.append(f"- GEMM rate (np.dot, {res['gemm_n']}×{res['gemm_n']}, all BLAS threads): "
               + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in res["rates"].items()))
    out.append("")
    for title, header, rows in sections:
        out += [f"## {title}", "", md_table(header, rows), ""]
    if res.get("isolation"):
        out += ["## Isolation check (interleaved vs. alone in a fresh process)", ""]
        rows = [[bc.Case(**r["case"]).label(), r["impl"], fmt_ms(r["interleaved"]),
                 fmt_ms(r["alone"]), f"{r['ratio']:.2f}"] for r in res["isolation"]]
        out += [md_table(["case", "impl", "interleaved ms", "alone ms", "ratio"], rows), ""]
    if res.get("memory"):
        out += ["## Peak memory", "", "Peak RSS of a fresh process during one call minus the "
                "RSS before it, plus x itself.", ""]
        rows = [[fn, str(m["shape"]), m["dtype"], f"{m['x_bytes'] / 2 ** 20:.0f}",
                 f"{m['y_bytes'] / 2 ** 20:.0f}", f"{m['cache_extra_bytes'] / 2 ** 20:.0f}",
                 f"{m['footprint'] / 2 ** 20:.0f}",
                 f"{m['footprint'] / (m['x_bytes'] + m['y_bytes']):.2f}", f"{m['seconds']:.2f}"]
                for fn, m in res["memory"].items()]
        out += [md_table(["function", "(B, T, I, H)", "dtype", "x MiB", "y MiB",
                          "cache beyond x, y MiB", "footprint MiB", "footprint / (x + y)",
                          "seconds"], rows), ""]
    if res.get("startup"):
        st = res["startup"]
        out += ["## Start-up", "", "Fresh `python -c`: `import nblstm` + a first (4, 10, 8)→16 "
                "`lstm_forward` + `lstm_backward` (float64); cold = empty `NUMBA_CACHE_DIR`; "
                f"warm = median of {len(st['warm_all'])}: "
                f"{', '.join(f'{w:.2f}' for w in st['warm_all'])} s.", ""]
        rows = [[k, f"{v['wall']:.2f}", f"{v['import']:.2f}", f"{v['forward']:.2f}",
                 f"{v['backward']:.2f}"] for k, v in st.items() if k in ("cold", "warm")]
        out += [md_table(["cache", "process wall s", "import s", "first forward s",
                          "first backward s"], rows), ""]
    if plot_name:
        out += ["## Plot", "", f"![steady-state time and nblstm/peer vs. H, B and T]({plot_name})",
                ""]
    # only the run's own section: the Dask and call-overhead sections after it stay as they are
    harness.write_section(path, "compare", "\n".join(out))


def peer_environment(impls):
    """Versions and threads of the peers besides torch (harness.environment covers torch)."""
    info = {"peers_run": [p for p in bc.PEERS if p in impls],
            "peers_missing": {p: bc.unavailable(p) for p in bc.PEERS if bc.unavailable(p)}}
    versions = bc.peer_versions()
    if "onnxruntime" in impls:
        info["onnxruntime"] = versions.get("onnxruntime")
        info["onnxruntime_threads"] = (f"intra_op_num_threads={bc.PEER_THREADS}, "
                                       "inter_op_num_threads=1, sequential")
    if "jax" in impls:
        import jax

        info["jax"] = versions.get("jax")
        info["jax_backend"] = jax.default_backend()
        info["jax_xla_flags"] = os.environ.get("XLA_FLAGS", "")
        info["jax_pool_threads"] = bc.jax_pool_threads()
        info["jax_schedulable_cpus"] = (len(os.sched_getaffinity(0))
                                        if hasattr(os, "sched_getaffinity") else os.cpu_count())
    return info


def peer_lines(env):
    lines = []
    for k in ("onnxruntime", "onnxruntime_threads", "jax", "jax_backend", "jax_xla_flags",
              "jax_pool_threads", "jax_schedulable_cpus"):
        if env.get(k) not in (None, ""):
            lines.append(f"- {k}: `{env[k]}`")
    for peer, why in (env.get("peers_missing") or {}).items():
        lines.append(f"- {peer}: **not run — {why}**")
    return lines


def warn_jax_threads():
    """XLA's pool has a thread per schedulable CPU: say so where that is more than the peers get."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if n and n > bc.PEER_THREADS:
        print(f"WARNING: JAX uses {n} threads here (one per schedulable CPU; XLA has no flag for "
              f"{bc.PEER_THREADS}); run under `taskset -c 0,1` for {bc.PEER_THREADS} threads each.",
              flush=True)


# --------------------------------------------------------------------------- main

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a small subset, for smoke testing")
    p.add_argument("--blocks", type=int, default=None,
                   help="blocks of back-to-back calls per implementation (default 5; 3 with --quick)")
    p.add_argument("--pause", type=float, default=0.3, help="seconds of sleep before every block")
    p.add_argument("--min-block", type=float, default=None,
                   help="seconds a block should last, at least 3 calls (default 0.1; 0.04 --quick)")
    p.add_argument("--out", type=Path, default=None,
                   help="directory for RESULTS.md, results.png, results.json "
                        "(default: a new bench/runs/<stamp>/)")
    p.add_argument("--replace", action="store_true",
                   help="write bench/RESULTS.md and bench/results.png, replacing the committed ones")
    p.add_argument("--impls", default=",".join(bc.IMPLEMENTATIONS),
                   help=f"comma-separated implementations, of: {','.join(bc.IMPLEMENTATIONS)} "
                        "(default: all that are installed)")
    p.add_argument("--skip", default="", help=f"sections to skip, of: {','.join(SECTIONS)}")
    p.add_argument("--load-dtypes", default="float32",
                   help="dtypes of the load section (default float32)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.blocks is None:
        args.blocks = 3 if args.quick else 5
    if args.min_block is None:
        args.min_block = 0.04 if args.quick else 0.1
    args.skip = {s for s in args.skip.split(",") if s}
    unknown = args.skip - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {SECTIONS}")
    return args


def _set_torch_threads():
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(int(os.environ.get("NBLSTM_BENCH_TORCH_THREADS", TORCH_THREADS)))


def main(argv=None):
    args = parse_args(argv)
    if args.worker:
        _set_torch_threads()
        return worker_main(json.loads(args.worker))
    wanted = [s for s in args.impls.split(",") if s]
    bad = set(wanted) - set(bc.IMPLEMENTATIONS)
    if bad:
        sys.exit(f"unknown implementations {sorted(bad)}; choose from {bc.IMPLEMENTATIONS}")
    impls = bc.available_implementations(wanted)
    if "torch" in wanted and "torch" not in impls:
        print("torch is not installed: ratios against torch are NOT MEASURED.", flush=True)
    for peer in bc.PEERS:
        if peer in wanted and peer not in impls:
            print(f"{peer} left out: {bc.unavailable(peer)}", flush=True)
    if "torch" in impls:
        _set_torch_threads()
    if "jax" in impls:
        warn_jax_threads()
    import nblstm  # noqa: F401  (fail early with a clear error)

    t_start = time.perf_counter()
    busy = harness.busy_warning()
    if busy:
        print(f"WARNING: {busy}", flush=True)
    res = {"busy": busy, "impls": impls, "blocks": args.blocks, "pause": args.pause,
           "quick": args.quick, "load_before": harness.load_average(), "grid": [],
           "t_sweep": [], "h_sweep": [], "b_sweep": [], "lengths": [], "load": []}
    q = args.quick
    res["gemm_n"] = 1024 if q else 2048
    res["rates"] = {d: harness.gemm_rate(d, res["gemm_n"], 3 if q else 5, args.pause)
                    for d in bc.DTYPES}
    print("GEMM rate: " + ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in res["rates"].items())
          + "\ntimes: steady (after idle) in ms", flush=True)
    fast = [i for i in impls if i != "reference"]

    if "grid" not in args.skip:
        print("\nGrid", flush=True)
        points = bc.SMALL if q else bc.GRID
        res["grid"] = [run_case(bc.Case(*s, d, m), impls, args)
                       for s in points for d in bc.DTYPES for m in bc.MODES]
    if "sweeps" not in args.skip:
        modes = ["inference"] if q else bc.MODES
        dts = ["float32"] if q else bc.DTYPES
        for key, var, values, make in (
                ("t_sweep", "T", [10, 100, 300] if q else bc.T_SWEEP,
                 lambda v, d, m: bc.Case(32, v, 32, 64, d, m)),
                ("h_sweep", "H", [32, 128, 256] if q else bc.H_SWEEP,
                 lambda v, d, m: bc.Case(32, 50, 32, v, d, m)),
                ("b_sweep", "B", [1, 16, 64] if q else bc.B_SWEEP,
                 lambda v, d, m: bc.Case(v, 50, 32, 128, d, m))):
            print(f"\n{var} sweep", flush=True)
            res[key] = [run_case(make(v, d, m), fast, args)
                        for d in (dts if key == "t_sweep" else ["float32"]) for m in modes
                        for v in values]
    if "lengths" not in args.skip:
        print("\nLengths uniform in [T/2, T] (nblstm full = same batch at full length)",
              flush=True)
        for s in (bc.LENGTHS_POINTS[:1] if q else bc.LENGTHS_POINTS):
            for d in (["float32"] if q else bc.DTYPES):
                for m in bc.MODES:
                    case = bc.Case(*s, d, m, lengths=True)
                    extra = {"nblstm full": (case._replace(lengths=False), "nblstm")}
                    if "torch" in fast:
                        extra["torch full"] = (case._replace(lengths=False), "torch")
                    res["lengths"].append(run_case(case, fast, args, extra))
    if "load" not in args.skip:
        print("\nUnder load: two busy processes compete for the cores", flush=True)
        dts = [d for d in args.load_dtypes.split(",") if d]
        with harness.competing_load(2):
            res["load"] = [run_case(bc.Case(*s, d, m), fast, args)
                           for s in (bc.SMALL if q else bc.GRID) for d in dts for m in bc.MODES]
    if "isolation" not in args.skip and res["grid"]:
        print("\nIsolation check: interleaved vs. alone in a fresh process", flush=True)
        cases = ([bc.Case(*bc.SMALL[1], "float32", "inference")] if q else
                 [bc.Case(*s, "float32", m) for s in bc.SMALL for m in bc.MODES])
        res["isolation"] = isolation_check(res["grid"], cases, args)
    if "memory" not in args.skip:
        T = 5_000 if q else 100_000
        print(f"\nPeak memory at (B, T, I, H) = (8, {T}, 32, 64) float32", flush=True)
        res["memory"] = probes.memory_probe(T)
    if "startup" not in args.skip:
        print("\nStart-up (fresh process; cold = empty numba cache)", flush=True)
        res["startup"] = probes.startup_probe(warm_runs=2 if q else 5)
    res["load_after"] = harness.load_average()

    env = harness.environment("torch" in impls)
    env.update(peer_environment(impls))
    sections = []
    for key, title in (("grid", "Grid"), ("t_sweep", "T sweep at (32, T, 32, 64)"),
                       ("h_sweep", "H sweep at (32, 50, 32, H)"),
                       ("b_sweep", "B sweep at (B, 50, 32, 128)")):
        if res[key]:
            sections.append((title, *table_rows(res[key], impls if key == "grid" else fast,
                                                res["rates"])))
    if res["lengths"]:
        extra = ["nblstm full"] + (["torch full"] if "torch" in fast else [])
        header, rows = table_rows(res["lengths"], fast, res["rates"], extra)
        for row, r in zip(rows, res["lengths"]):
            row.insert(3 + len(fast) + len(extra),
                       f"{targets.steady(r, 'nblstm') / targets.steady(r, 'nblstm full'):.2f}")
        header.insert(3 + len(fast) + len(extra), "lengths/full")
        sections.append(("Lengths uniform in [T/2, T]", header, rows))
    if res["load"]:
        sections.append(("Under load (two busy processes started by the run)",
                         *load_rows(res["load"])))
    for title, header, rows in sections:
        harness.print_table(title, header, rows)
    target_rows = targets.evaluate(res)
    print("\nTargets")
    for title, measured, verdict, _ in target_rows:
        print(f"  [{verdict}] {title}: {measured}")

    out = harness.output_dir(args.out, args.replace)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"env": env, **res}, default=str, indent=1))
    import plot  # after the numbers are safe on disk

    plot_name = harness.try_plot(plot.plot, out / "results.png", res, env)
    write_markdown(out / "RESULTS.md", res, env, target_rows, sections, plot_name)
    print(f"\nwrote {out / 'RESULTS.md'}" + (f", {out / plot_name}" if plot_name else "")
          + f" in {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
