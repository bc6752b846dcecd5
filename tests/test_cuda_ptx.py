"""The real CUDA kernels compiled to sm_90 PTX, every activation x dtype, without a GPU.

The simulator runs the kernel body as Python, so it cannot show what the GPU
compiler does with it; this does: NVVM (from numba-cuda[cu13]) compiles the
exact kernels backend="cuda" launches, and the PTX is checked for what
decides parity with the CPU kernel and torch.  Compilation needs numba.cuda
*without* the simulator, so it runs in one subprocess (about 10 s for all 36).
"""
import json
import os
import subprocess
import sys

import pytest


from .conftest import VARIANTS

pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")

#: The float32 kernels allowed to contain float64 arithmetic: none (the vector
#: math is float32 throughout; it once evaluated float32 exp/expm1/log1p/tanh
#: in float64).
F64_IN_FLOAT32 = set()

#: Explicit fma() calls in gradkern.activations.scalar, where PyTorch's build fuses.
EXPLICIT_FMA = {label for label, act in VARIANTS.items() if act.spec.explicit_fma}

#: Activations with no transcendental and no explicit fma: any fma.rn in their
#: PTX would be a contraction of a separate multiply and add.
NO_FMA = {label for label, act in VARIANTS.items()
          if not act.spec.transcendental and not act.spec.explicit_fma}


@pytest.fixture(scope="module")
def report():
    code = ("import json; from gradkern.ptx import nvvm_available, ptx_report\n"
            "print(json.dumps(ptx_report() if nvvm_available() else None))")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.splitlines()[-1])
    if data is None:
        pytest.skip("NVVM not available (install numba-cuda[cu13])")
    return data


def test_every_kernel_compiles(report):
    assert set(report) == {f"{n}/{dt}" for n in VARIANTS for dt in ("float32", "float64")}
    for key, facts in report.items():
        assert facts["instructions"] > 100, key
        assert facts["calls"] == 0, f"{key}: device functions should be inlined"


def test_no_fma_contraction(report):
    """numba-cuda leaves NVVM's -fma=1 on; kernels_cuda turns it off.  Without
    that, ReLU's float32 kernel had 49 fma.rn from ``w*a + 0`` alone."""
    for key, facts in report.items():
        name = key.split("/")[0]
        if name in NO_FMA:
            assert facts["fma"] == 0, f"{key}: {facts['fma']} mul+add pairs contracted"
        if name in EXPLICIT_FMA:
            assert facts["fma_rn"] >= 1, key
        assert facts["fma_contracted"] == 0, key  # only round-to-nearest fma


def test_float32_kernels_stay_float32(report):
    with_f64 = {k.split("/")[0] for k, f in report.items() if k.endswith("float32") and f["f64"]}
    assert with_f64 <= F64_IN_FLOAT32, f"unexpected float64 in {with_f64 - F64_IN_FLOAT32}"
    # positive control: the float64 kernels do show f64 (so the check can see it)
    assert all(f["f64"] > 0 for k, f in report.items() if k.startswith("Tanh/float64"))


def test_no_flush_to_zero_outside_libdevice(report):
    """fastmath stays off: no .ftz/.approx except libdevice's refined first guesses,
    which appear only in kernels calling exp/tanh/log1p."""
    for key, facts in report.items():
        if facts["approx_or_ftz"]:
            assert key.split("/")[0] in F64_IN_FLOAT32, key


#: sweep kernels compiled below: piecewise, stochastic, smooth, both dtypes
SWEEP_CASES = [("ReLU", "float32"), ("RReLU", "float32"), ("Tanh", "float32"),
               ("LogSigmoid", "float32"), ("Softplus", "float64"), ("Hardshrink", "float64")]


def test_sweep_kernels_compile_for_the_gpu():
    """The fused sweep kernel (stats_cuda_kernel) is tested bit-identical to
    the CPU on the simulator, which runs its body as Python; here NVVM takes
    the real kernel: the lane-pair walk, its local arrays and the inlined draw,
    chain and accumulation compile with no call left, no contracted or
    approximate arithmetic (``accumulate`` and the draws use explicit fma only)."""
    code = ("import json, gradkern as gk\n"
            "from gradkern.ptx import compile_stats_ptx, nvvm_available, ptx_facts\n"
            f"cases = {SWEEP_CASES!r}\n"
            "print(json.dumps({f'{n}/{d}': ptx_facts(compile_stats_ptx(gk.activation(n), d))\n"
            "                  for n, d in cases} if nvvm_available() else None))")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    data = json.loads(out.stdout.splitlines()[-1])
    if data is None:
        pytest.skip("NVVM not available (install numba-cuda[cu13])")
    assert set(data) == {f"{n}/{d}" for n, d in SWEEP_CASES}
    for key, facts in data.items():
        assert facts["instructions"] > 1000, key
        assert facts["calls"] == 0, f"{key}: device functions should be inlined"
        assert facts["fma_contracted"] == 0 and facts["approx_or_ftz"] == 0, key
        assert facts["f64"] > 0, key  # the float64 accumulators
