"""The CPU targets (speed against torch and the best peer, lengths, load, start-up, memory).

Every ratio is nblstm / peer in the steady state (median of the calls after
the first of each block), both timed in the same run. The targets of issue 29
are against the *best peer*: at each case the fastest of torch, onnxruntime
and JAX that ran it (onnxruntime runs float32 inference only); those against
torch alone stay beside them. Each target gives one
row: (title, what was measured, verdict, detail lines). bench/README.md lists the
targets; docs/performance.md says where each stands and what binds it.
"""
from __future__ import annotations

import bench_common as bc

LARGE = bc.GRID[2:]


def steady(result, impl):
    t = result["times"].get(impl)
    return None if t is None else t["steady"]


def best_peer(result, peers=bc.PEERS):
    """(name, steady seconds) of the fastest peer timed in ``result``, or None."""
    times = [(steady(result, p), p) for p in peers if steady(result, p) is not None]
    if not times:
        return None
    t, name = min(times)
    return name, t


def find(results, case):
    for r in results:
        if bc.Case(**r["case"]) == case:
            return r
    return None


def evaluate(res):
    rows = []
    grid = res["grid"]
    have_torch = "torch" in res["impls"]
    have_peer = any(p in res["impls"] for p in bc.PEERS)

    def ratio_target(title, points, dtypes, limit, modes=bc.MODES, against="torch"):
        """nblstm / ``against`` ("torch", or "best" for the best peer) at every point."""
        worst, details, missing = None, [], 0
        have = have_torch if against == "torch" else have_peer
        for shape in points:
            for dtype in dtypes:
                for mode in modes:
                    r = find(grid, bc.Case(*shape, dtype, mode))
                    best = None if r is None else (
                        best_peer(r) if against == "best"
                        else (("torch", steady(r, "torch")) if steady(r, "torch") else None))
                    if r is None or not have or best is None:
                        missing += 1
                        continue
                    ratio = steady(r, "nblstm") / best[1]
                    ok = ratio <= limit
                    who = f" (x {best[0]})" if against == "best" else ""
                    details.append(f"{shape} {dtype} {mode}: {ratio:.2f}{who} "
                                   f"{'met' if ok else f'MISSED by {ratio / limit:.2f}x'}")
                    if worst is None or ratio > worst[0]:
                        worst = (ratio, f"{shape} {dtype} {mode}{who}")
        if not have:
            return rows.append((title, "torch not installed" if against == "torch"
                                else "no peer installed", "NOT MEASURED", []))
        if worst is None:
            return rows.append((title, "no point measured", "NOT MEASURED", []))
        verdict = "MET" if worst[0] <= limit else "MISSED"
        note = f" ({missing} of {missing + len(details)} points not run)" if missing else ""
        rows.append((title, f"worst {worst[0]:.2f} at {worst[1]}{note}",
                     verdict if not missing or verdict == "MISSED" else f"{verdict} (partial)",
                     details))

    ratio_target("float32: nblstm/torch <= 1.0 at every grid point, inference and training",
                 bc.GRID, ["float32"], 1.0)
    ratio_target("small points (1,100,32,128), (32,50,32,64): nblstm/torch <= 0.6, both dtypes",
                 bc.SMALL, bc.DTYPES, 0.6)
    ratio_target("float64 at the two large points: nblstm/torch <= 0.75", LARGE, ["float64"], 0.75)
    # issue 29: against the fastest of torch, onnxruntime and JAX at each point
    ratio_target("float32: nblstm/best peer <= 1.0 at every grid point, inference and training",
                 bc.GRID, ["float32"], 1.0, against="best")
    ratio_target("float32 at the small points (1,100,32,128), (32,50,32,64): nblstm/best peer <= 0.8",
                 bc.SMALL, ["float32"], 0.8, against="best")
    ratio_target("float64: nblstm/best peer <= 1.0 at every grid point, inference and training",
                 bc.GRID, ["float64"], 1.0, against="best")

    # float32 inference at >= 85 % of the same-run GEMM rate at the large points
    details, worst = [], None
    for shape in LARGE:
        r = find(grid, bc.Case(*shape, "float32", "inference"))
        if r is None:
            continue
        c = bc.Case(*shape, "float32", "inference")
        share = bc.flops(c) / steady(r, "nblstm") / 1e9 / res["rates"]["float32"]
        details.append(f"{shape}: {100 * share:.0f} % of {res['rates']['float32']:.0f} GFLOP/s"
                       + ("" if share >= 0.85 else f" (MISSED by {0.85 / share:.2f}x)"))
        if worst is None or share < worst[0]:
            worst = (share, str(shape))
    rows.append(("float32 inference at >= 85 % of the same-run GEMM rate at the large points",
                 "not run" if worst is None else f"lowest {100 * worst[0]:.0f} % at {worst[1]}",
                 "NOT MEASURED" if worst is None else ("MET" if worst[0] >= 0.85 else "MISSED"),
                 details))

    # under two competing busy processes
    details, worst_ratio, worst_spread = [], None, None
    for r in res.get("load", []):
        c = bc.Case(**r["case"])
        nb, th = r["times"].get("nblstm"), r["times"].get("torch")
        if nb is None:
            continue
        spread = nb["slowest"] / nb["steady"]
        line = f"{c.shape} {c.dtype} {c.mode}: slowest nblstm call {spread:.1f} x its median"
        if th is not None:
            ratio = nb["steady"] / th["steady"]
            line += f", nblstm/torch {ratio:.2f}"
            worst_ratio = ratio if worst_ratio is None else max(worst_ratio, ratio)
        worst_spread = spread if worst_spread is None else max(worst_spread, spread)
        details.append(line)
    if worst_spread is None:
        rows.append(("under 2 busy processes: nblstm/torch <= 1.0, no call > 3 x its median",
                     "not run", "NOT MEASURED", []))
    else:
        ok = worst_spread <= 3 and (worst_ratio is None or worst_ratio <= 1.0)
        rows.append(("under 2 busy processes: nblstm/torch <= 1.0, no call > 3 x its median",
                     (f"worst ratio {worst_ratio:.2f}, " if worst_ratio is not None else "")
                     + f"slowest call {worst_spread:.1f} x median",
                     "MET" if ok else "MISSED", details))

    # lengths uniform in [T/2, T] against full length
    details, worst = [], None
    for r in res["lengths"]:
        full, part = r["times"].get("nblstm full"), r["times"].get("nblstm")
        if full is None or part is None:
            continue
        c = bc.Case(**r["case"])
        ratio = part["steady"] / full["steady"]
        steps = bc.lengths_for(c).sum() / (c.B * c.T)
        details.append(f"{c.shape} {c.dtype} {c.mode}: {ratio:.2f} (work fraction {steps:.2f})"
                       + ("" if ratio <= 0.8 else f" MISSED by {ratio / 0.8:.2f}x"))
        if worst is None or ratio > worst[0]:
            worst = (ratio, f"{c.shape} {c.dtype} {c.mode}")
    rows.append(("lengths ~ U[T/2, T]: time <= 0.8 x full length",
                 "not run" if worst is None else f"worst {worst[0]:.2f} at {worst[1]}",
                 "NOT MEASURED" if worst is None else ("MET" if worst[0] <= 0.8 else "MISSED"),
                 details))

    # the speed-up over the NumPy reference: informative only
    details, worst = [], None
    for dtype in bc.DTYPES:
        for mode in bc.MODES:
            r = find(grid, bc.Case(*bc.REFERENCE_POINT, dtype, mode))
            if r is None or "reference" not in r["times"]:
                continue
            speedup = steady(r, "reference") / steady(r, "nblstm")
            details.append(f"{dtype} {mode}: {speedup:.1f}x")
            if worst is None or speedup < worst[0]:
                worst = (speedup, f"{dtype} {mode}")
    if worst is not None:
        rows.append((f"reference/nblstm at {bc.REFERENCE_POINT} (informative)",
                     f"lowest {worst[0]:.1f}x ({worst[1]})", "INFO", details))

    st = res.get("startup")
    if st:
        w = st["warm"]
        rows.append(("start-up, warm numba cache: import + first small lstm_forward + "
                     "lstm_backward < 1.5 s",
                     f"{w['wall']:.2f} s process wall (in-process {w['total']:.2f} s: import "
                     f"{w['import']:.2f}, forward {w['forward']:.2f}, backward {w['backward']:.2f})",
                     "MET" if w["wall"] < 1.5 else "MISSED", []))
        if "cold" in st:
            c = st["cold"]
            rows.append(("cold compile (empty numba cache; docs/compile-time.md refers to it)",
                         f"{c['wall']:.1f} s process wall (import {c['import']:.1f}, forward "
                         f"{c['forward']:.1f}, backward {c['backward']:.1f})", "INFO", []))
    else:
        rows.append(("start-up < 1.5 s with warm cache", "not run", "NOT MEASURED", []))

    mem = res.get("memory")
    if mem:
        m = mem["lstm"]
        xy = m["x_bytes"] + m["y_bytes"]
        ratio = m["footprint"] / xy
        rows.append((f"memory: lstm at (B,T,I,H)={m['shape']} {m['dtype']} close to x + y "
                     "(<= 1.1x)",
                     f"{m['footprint'] / 2 ** 20:.0f} MiB = {ratio:.2f} x (x + y = "
                     f"{xy / 2 ** 20:.0f} MiB)", "MET" if ratio <= 1.1 else "MISSED", []))
        f = mem["lstm_forward"]
        ideal, kept = f["ideal_cache_bytes"], f["cache_extra_bytes"]
        rows.append(("memory: lstm_forward keeps only what backward needs (<= 1.1 x 4 gates + c "
                     "+ a copy of x per step)",
                     f"cache {kept / 2 ** 20:.0f} MiB vs {ideal / 2 ** 20:.0f} MiB "
                     f"({kept / ideal:.2f}x)", "MET" if kept <= 1.1 * ideal else "MISSED", []))
    else:
        rows.append(("memory: lstm close to x + y", "not run", "NOT MEASURED", []))

    per_step = []
    for r in res["t_sweep"]:
        c = bc.Case(**r["case"])
        if c.mode == "inference" and c.dtype == "float32":
            per_step.append((c.T, steady(r, "nblstm") / c.T))
    if len(per_step) >= 2:
        per_step.sort()
        spread = max(p for _, p in per_step[1:]) / min(p for _, p in per_step[1:])
        rows.append(("cost linear in T at (32, T, 32, 64) (float32 inference; per-step time)",
                     ", ".join(f"T={t}: {p * 1e6:.1f} us" for t, p in per_step)
                     + f"; max/min per step for T>={per_step[1][0]}: {spread:.2f}", "INFO", []))
    return rows
