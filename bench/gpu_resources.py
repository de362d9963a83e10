#!/usr/bin/env python
"""The machine code of every CUDA kernel, built as numba-cuda builds it on an H100, read without a GPU.

    python bench/gpu_resources.py                     # the table (about a minute on two cores)
    python bench/gpu_resources.py --json FILE         # and one record per kernel and dtype
    python bench/gpu_resources.py --out DIR           # and each kernel's PTX, cubin and SASS
    python bench/gpu_resources.py --kernels forward_persistent --dtypes float32

For each kernel of ``tests/cuda/_ptx.py`` (the one list of kernel signatures) and dtype:

1. numba-cuda builds it exactly as for a GPU of compute capability 9.0 (NVVM -> PTX ->
   nvJitLink for ``sm_90a``, linking libcudadevrt where the kernel uses grid sync), its
   device queries answered by a stand-in device: no GPU and no driver are needed.
2. ``cuobjdump --dump-resource-usage`` reads registers, stack, shared and local memory off
   the linked cubin (what the driver uses for occupancy); ``ptxas -v`` on the kernel's PTX
   reads the spill stores and loads.
3. ``nvdisasm`` gives the SASS: the routines the kernel calls (64-bit integer division,
   the IEEE float-division slow path, grid sync), which of those calls sit on a cycle of
   the control-flow graph (in a loop), and the innermost loop that does the most FMAs: its
   instructions, loads by kind and instructions per FMA.
4. An H100 model (SXM, 132 SMs; the rules of cuda_occupancy.h) gives the blocks per SM
   that the registers allow at the kernel's launch width, and, for the cooperative
   kernels, the plan ``nblstm.cuda.plan`` picks at every shape of bench/gpu_compare.py and
   whether that grid is resident at once (the persistent path).

``--json FILE`` writes a list of records, one per kernel and dtype, with ``kernel``,
``dtype``, ``registers``, ``spill_bytes``, ``loop_instructions_per_fma`` (None without an
FMA loop) and ``calls`` (routine -> number of call sites), and beside them ``threads``,
``registers_for_two_blocks``, ``local_bytes``, ``loop_calls``, ``loop`` and, for the
cooperative kernels, ``plans``. tests/cuda/test_resources.py runs this script and asserts
the gates of issue 28 on those records; docs/cuda.md#machine-code-read-without-a-gpu has
the figures.

Needs the cuda extra and three CUDA binary utilities of the same CUDA major version as
the toolkit numba-cuda compiles with: ``pip install -e ".[cuda,gpu-tools]"``
(``nvidia-cuda-nvcc`` for ptxas, ``nvidia-cuda-cuobjdump``, ``nvidia-cuda-nvdisasm``).
Where they are missing it says so and exits with status 77. Carried into the project from
the measuring script of issue 28 (``shared/tools/gpu/cubin_report.py``).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: exit status when the tools are missing (the "skipped" status of automake's test harness)
MISSING = 77

#: the CUDA binary utilities and the pip package that brings each
TOOLS = {"ptxas": "nvidia-cuda-nvcc", "cuobjdump": "nvidia-cuda-cuobjdump",
         "nvdisasm": "nvidia-cuda-nvdisasm"}

#: compute capability numba-cuda targets on an H100 (it builds sm_90a there)
CC = (9, 0, "a")

H100 = dict(
    sms=132,
    max_warps_sm=64,
    max_blocks_sm=32,
    regs_sm=65536,
    reg_alloc_unit=256,            # registers are allocated per warp in units of 256
    max_regs_thread=255,
    subpartitions=4,
    smem_sm=228 * 1024,            # the largest carveout (occupancy queries assume it)
    smem_block_reserved=1024,      # system use, per block (sm_80 and later)
    smem_alloc_unit=128,
    smem_block_default=48 * 1024,  # without the opt-in attribute for more
)

#: routines whose call in a loop the gates forbid: 64-bit integer division and remainder, and
#: the IEEE float-division slow paths (float32 ``..._slowpath``, float64 ``..._full``)
DIVISION = re.compile(r"(?:div|rem)_[su]64|div_rn\w*(?:slowpath|full)")


# ------------------------------------------------------------------------------ the tools
def _tool_path(name):
    """A CUDA binary utility: the pip wheel's first (cuda.pathfinder), then PATH."""
    try:
        from cuda.pathfinder import find_nvidia_binary_utility
        found = find_nvidia_binary_utility(name)
        if found:
            return str(found)
    except Exception:  # noqa: BLE001 (an older cuda-pathfinder without it)
        pass
    site = Path(sys.prefix) / "lib"
    for candidate in sorted(site.glob(f"python3*/site-packages/nvidia/cu*/bin/{name}")):
        return str(candidate)
    return shutil.which(name)


def _release(path):
    """(major, minor) of a CUDA tool's ``--version``."""
    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    m = re.search(r"release (\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else None


def find_tools():
    """``(paths, reason)``: the tools by name, and why they cannot be used ('' if they can)."""
    if importlib.util.find_spec("numba_cuda") is None:
        return {}, 'numba-cuda is not installed: pip install -e ".[cuda]"'
    try:
        from cuda.bindings import nvjitlink
        toolkit = tuple(nvjitlink.version())
    except Exception as exc:  # noqa: BLE001
        return {}, f'nvJitLink, which numba-cuda links kernels with, is missing ({exc}): pip install -e ".[cuda]"'
    try:
        from numba.cuda.cudadrv import nvvm
        nvvm.NVVM()
    except Exception as exc:  # noqa: BLE001
        return {}, f'NVVM, which numba-cuda compiles kernels with, is missing ({exc}): pip install -e ".[cuda]"'
    pin = f"=={toolkit[0]}.*"
    install = " ".join(f'"{package}{pin}"' for package in TOOLS.values())
    paths, problems = {}, []
    for name in TOOLS:
        path = _tool_path(name)
        release = path and _release(path)
        if not path:
            problems.append(f"{name} not found")
        elif not release or release[0] != toolkit[0]:
            problems.append(f"{name} at {path} is CUDA {release}, numba-cuda's toolkit is CUDA {toolkit}")
        paths[name] = path
    if problems:
        return paths, (f"{'; '.join(problems)}: pip install {install} (or the gpu-tools extra: "
                       'pip install -e ".[cuda,gpu-tools]")')
    return paths, ""


# -------------------------------------------------------------------------------- H100
def _round_up(x, unit):
    return -(-x // unit) * unit


def occupancy(registers, threads, dynamic_shared=0, static_shared=0, gpu=H100):
    """Blocks per SM of an H100 and the limits by resource (cuda_occupancy.h, simplified)."""
    warps = -(-threads // 32)
    limits = {"threads": min(gpu["max_blocks_sm"], gpu["max_warps_sm"] // warps)}
    per_warp = _round_up(max(registers, 1) * 32, gpu["reg_alloc_unit"])
    warps_per_subpartition = (gpu["regs_sm"] // gpu["subpartitions"]) // per_warp
    limits["registers"] = (warps_per_subpartition * gpu["subpartitions"]) // warps
    # sm_90 cubins of kernels that use shared memory report the 1 KiB system reservation as
    # static SHARED already (an sm_80 build of the same kernel shows 0): count it once
    reserved = max(0, gpu["smem_block_reserved"] - static_shared)
    shared = _round_up(static_shared + dynamic_shared + reserved, gpu["smem_alloc_unit"])
    limits["shared"] = gpu["smem_sm"] // shared
    if static_shared + dynamic_shared > gpu["smem_block_default"]:
        limits["shared"] = 0       # would need the opt-in attribute
    return min(limits.values()), limits


def registers_for(blocks, threads, gpu=H100):
    """The most registers per thread that still let ``blocks`` blocks of ``threads`` share an SM."""
    fits = [r for r in range(1, gpu["max_regs_thread"] + 1)
            if occupancy(r, threads, gpu=gpu)[1]["registers"] >= blocks]
    return max(fits, default=0)


# ----------------------------------------------------------------------------- building
def fake_device():
    """Answer numba-cuda's device queries as an H100 would (compute capability 9.0)."""
    import numba.cuda.dispatcher as dispatcher
    from numba.cuda.cudadrv import devices

    dev = types.SimpleNamespace(compute_capability=CC[:2], id=0, MULTIPROCESSOR_COUNT=H100["sms"])
    dispatcher.get_current_device = lambda: dev
    devices.get_context = lambda devnum=None: types.SimpleNamespace(device=dev)


def build(kern, signature):
    """``(ptx, cubin, cooperative)`` of one kernel as numba-cuda builds it for an H100."""
    import numba.cuda.dispatcher as dispatcher

    compiled = dispatcher._Kernel(kern.py_func, signature, **kern.targetoptions)
    library = compiled._codelibrary
    return library.get_asm_str(cc=CC), bytes(library.get_cubin(cc=CC).code), bool(compiled.cooperative)


RESOURCES = re.compile(r"Function (\S+):\s*\n\s*REG:(\d+) STACK:(\d+) SHARED:(\d+) LOCAL:(\d+)")
PREFIX = "_ZN6nblstm"    # the mangled names of nblstm's kernels


def resource_usage(tools, cubin):
    out = subprocess.run([tools["cuobjdump"], "--dump-resource-usage", str(cubin)],
                         capture_output=True, text=True, check=True).stdout
    for m in RESOURCES.finditer(out):
        if m.group(1).startswith(PREFIX):
            return dict(registers=int(m.group(2)), stack_bytes=int(m.group(3)),
                        static_shared_bytes=int(m.group(4)), local_bytes=int(m.group(5)))
    raise RuntimeError(f"no {PREFIX} kernel in cuobjdump's output:\n{out[-2000:]}")


def spills(tools, ptx, tmp):
    """Spill stores plus loads, in bytes, from ``ptxas -v`` on the kernel's PTX."""
    release = _release(tools["ptxas"])
    # NVVM may be a newer minor than ptxas: the kernels use nothing newer than either
    ptx = re.sub(r"^\.version \d+\.\d+", f".version {release[0] - 4}.{release[1]}", ptx, count=1,
                 flags=re.M)
    source = Path(tmp) / "k.ptx"
    source.write_text(ptx)
    r = subprocess.run([tools["ptxas"], f"-arch=sm_{CC[0]}{CC[1]}{CC[2]}", "-c", "-v", str(source),
                        "-o", str(Path(tmp) / "k.o")], capture_output=True, text=True)
    m = re.search(rf"Compiling entry function '{PREFIX}[^']*'.*?(\d+) bytes stack frame, "
                  r"(\d+) bytes spill stores, (\d+) bytes spill loads", r.stderr, re.S)
    if r.returncode or not m:
        raise RuntimeError(f"ptxas -v failed or said no spills:\n{r.stderr[-2000:]}")
    return int(m.group(2)) + int(m.group(3))


# ---------------------------------------------------------------------------- the SASS
LINE = re.compile(r"/\*[0-9a-f]{4,}\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_.]*)([^;]*);")
LABEL = re.compile(r"^(\.L_x_\d+):")
SUBROUTINE = re.compile(r"^\$__internal\S*:")   # the kernel's own copies of runtime routines
TARGET = re.compile(r"`\(([^)]+)\)")


def kernel_code(sass):
    """The kernel's own instructions ``(op, operands, predicated)`` and labels -> index.

    The kernel's text section, without the runtime routines appended to it
    (``$__internal_*``: division and the like, which are reported as calls).
    """
    m = re.search(rf"\t\.section\s+\.text\.{PREFIX}.*?(?=\n//-+ \.|\Z)", sass, re.S)
    code, labels = [], {}
    for line in (m.group(0) if m else "").splitlines():
        if SUBROUTINE.match(line):
            break
        label = LABEL.match(line)
        if label:
            labels[label.group(1)] = len(code)
            continue
        ins = LINE.search(line)
        if ins and ins.group(2) != "NOP":
            code.append((ins.group(2), ins.group(3), bool(ins.group(1))))
    return code, labels


def routine(name):
    """A called routine's name without the per-kernel prefix of an inlined copy."""
    return re.sub(r"^\$__internal_\d+_\$", "", name)


def _successors(code, labels):
    succ = []
    for i, (op, operands, predicated) in enumerate(code):
        nxt = [i + 1] if i + 1 < len(code) else []
        if op.startswith("BRA"):
            target = TARGET.search(operands)
            jump = [labels[target.group(1)]] if target and target.group(1) in labels else []
            succ.append(jump + (nxt if predicated else []))
        elif op.startswith(("EXIT", "RET")):
            succ.append(nxt if predicated else [])
        else:
            succ.append(nxt)
    return succ


def on_cycles(code, labels):
    """Indices of the instructions, reachable from the entry, that lie on a cycle (in a loop)."""
    succ = _successors(code, labels)
    index, low, on_stack, stack, cyclic, counter = {}, {}, set(), [], set(), 0
    for root in ([0] if code else []):
        work = [(root, 0)]
        while work:          # Tarjan's strongly connected components, without recursion
            v, k = work.pop()
            if k == 0:
                index[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on_stack.add(v)
            if k < len(succ[v]):
                work.append((v, k + 1))
                w = succ[v][k]
                if w not in index:
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            if work and work[-1][0] != v:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
            if low[v] == index[v]:
                component = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    component.append(w)
                    if w == v:
                        break
                if len(component) > 1 or v in succ[v]:
                    cyclic.update(component)
    return cyclic


def innermost_fma_loop(code, labels):
    """The innermost loop that does the most FMAs: size, loads by kind, instructions per FMA.

    A loop is a branch back to an earlier label; innermost, one that holds no other;
    its body, the instructions from the label to the branch. None if no innermost loop
    holds an FMA (FFMA or DFMA).
    """
    loops = []
    for i, (op, operands, _) in enumerate(code):
        target = TARGET.search(operands) if op.startswith("BRA") else None
        if target and target.group(1) in labels and labels[target.group(1)] < i:
            loops.append((labels[target.group(1)], i))
    innermost = [(a, b) for a, b in loops
                 if not any((a, b) != (c, d) and a <= c and d <= b for c, d in loops)]
    best = None
    for a, b in innermost:
        ops = [op for op, _, _ in code[a:b + 1]]
        fma = sum(op.startswith(("FFMA", "DFMA")) for op in ops)
        if fma and (best is None or (fma, -len(ops)) > (best["fma"], -best["instructions"])):
            best = dict(instructions=len(ops), fma=fma,
                        ld_global=sum(op.startswith("LDG") for op in ops),
                        ld_generic=sum(op.split(".")[0] == "LD" for op in ops),
                        ld_shared=sum(op.startswith("LDS") for op in ops),
                        integer=sum(op.startswith(("IMAD", "IADD", "LOP", "SHF", "LEA", "SEL", "ISETP"))
                                    for op in ops),
                        per_fma=round(len(ops) / fma, 1))
    return best


def sass_report(code, labels):
    calls, loop_calls = {}, {}
    cyclic = on_cycles(code, labels)
    for i, (op, operands, _) in enumerate(code):
        target = TARGET.search(operands) if op.startswith("CALL") else None
        if target:
            name = routine(target.group(1))
            calls[name] = calls.get(name, 0) + 1
            if i in cyclic:
                loop_calls[name] = loop_calls.get(name, 0) + 1
    loop = innermost_fma_loop(code, labels)
    return dict(sass_instructions=len(code), calls=dict(sorted(calls.items())),
                loop_calls=dict(sorted(loop_calls.items())), loop=loop,
                loop_instructions_per_fma=loop["per_fma"] if loop else None)


# ---------------------------------------------------------------------------- the plans
def bench_shapes():
    """(batches, hidden sizes) of bench/gpu_compare.py, read from its source (it imports torch)."""
    tree = ast.parse((ROOT / "bench" / "gpu_compare.py").read_text())
    values = {t.id: ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
              for t in node.targets if isinstance(t, ast.Name) and t.id in ("BATCHES", "HIDDEN")}
    return values["BATCHES"], values["HIDDEN"]


#: the cooperative kernels: partial sums per thread (the ``accumulators`` of plan.plan)
ACCUMULATORS = {"forward": 4, "backward": 1}


def plans(kern, name, record, itemsize):
    """The plan ``nblstm.cuda.plan`` picks on an H100 at every bench shape, and whether it is resident."""
    from nblstm.cuda import plan as plan_module

    def cooperative_limit(k, args, threads, shared_bytes):
        return occupancy(record["registers"], threads, shared_bytes, record["static_shared_bytes"])[0] * H100["sms"]

    saved = plan_module._sm_count, plan_module.max_cooperative_blocks
    plan_module._sm_count = lambda: H100["sms"]
    plan_module.max_cooperative_blocks = cooperative_limit
    rows = []
    try:
        batches, hidden = bench_shapes()
        for H in hidden:
            for B in batches:
                p = plan_module.plan(H, B, itemsize, ACCUMULATORS[name.split("_")[0]], kern, lambda q: ())
                limit = cooperative_limit(kern, (), p.threads, p.shared_bytes)
                rows.append(dict(H=H, B=B, units=p.units, blocks=p.blocks, threads=p.threads,
                                 lanes=p.lanes, shared_bytes=p.shared_bytes,
                                 w_hh="shared" if p.w_shared else "global",
                                 cooperative_blocks=limit, persistent=bool(p.persistent)))
    finally:
        plan_module._sm_count, plan_module.max_cooperative_blocks = saved
    return rows


def launch_threads(name):
    """Threads per block that the host code launches this kernel with (nblstm.cuda.config)."""
    from nblstm.cuda import config, matmul

    if name.startswith("matmul"):
        return (config.tile_m // matmul.RM) * (config.tile_n // matmul.RN)
    if name.startswith(("forward", "backward")):
        return config.rnn_threads
    return config.elementwise_threads


# --------------------------------------------------------------------------------- main
def report(tools, dtypes, wanted=(), out=None):
    """One record per kernel and dtype (see the module's docstring)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "cuda")]
    fake_device()
    import _ptx

    records = []
    print(HEADER, flush=True)
    for dtype in dtypes:
        for name, kern, signature in _ptx.kernel_signatures(dtype):
            if wanted and name not in wanted:
                continue
            with tempfile.TemporaryDirectory() as tmp:
                ptx, cubin, cooperative = build(kern, signature)
                where = Path(out or tmp)
                (where / f"{name}.{dtype}.cubin").write_bytes(cubin)
                sass = subprocess.run([tools["nvdisasm"], str(where / f"{name}.{dtype}.cubin")],
                                      capture_output=True, text=True, check=True).stdout
                if out:
                    (where / f"{name}.{dtype}.ptx").write_text(ptx)
                    (where / f"{name}.{dtype}.sass").write_text(sass)
                record = dict(kernel=name, dtype=dtype, cooperative=cooperative,
                              threads=launch_threads(name))
                record.update(resource_usage(tools, where / f"{name}.{dtype}.cubin"))
                record["spill_bytes"] = spills(tools, ptx, tmp)
                record.update(sass_report(*kernel_code(sass)))
            record["registers_for_two_blocks"] = registers_for(2, record["threads"])
            record["blocks_per_sm_by_registers"] = occupancy(record["registers"],
                                                             record["threads"])[1]["registers"]
            record["plans"] = (plans(kern, name, record, 4 if dtype == "float32" else 8)
                               if cooperative else [])
            records.append(record)
            _print(record)
    return records


HEADER = (f"{'kernel':27s} {'dtype':7s} thr  REG /2blk spill local loop:instr/FMA  calls in loops | "
          "all calls")


def _print(r):
    loop = r["loop"]
    density = f"{loop['instructions']:4d}/{loop['fma']:<3d}{loop['per_fma']:5.1f}" if loop else f"{'-':>13s}"
    short = lambda calls: ", ".join(f"{k.replace('__cuda_', '')} x{v}" for k, v in calls.items()) or "-"  # noqa: E731
    print(f"{r['kernel']:27s} {r['dtype']:7s} {r['threads']:3d} {r['registers']:4d} {r['registers_for_two_blocks']:5d} "
          f"{r['spill_bytes']:5d} {r['local_bytes']:5d} {density}  {short(r['loop_calls'])} | {short(r['calls'])}",
          flush=True)


def _print_plans(records):
    rows = [(r["kernel"], r["dtype"], p) for r in records for p in r["plans"]]
    if not rows:
        return
    print("\nPlans on an H100 at bench/gpu_compare.py's shapes (U units per block, S lanes, shared bytes):")
    print(f"{'kernel':27s} {'dtype':7s} {'H':>5s} {'B':>3s} {'U':>3s} {'blocks':>6s} {'thr':>4s} {'S':>3s} "
          f"{'shared':>6s} {'W_hh':6s} {'resident':>8s} path")
    for kernel, dtype, p in rows:
        print(f"{kernel:27s} {dtype:7s} {p['H']:5d} {p['B']:3d} {p['units']:3d} {p['blocks']:6d} {p['threads']:4d} "
              f"{p['lanes']:3d} {p['shared_bytes']:6d} {p['w_hh']:6s} {p['cooperative_blocks']:8d} "
              f"{'persistent' if p['persistent'] else 'PER-STEP'}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", help="write the records (a JSON list) to this file")
    ap.add_argument("--out", help="keep each kernel's PTX, cubin and SASS in this folder")
    ap.add_argument("--dtypes", default="float32,float64")
    ap.add_argument("--kernels", default="", help="comma-separated names of tests/cuda/_ptx.py (default: all)")
    args = ap.parse_args(argv)
    tools, reason = find_tools()
    if reason:
        print(f"gpu_resources: cannot build the cubins here: {reason}", flush=True)
        return MISSING
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
    records = report(tools, args.dtypes.split(","), set(filter(None, args.kernels.split(","))), args.out)
    _print_plans(records)
    if args.json:
        Path(args.json).write_text(json.dumps(records, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    import os

    # the real compiler, also where the caller runs the simulator (numba reads this at import)
    os.environ["NUMBA_ENABLE_CUDASIM"] = "0"
    sys.exit(main())
