"""gradkern.jit: the scalar math called from a user's own compiled code.

Written as a user would: an ``@numba.njit`` loop and a ``@cuda.jit`` kernel
(numba-cuda's simulator without a GPU) of their own compute a depth-3 chain
from ``gradkern.jit``'s functions and ``act.kernel_params(dtype)``, and must
give ``chain_grad``'s bits, NaN, infinities and signed zeros included.  The
module is read from the registry, and the examples of docs/jit.md run.
"""
import dataclasses
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

import gradkern as gk
from gradkern import jit as gkjit
from gradkern.activations import table

from .conftest import CUDASIM, REAL_GPU

try:  # a module global, as a user imports it: the simulator swaps the kernel's `cuda`
    from numba import cuda
except ImportError:  # numba-cuda (the `cuda` extra) not installed: those tests skip
    cuda = None

needs_cuda = pytest.mark.skipif(cuda is None or not (CUDASIM or REAL_GPU),
                                reason="no numba-cuda, or no GPU and no simulator")

ROOT = Path(__file__).resolve().parent.parent
W = [0.9, -1.7, 1.3]

#: smooth and piecewise-linear, parametrised ones (ELU(alpha=0.3) and others),
#: one that reads its output (Tanh), GELU's second pair, RReLU's per-sample slot
CASES = {
    "Tanh": gk.activation("Tanh"),
    "ELU(alpha=0.3)": gk.activation("ELU", alpha=0.3),
    "LeakyReLU(0.2)": gk.activation("LeakyReLU", negative_slope=0.2),
    "Softplus(beta=2, threshold=5)": gk.activation("Softplus", beta=2.0, threshold=5.0),
    "GELU(tanh)": gk.activation("GELU", approximate="tanh"),
    "Hardswish": gk.activation("Hardswish"),
    "SELU": gk.activation("SELU"),
    "RReLU(training)": gk.activation("RReLU"),
}


def _inputs(dtype, n=256):
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 3.0, -3.0, 30.0, -30.0]
    x = np.concatenate([special, rng.normal(0, 3, n - len(special))])
    return x.astype(dtype)


def _noise(act, n, dtype):
    """RReLU training's slopes (None for the others), as chain_grad takes them."""
    if not act.stochastic:
        return None
    lower, upper = act.noise_bounds()
    return gk.rrelu_slopes(n, len(W), 3, lower, upper, dtype=dtype)


def assert_same_bits(got, want):
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert np.array_equal(got.view(f"u{got.itemsize}"), want.view(f"u{want.itemsize}")), (
        np.flatnonzero(got.view(f"u{got.itemsize}") != want.view(f"u{want.itemsize}"))[:5])


# -- a user's own njit loop -------------------------------------------------------------

def make_user_chain(forward, backward, noisy):
    """What a user writes: the chain rule over layers, gradkern's functions
    for each activation, products through gkjit.linear, chain_grad's NaN rule."""
    linear = gkjit.linear

    @numba.njit
    def chain(x, w, p, noise, y, gw, gx):
        n_layers = w.shape[0]
        a = np.empty(n_layers + 1, x.dtype)
        for i in range(x.shape[0]):
            a[0] = x[i]
            for k in range(n_layers):
                pk = (noise[i, k], p[1], p[2], p[3]) if noisy else p
                a[k + 1] = forward(linear(w[k], a[k]), pk)
            y[i] = a[n_layers]
            g = x.dtype.type(1.0)
            for k in range(n_layers - 1, -1, -1):
                pk = (noise[i, k], p[1], p[2], p[3]) if noisy else p
                z = linear(w[k], a[k])
                gz = backward(g, z, a[k + 1], pk)
                if z != z:
                    gz = z  # chain_grad: a NaN pre-activation gives NaN gradients
                gw[i, k] = linear(gz, a[k])
                g = linear(gz, w[k])
            gx[i] = g

    return chain


@pytest.mark.parametrize("label", CASES)
def test_user_njit_loop_matches_chain_grad_bit_for_bit(label, dtype):
    act = CASES[label]
    x, w = _inputs(dtype), np.asarray(W, dtype)
    noise = _noise(act, x.shape[0], dtype)
    forward, backward = gkjit.functions(act)
    chain = make_user_chain(forward, backward, noise is not None)
    y, gw, gx = np.empty_like(x), np.empty((x.shape[0], len(W)), dtype), np.empty_like(x)
    chain(x, w, act.kernel_params(dtype), np.zeros((1, 1), dtype) if noise is None else noise,
          y, gw, gx)
    ref = gk.chain_grad(x, act, W, noise=noise)
    for got, want in zip((y, gw, gx), ref):
        assert_same_bits(got, want)


# -- a user's own cuda.jit kernel ---------------------------------------------------------

def make_user_kernel(forward, backward):
    """The same chain as a user's CUDA kernel, one thread per sample; a_k kept
    in the sample's row of gw.  ``T(...)`` around each call: on numba-cuda's
    simulator a compiled function returns a float32 as a Python float (the
    next call would then run in float64); on a GPU the casts cost nothing."""
    linear = gkjit.linear

    @cuda.jit
    def chain_kernel(x, w, p, y, gw, gx):
        i = cuda.grid(1)
        if i >= x.shape[0]:
            return
        T = type(x[i])
        a = x[i]
        for k in range(w.shape[0]):
            gw[i, k] = a
            a = T(forward(T(linear(w[k], a)), p))
        y[i] = a
        g = T(1.0)
        for k in range(w.shape[0] - 1, -1, -1):
            a_prev = gw[i, k]
            z = T(linear(w[k], a_prev))
            gz = T(backward(g, z, a, p))
            if z != z:
                gz = z
            gw[i, k] = T(linear(gz, a_prev))
            g = T(linear(gz, w[k]))
            a = a_prev
        gx[i] = g

    return chain_kernel


@needs_cuda
@pytest.mark.parametrize("label", ["Tanh", "ELU(alpha=0.3)", "LeakyReLU(0.2)", "GELU(tanh)"])
def test_user_cuda_kernel_matches_chain_grad_bit_for_bit(label, dtype):
    act = CASES[label]
    x, w = _inputs(dtype, n=64), np.asarray(W, dtype)
    kernel = make_user_kernel(*gkjit.functions(act))
    d_y, d_gw, d_gx = (cuda.device_array(s, dtype) for s in ((64,), (64, 3), (64,)))
    with gkjit.without_fma_contraction():  # compiled at the first launch: inside
        kernel[2, 32](cuda.to_device(x), cuda.to_device(w), act.kernel_params(dtype),
                      d_y, d_gw, d_gx)
    ref = gk.chain_grad(x, act, W, backend="cuda")
    for got, want in zip((d_y, d_gw, d_gx), ref):
        assert_same_bits(got.copy_to_host(), want)  # NumPy x: NumPy results


#: compiles the user's LeakyReLU kernel to sm_90 PTX without a GPU (NVVM only)
#: and counts its fma instructions, compiled as is and inside
#: without_fma_contraction(); LeakyReLU has no fma of its own
PTX_SCRIPT = """
import json
from numba import types
from gradkern import jit as gkjit
from gradkern.ptx import _compute_capability, nvvm_available, ptx_facts
from tests.test_jit import make_user_kernel

def fmas(off):
    kernel = make_user_kernel(*gkjit.LeakyReLU)
    t = types.float32
    sig = (t[:], t[:], types.UniTuple(t, 4), t[:], t[:, :], t[:])
    with _compute_capability((9, 0)):
        if off:
            with gkjit.without_fma_contraction():
                kernel.compile(sig)
        else:
            kernel.compile(sig)
    return ptx_facts(kernel.overloads[sig]._codelibrary.get_asm_str(cc=(9, 0, "a")))["fma"]

print(json.dumps({"default": fmas(False), "off": fmas(True)} if nvvm_available() else None))
"""


@pytest.mark.skipif(cuda is None, reason="numba-cuda (the `cuda` extra) not installed")
def test_without_fma_contraction_reaches_a_users_kernel():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", PTX_SCRIPT], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    fmas = json.loads(out.stdout.strip().splitlines()[-1])
    if fmas is None:
        pytest.skip("NVVM not available")
    # NVVM's default fuses linear's w*a + 0 (keeping a -0.0 torch's matmul drops)
    assert fmas["default"] > 0 and fmas["off"] == 0, fmas


# -- the module --------------------------------------------------------------------------

def test_every_activation_is_an_attribute_with_the_kernels_functions():
    for name in gk.ACTIVATIONS:
        fns = getattr(gkjit, name)
        assert isinstance(fns, gkjit.Functions) and name in dir(gkjit)
        assert tuple(fns) == gk.activations.default(name).ops()
        assert all(isinstance(f, numba.core.registry.CPUDispatcher) for f in fns)
    assert gkjit.forward("tanh") is gkjit.Tanh.forward
    assert gkjit.backward(gk.activation("GELU", approximate="tanh")) is not gkjit.GELU.backward
    with pytest.raises(AttributeError, match="activations: ELU"):
        gkjit.NoSuchActivation  # noqa: B018


def test_an_activation_added_to_the_registry_appears(monkeypatch):
    spec = dataclasses.replace(table.ACTIVATIONS["Tanh"], name="MyTanh")
    monkeypatch.setitem(table.ACTIVATIONS, "MyTanh", spec)
    monkeypatch.setitem(table._BY_LOWER, "mytanh", "MyTanh")
    assert gkjit.MyTanh == gkjit.Tanh and "MyTanh" in dir(gkjit)


def test_the_functions_take_no_eager_signature():
    # an eager signature would keep numba-cuda from compiling them for the GPU,
    # and float32 code from getting float32 functions: both dtypes compile
    # from the same objects, each in its own type
    fwd = gkjit.ELU.forward
    p32, p64 = (gk.activation("ELU", alpha=0.3).kernel_params(d) for d in ("float32", "float64"))
    y32, y64 = fwd(np.float32(-1.0), p32), fwd(-1.0, p64)
    assert np.float32(y32) == pytest.approx(0.3 * np.expm1(-1.0), rel=1e-6)
    assert y64 == pytest.approx(0.3 * np.expm1(-1.0), rel=1e-15)
    assert y32 != y64  # float32 arithmetic, not float64 rounded


@pytest.mark.parametrize("bad", ["int32", np.complex64, None, "nonsense", np.float16])
def test_kernel_params_takes_the_kernel_dtypes_only(bad):
    with pytest.raises(TypeError, match="dtype must be float32 or float64"):
        gk.activation("ELU").kernel_params(bad)


def test_kernel_params_is_four_values_of_the_dtype():
    for label, act in gk.activations.variants():
        for dtype in ("float32", np.float64, ">f4"):
            p = act.kernel_params(dtype)
            assert len(p) == 4 and {type(v) for v in p} == {np.dtype(dtype).newbyteorder(
                "=").type}, label
    assert gk.activation("ELU", alpha=0.3).kernel_params(np.float32)[0] == np.float32(0.3)


# -- docs/jit.md's examples run -----------------------------------------------------------

DOC = ROOT / "docs" / "jit.md"


def _blocks():
    return re.findall(r"^```python\n(.*?)^```", DOC.read_text(encoding="utf-8"), re.S | re.M)


def test_the_docs_page_has_a_cpu_and_a_gpu_example():
    blocks = _blocks()
    assert len(blocks) == 2 and "numba.njit" in blocks[0] and "cuda.jit" in blocks[1]


@pytest.mark.parametrize("index", [0, pytest.param(1, marks=needs_cuda)])
def test_docs_example_runs(index, tmp_path):
    # a fresh process, as a reader runs it; the simulator setting of this run
    # (tests/conftest.py) is inherited, so the GPU example runs without a GPU
    script = tmp_path / "example.py"
    script.write_text(_blocks()[index])
    out = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=os.environ.copy(),
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "bit for bit: True" in out.stdout
