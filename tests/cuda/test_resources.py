"""Gates on the machine code of every CUDA kernel, built for an H100 without a GPU (issue 28).

bench/gpu_resources.py builds each kernel of ``_ptx.kernel_signatures``, both dtypes, to an
sm_90a cubin as numba-cuda does on an H100 (NVVM, nvJitLink, libcudadevrt), in a process
without the simulator, and reads it with ptxas, cuobjdump and nvdisasm. On its records:

- no kernel spills or uses local memory;
- registers: two blocks of the kernel's launch width fit on an SM;
- the recurrence's innermost loop: at most 3 instructions per FMA, with its operands in
  registers or shared memory (no global or generic loads in it);
- no 64-bit integer division and no float-division slow path called in any loop;
- at every shape of bench/gpu_compare.py (float32), the plan of each cooperative kernel is
  persistent on an H100: its grid is resident as one cooperative launch.

A gate today's kernels miss is a strict xfail for that kernel and dtype, so that a rewrite
that meets it turns it into a failure (and the mark comes off), never a silent pass.
Skipped, saying what is missing, without the CUDA binary utilities of numba-cuda's CUDA
major version: ``pip install -e ".[cuda,gpu-tools]"``. The build takes about a minute.
"""
import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import pytest

import _ptx

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_resources.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_resources", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


gpu_resources = _load_script()

NAMES = [name for name, _, _ in _ptx.kernel_signatures("float32")]
DTYPES = ("float32", "float64")
RECURRENCE = [name for name in NAMES if name.startswith(("forward", "backward"))]

MAX_INSTRUCTIONS_PER_FMA = 3
BLOCKS_PER_SM = 2

#: what today's kernels miss (bench/gpu_resources.py at the commit that added this file)
TODAY = {
    "density": ({n for n in RECURRENCE if n.endswith("_global_w")},
                "5.4 to 10.5 instructions per FMA: the *_global_w kernels read W_hh from global "
                "memory in the loop (64-bit address arithmetic per element, no vector loads)"),
    "division": ({n for n in NAMES if n not in ("fill", "add_flat", "copy1", "nonfinite1")},
                 "the recurrences call the IEEE float-division slow path in the time loop "
                 "(sigmoid and tanh divide, as on the CPU: results must stay bitwise the same); "
                 "the other kernels' int64 indices call __cuda_sm20_div_s64 / rem_s64 in loops"),
    "registers": (set(), ""),
}
TODAY_DTYPES = {"registers": {"float64"}}


def _cases(gate, names):
    failing, reason = TODAY[gate]
    return [pytest.param(name, dtype, id=f"{name}-{dtype}",
                         marks=[pytest.mark.xfail(strict=True, reason=reason)]
                         if name in failing and dtype in TODAY_DTYPES.get(gate, DTYPES) else [])
            for name in names for dtype in DTYPES]


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_resources") / "records.json"
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="0")
    run = subprocess.run([sys.executable, str(SCRIPT), "--json", str(out)], capture_output=True,
                         text=True, env=env, timeout=1200)
    if run.returncode == gpu_resources.MISSING:
        pytest.skip(run.stdout.strip().splitlines()[-1])
    assert run.returncode == 0, f"bench/gpu_resources.py failed:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    return {(r["kernel"], r["dtype"]): r for r in json.loads(out.read_text())}


def test_the_gates_cover_every_kernel():
    """Every kernel compiled through nblstm.cuda._jit has a signature in _ptx, so a gate below."""
    from nblstm.cuda import _jit

    def is_kernel(k):
        return not (getattr(k, "_device", False) or getattr(k, "targetoptions", {}).get("device", False))

    compiled = {k.py_func for k in _jit.kernels() if is_kernel(k)}
    listed = {kern.py_func for _, kern, _ in _ptx.kernel_signatures("float32")}
    assert sorted(f.__name__ for f in compiled - listed) == []
    for failing, _ in TODAY.values():
        assert failing <= set(NAMES)


def test_the_reading_of_sass_finds_loops_and_the_calls_in_them():
    """On hand-written SASS: cycles through cold blocks count, runtime routines do not."""
    sass = "\n".join([
        "\t.section\t.text._ZN6nblstm4test,\"ax\",@progbits",
        "        /*0000*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;",
        ".L_x_0:",
        "        /*0010*/                   CALL.REL.NOINC `($__internal_0_$__cuda_sm20_div_s64) ;",
        ".L_x_1:",
        "        /*0020*/                   LDS R2, [R4] ;",
        "        /*0030*/                   FFMA R1, R2, R3, R1 ;",
        "        /*0040*/                   FFMA R5, R2, R3, R5 ;",
        "        /*0050*/               @P1 BRA `(.L_x_9) ;",
        ".L_x_2:",
        "        /*0060*/               @P0 BRA `(.L_x_1) ;",
        "        /*0070*/               @P2 BRA `(.L_x_0) ;",
        "        /*0080*/                   EXIT ;",
        ".L_x_9:",
        "        /*0090*/                   CALL.REL.NOINC `($__internal_1_$__cuda_sm3x_div_rn_noftz_f32_slowpath) ;",
        "        /*00a0*/                   BRA `(.L_x_2) ;",
        ".L_x_3:",
        "        /*00b0*/                   BRA `(.L_x_3) ;",
        "$__internal_0_$__cuda_sm20_div_s64:",
        ".L_x_4:",
        "        /*00c0*/                   CALL.REL.NOINC `(somewhere) ;",
        "        /*00d0*/               @P0 BRA `(.L_x_4) ;",
        "        /*00e0*/                   RET.REL.NODEC R16 `(_ZN6nblstm4test) ;",
    ])
    report = gpu_resources.sass_report(*gpu_resources.kernel_code(sass))
    assert report["calls"] == {"__cuda_sm20_div_s64": 2, "__cuda_sm3x_div_rn_noftz_f32_slowpath": 1}
    # the first division runs once; the second is in the outer loop; the slow path is reached
    # from the inner loop and branches back into it, so it is in a loop too
    assert report["loop_calls"] == {"__cuda_sm20_div_s64": 1, "__cuda_sm3x_div_rn_noftz_f32_slowpath": 1}
    assert report["loop"] == dict(instructions=5, fma=2, ld_global=0, ld_generic=0, ld_shared=1,
                                  integer=0, per_fma=2.5)
    assert all(gpu_resources.DIVISION.search(name) for name in report["calls"])
    assert not gpu_resources.DIVISION.search("cudaCGSynchronize")


def test_the_occupancy_model():
    """128 registers: two blocks of 256 threads per SM, 129: one; no block beyond 48 KiB of shared memory."""
    assert gpu_resources.registers_for(BLOCKS_PER_SM, 256) == 128
    assert gpu_resources.registers_for(BLOCKS_PER_SM, 1024) == 32
    assert gpu_resources.occupancy(129, 256)[0] == 1
    assert gpu_resources.occupancy(32, 256, dynamic_shared=48 * 1024, static_shared=1024)[0] == 0
    assert gpu_resources.occupancy(32, 256, dynamic_shared=40 * 1024, static_shared=1024)[0] == 5


@pytest.mark.slow
def test_no_kernel_spills_or_uses_local_memory(records):
    assert len(records) == len(NAMES) * len(DTYPES)
    spilled = {key: (r["spill_bytes"], r["local_bytes"]) for key, r in records.items()
               if r["spill_bytes"] or r["local_bytes"]}
    assert spilled == {}


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", _cases("registers", NAMES))
def test_two_blocks_per_sm_fit_the_registers(records, name, dtype):
    r = records[name, dtype]
    assert r["registers"] <= gpu_resources.registers_for(BLOCKS_PER_SM, r["threads"]), (
        f"{r['registers']} registers at {r['threads']} threads: "
        f"{r['blocks_per_sm_by_registers']} block(s) per SM")


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", _cases("density", RECURRENCE))
def test_the_recurrence_loop_is_dense(records, name, dtype):
    loop = records[name, dtype]["loop"]
    assert loop is not None, "no loop with an FMA"
    assert loop["per_fma"] <= MAX_INSTRUCTIONS_PER_FMA, loop
    assert loop["ld_global"] == loop["ld_generic"] == 0, loop


@pytest.mark.slow
@pytest.mark.parametrize("name, dtype", _cases("division", NAMES))
def test_no_division_routine_in_a_loop(records, name, dtype):
    calls = records[name, dtype]["loop_calls"]
    assert {c: n for c, n in calls.items() if gpu_resources.DIVISION.search(c)} == {}


@pytest.mark.slow
def test_every_bench_shape_is_one_resident_cooperative_grid(records):
    plans = {(name, p["H"], p["B"]): p for (name, dtype), r in records.items() if dtype == "float32"
             for p in r["plans"]}
    batches, hidden = gpu_resources.bench_shapes()
    cooperative = {name for name, _, _ in plans}
    assert {"forward", "backward"} <= {name.split("_")[0] for name in cooperative}
    assert len(plans) == len(cooperative) * len(batches) * len(hidden)
    per_step = {key: (p["blocks"], p["cooperative_blocks"]) for key, p in plans.items() if not p["persistent"]}
    assert per_step == {}
    assert all(p["blocks"] <= p["cooperative_blocks"] for p in plans.values())
