"""The figure of a ``compare.py`` run: the sweeps, nblstm against its peers, and the ratios.

Implementations differ in colour *and* marker (nblstm blue circles, torch
orange squares, onnxruntime green diamonds, JAX purple down-triangles, the
reference grey triangles), so they stay apart in print and for colour-blind
readers; the mode is the line style (inference solid, training dashed) and the
dtype the marker fill (float32 filled, float64 open). The lower row is
nblstm / peer, one line per peer in the peer's colour and marker, with the
parity line at 1 (below it nblstm is faster). The machine, the
date and the commit are on the figure itself, so a copy of the image still
says where it came from.
"""
from __future__ import annotations

from pathlib import Path

import bench_common as bc

STYLE = {"nblstm": dict(color="tab:blue", marker="o"),
         "torch": dict(color="tab:orange", marker="s"),
         "onnxruntime": dict(color="tab:green", marker="D"),
         "jax": dict(color="tab:purple", marker="v"),
         "reference": dict(color="tab:gray", marker="^")}
LINE = {"inference": "-", "training": "--"}

PANELS = [("h_sweep", "H", "hidden size H at (B, T, I) = (32, 50, 32)"),
          ("b_sweep", "B", "batch size B at (T, I, H) = (50, 32, 128)"),
          ("t_sweep", "T", "sequence length T at (B, I, H) = (32, 32, 64)")]


def _fill(dtype, color):
    return color if dtype == "float32" else "white"


def plot(path, res, env):
    """Write the figure to ``path``; its file name, or None if no sweep was run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    panels = [p for p in PANELS if res.get(p[0])]
    if not panels:
        return None
    fig, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 7.2), squeeze=False,
                             gridspec_kw={"height_ratios": [2.2, 1]}, sharex="col")
    for col, (key, var, title) in enumerate(panels):
        ax, rax = axes[0, col], axes[1, col]
        series = {}
        for r in res[key]:
            c = bc.Case(**r["case"])
            for impl, t in r["times"].items():
                series.setdefault((impl, c.dtype, c.mode), []).append(
                    (getattr(c, var), t["steady"]))
        for (impl, dtype, mode), pts in sorted(series.items()):
            pts.sort()
            st = STYLE.get(impl, dict(color="black", marker="x"))
            ax.plot([p[0] for p in pts], [p[1] * 1e3 for p in pts], LINE[mode],
                    color=st["color"], marker=st["marker"], ms=5,
                    markerfacecolor=_fill(dtype, st["color"]))
            for peer in bc.PEERS if impl == "nblstm" else ():
                other = series.get((peer, dtype, mode))
                if not other:
                    continue
                theirs = dict(other)
                ratio = [(v, t / theirs[v]) for v, t in pts if v in theirs]
                pst = STYLE[peer]
                rax.plot([p[0] for p in ratio], [p[1] for p in ratio], LINE[mode],
                         color=pst["color"], marker=pst["marker"], ms=4,
                         markerfacecolor=_fill(dtype, pst["color"]))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_ylabel("steady-state time per call (ms)")
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        rax.axhline(1.0, color="tab:red", lw=1)
        rax.set_xscale("log", base=2)
        rax.set_yscale("log")
        rax.set_xlabel(var)
        rax.set_ylabel("nblstm / peer")
        rax.grid(True, which="both", alpha=0.3)
    handles = [Line2D([], [], ls="", label=impl, ms=7, markerfacecolor=st["color"], **st)
               for impl, st in STYLE.items() if any(impl in r["times"] for p in panels
                                                     for r in res[p[0]])]
    handles += [Line2D([], [], color="black", ls=LINE[m], label=m) for m in LINE]
    handles += [Line2D([], [], ls="", color="black", marker="o", markerfacecolor=f, label=d)
                for d, f in (("float32", "black"), ("float64", "white"))]
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    peers = ", ".join(f"{p} {env.get(p)}" for p in bc.PEERS if env.get(p))
    fig.suptitle(f"nblstm {env.get('git')} vs {peers or 'no peer'} — {env.get('cpu')}, "
                 f"{env.get('cores')} cores, numba threads {env.get('numba_threads')}, "
                 f"{env.get('date')}", fontsize=9)
    fig.tight_layout(rect=(0, 0.04, 1, 0.96))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path).name
