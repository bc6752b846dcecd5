"""backend="cuda": the numba-cuda chain kernel against the CPU kernel and torch autograd.

Without a GPU (CI), conftest turns on numba-cuda's simulator
(NUMBA_ENABLE_CUDASIM=1): the very kernel body runs as Python, thread by
thread, calling the same compiled scalar functions, so every result must be
bit-identical to the CPU kernel's; N stays at a few hundred (the simulator
runs one Python thread per GPU thread).  With a GPU, the ``gpu`` tests run at
full size and also compare with torch autograd on the GPU.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import gradkern as gk
from gradkern import verify

from .conftest import ACT_NAMES, CUDASIM, PIECEWISE, REAL_GPU, default_activation

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")
from gradkern.chain import cuda as backend_cuda  # noqa: E402

needs_cuda = pytest.mark.skipif(not (CUDASIM or REAL_GPU), reason="no GPU and no simulator")
gpu_only = pytest.mark.skipif(not REAL_GPU, reason="needs a real CUDA GPU (simulator run)")
sim_only = pytest.mark.skipif(not CUDASIM, reason="simulator-specific")
pytestmark = needs_cuda

W3 = np.array([1.0, -0.5, 1.5])


def _bits_equal(a, b):
    return verify._bit_identical(np.asarray(a), np.asarray(b)) == 1.0


def _host(arr):
    return arr.copy_to_host() if hasattr(arr, "copy_to_host") else np.asarray(arr)


def _small_inputs(act, dtype, seed=1):
    # ~40 special values + random at six scales: a few hundred simulated threads
    return verify.test_inputs(act, dtype, n_random=150, seed=seed)


# -- the three results --------------------------------------------------------

@pytest.mark.parametrize("name", ACT_NAMES)
def test_parity_with_autograd_and_cpu(name, dtype):
    """verify's rules against torch autograd, and the CPU kernel's bits (simulator)."""
    act = default_activation(name)
    x = _small_inputs(act, dtype)
    r = verify.check(act, dtype, W3, x=x, weights_name="signed", backend="cuda")
    assert r.ok, r.why
    got = gk.chain_grad(x, act, W3, backend="cuda")
    cpu = gk.chain_grad(x, act, W3)
    assert got.backend == "cuda" and cpu.backend == "cpu"
    for field, g, c in zip(got._fields, got, cpu):
        assert g.dtype == dtype and g.shape == c.shape
        if CUDASIM or act.piecewise_linear:
            assert _bits_equal(g, c), field
        else:  # the GPU's libdevice exp/tanh: close, not the same bits
            np.testing.assert_allclose(g, c, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-14)


def test_rrelu_training_same_draws_as_cpu(dtype):
    """seed= draws the slopes on the host exactly as the CPU backend does."""
    act = gk.activation("RReLU", training=True)
    x = _small_inputs(act, dtype)
    got = gk.chain_grad(x, act, W3, backend="cuda", seed=5)
    cpu = gk.chain_grad(x, act, W3, seed=5)
    for g, c in zip(got, cpu):
        assert _bits_equal(g, c)


def test_rrelu_training_device_noise(dtype):
    """Noise as a device array gives what host noise gives (torch's noise,
    host side: tests/test_parity.py)."""
    from gradkern import reference

    act = gk.activation("RReLU", training=True)
    x = _small_inputs(act, dtype)
    _, noise = reference.batched_grads(x, act, W3)
    got = gk.chain_grad(x, act, W3, backend="cuda", noise=noise)
    dev = gk.chain_grad(cuda.to_device(x), act, W3, backend="cuda",
                        noise=cuda.to_device(noise.astype(dtype)))
    for g, r in zip(dev, got):
        assert _bits_equal(_host(g), r)


def test_empty_and_dtype_rules():
    res = gk.chain_grad(np.empty(0, np.float32), "Tanh", [1.0, 1.0], backend="cuda")
    assert res.weight_grads.shape == (0, 2) and res.output.dtype == np.float32
    res = gk.chain_grad(np.arange(5, dtype=np.int16), "ELU", [1.0, 2.0], backend="cuda")
    assert all(a.dtype == np.float64 for a in res)
    x = np.linspace(-3, 3, 41)
    got = gk.chain_grad(x.astype(">f8")[::2], "Softplus", [1.5, -0.5], backend="cuda")
    cpu = gk.chain_grad(x[::2].copy(), "Softplus", [1.5, -0.5])
    for g, c in zip(got, cpu):
        assert _bits_equal(g, c) or not CUDASIM


# -- device arrays ------------------------------------------------------------

def test_device_arrays_in_device_arrays_out(dtype):
    act = gk.activation("LeakyReLU", negative_slope=0.2)
    x = _small_inputs(act, dtype)
    d_x = cuda.to_device(x)
    res = gk.chain_grad(d_x, act, W3, backend="cuda")
    assert res.backend == "cuda"
    for arr in res:
        assert backend_cuda.is_device_array(arr) and not isinstance(arr, np.ndarray)
    cpu = gk.chain_grad(x, act, W3)
    for g, c in zip(res, cpu):
        assert _bits_equal(g.copy_to_host(), c)
    np.testing.assert_array_equal(d_x.copy_to_host(), x)  # input untouched


def test_device_out_is_filled_and_returned(dtype):
    x = np.linspace(-2, 2, 70).astype(dtype)
    n = x.size
    out = (cuda.device_array(n, dtype), cuda.device_array((n, 3), dtype),
           cuda.device_array(n, dtype))
    res = gk.chain_grad(cuda.to_device(x), "ELU", W3, backend="cuda", out=out)
    assert all(a is b for a, b in zip(res, out))
    cpu = gk.chain_grad(x, "ELU", W3)
    for g, c in zip(res, cpu):
        assert _bits_equal(g.copy_to_host(), c) or not CUDASIM


def test_host_out_is_filled_and_returned():
    x = np.linspace(-2, 2, 50)
    big = np.empty((50, 6))
    out = (np.empty(50), big[:, ::2], np.empty(50))  # a strided weight_grads view
    res = gk.chain_grad(x, "ELU", W3, backend="cuda", out=out)
    assert all(a is b for a, b in zip(res, out))
    cpu = gk.chain_grad(x, "ELU", W3)
    np.testing.assert_array_equal(big[:, ::2], cpu.weight_grads)
    np.testing.assert_array_equal(res.output, cpu.output)


def test_stream_is_used():
    s = cuda.stream()
    x = np.linspace(-1, 1, 40, dtype=np.float32)
    res = gk.chain_grad(cuda.to_device(x, stream=s), "Tanh", W3, backend="cuda", stream=s)
    s.synchronize()
    cpu = gk.chain_grad(x, "Tanh", W3)
    np.testing.assert_allclose(res.output.copy_to_host(), cpu.output, rtol=1e-6)
    host = gk.chain_grad(x, "Tanh", W3, backend="cuda", stream=s)  # host path on a stream
    np.testing.assert_allclose(host.input_grad, cpu.input_grad, rtol=1e-5)


# -- chunking -----------------------------------------------------------------

@pytest.mark.parametrize("chunk", [1, 37, 100])
def test_chunks_equal_one_pass(monkeypatch, chunk):
    act = gk.activation("RReLU", training=True)
    x = verify.test_inputs(act, np.float32, n_random=160, seed=4)
    one = gk.chain_grad(x, act, W3, backend="cuda", seed=2)
    monkeypatch.setattr(backend_cuda, "CHUNK_SAMPLES", chunk)
    if chunk == 1:
        x = x[:23]  # one launch per sample: keep the simulator quick
    many = gk.chain_grad(x, act, W3, backend="cuda", seed=2)
    for a, b in zip(many, one):
        assert _bits_equal(a, b[: x.size])


def test_chunk_size_from_free_memory():
    # float64, L = 3: 8 x (3 + 3) = 48 bytes a sample; 70% of 4800 bytes -> 70
    assert backend_cuda.chunk_samples(10**6, 3, np.float64, False, 4800) == 70
    # RReLU training adds a noise row: 8 x (3 + 6) = 72 bytes
    assert backend_cuda.chunk_samples(10**6, 3, np.float64, True, 7200) == 70
    assert backend_cuda.chunk_samples(5, 3, np.float32, False, 10**12) == 5
    assert backend_cuda.chunk_samples(10**6, 3, np.float32, False, 0) == 1


def _fake_oom_device_array(monkeypatch, limit):
    """cuda.device_array that runs out of memory above ``limit`` samples."""
    from numba.cuda.cudadrv.driver import CudaAPIError

    real = cuda.device_array

    def device_array(shape, *args, **kwargs):
        n = shape if isinstance(shape, int) else shape[0]
        if n > limit:
            raise CudaAPIError(2, "CUDA_ERROR_OUT_OF_MEMORY") if not CUDASIM else \
                MemoryError("out of memory")
        return real(shape, *args, **kwargs)

    monkeypatch.setattr(cuda, "device_array", device_array)


def test_out_of_memory_host_inputs_retry_smaller_chunks(monkeypatch):
    x = np.linspace(-3, 3, 120, dtype=np.float32)
    one = gk.chain_grad(x, "Softsign", W3, backend="cuda")
    _fake_oom_device_array(monkeypatch, limit=40)  # 120 -> 60 -> 30 fits
    res = gk.chain_grad(x, "Softsign", W3, backend="cuda")
    for a, b in zip(res, one):
        assert _bits_equal(a, b)


def test_out_of_memory_is_a_clear_error(monkeypatch):
    x = np.linspace(-3, 3, 120, dtype=np.float32)
    _fake_oom_device_array(monkeypatch, limit=0)
    with pytest.raises(backend_cuda.GPUOutOfMemoryError, match="GPU out of memory: this call needs"):
        gk.chain_grad(x, "Softsign", W3, backend="cuda")
    with pytest.raises(MemoryError, match="GPU out of memory"):
        gk.chain_grad(cuda.to_device(x), "Softsign", W3, backend="cuda")


# -- bad input ----------------------------------------------------------------

def test_bad_device_input():
    x = np.linspace(-1, 1, 8)
    d_x = cuda.to_device(x)
    with pytest.raises(TypeError, match="device x must be float32 or float64"):
        gk.chain_grad(cuda.to_device(np.arange(8)), "Tanh", [1.0], backend="cuda")
    with pytest.raises(ValueError, match="x must be 1-D"):
        gk.chain_grad(cuda.to_device(np.ones((2, 2))), "Tanh", [1.0], backend="cuda")
    bad_shape = (cuda.device_array(8), cuda.device_array((8, 2)), cuda.device_array(8))
    with pytest.raises(ValueError, match=r"out.weight_grads must have shape \(8, 1\)"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda", out=bad_shape)
    bad_dtype = (cuda.device_array(8, np.float32), cuda.device_array((8, 1)), cuda.device_array(8))
    with pytest.raises(ValueError, match="out.output must have shape"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda", out=bad_dtype)
    with pytest.raises(TypeError, match="out.output must be one too"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda",
                      out=(np.empty(8), np.empty((8, 1)), np.empty(8)))
    with pytest.raises(TypeError, match="out= must be NumPy arrays too"):
        gk.chain_grad(x, "Tanh", [1.0], backend="cuda",
                      out=(cuda.device_array(8), cuda.device_array((8, 1)), cuda.device_array(8)))
    shared = cuda.device_array(8)
    with pytest.raises(ValueError, match="overlaps out.output"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda",
                      out=(shared, cuda.device_array((8, 1)), shared))
    with pytest.raises(ValueError, match="overlaps an input"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda",
                      out=(d_x, cuda.device_array((8, 1)), cuda.device_array(8)))
    with pytest.raises(ValueError, match="noise must have shape"):
        gk.chain_grad(d_x, gk.activation("RReLU"), [1.0], backend="cuda",
                      noise=cuda.device_array((8, 2)))
    with pytest.raises(ValueError, match="noise= is only for an activation that draws"):
        gk.chain_grad(d_x, "Tanh", [1.0], backend="cuda", noise=np.ones((8, 1)))


def test_stream_rejected_by_cpu_and_checked():
    with pytest.raises(TypeError, match="backend 'cpu' does not take stream="):
        gk.chain_grad(np.ones(3), "Tanh", [1.0], stream=cuda.stream())


@gpu_only
def test_bad_stream_type():
    with pytest.raises(TypeError, match="stream must be"):
        gk.chain_grad(np.ones(3), "Tanh", [1.0], backend="cuda", stream="fast")


# -- auto and missing GPU -----------------------------------------------------

def test_auto_says_which_backend_it_used():
    x = np.linspace(-1, 1, 20)
    res = gk.chain_grad(x, "Tanh", [1.0, 2.0], backend="auto")
    assert res.backend == ("cuda" if REAL_GPU else "cpu")  # never the simulator
    np.testing.assert_array_equal(res.output, gk.chain_grad(x, "Tanh", [1.0, 2.0]).output)
    dev = gk.chain_grad(cuda.to_device(x), "Tanh", [1.0, 2.0], backend="auto")
    assert dev.backend == "cuda"


def test_backends_listed():
    assert set(gk.BACKENDS) == {"cpu", "cuda", "auto", "native", "native-cuda"}
    with pytest.raises(ValueError, match="valid backends: cpu, cuda, auto, native, native-cuda"):
        gk.chain_grad(np.ones(3), "Tanh", [1.0], backend="gpu")


def _run(code, **env):
    e = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e)


@pytest.mark.skipif(REAL_GPU, reason="this machine has a GPU")
def test_no_gpu_is_a_clear_error():
    code = ("import numpy as np, gradkern as gk\n"
            "from gradkern.chain.cuda import CudaUnavailableError\n"
            "try:\n"
            "    gk.chain_grad(np.ones(3), 'Tanh', [1.0], backend='cuda')\n"
            "except CudaUnavailableError as e:\n"
            "    print('ERR', e)\n"
            "print(gk.chain_grad(np.ones(3), 'Tanh', [1.0], backend='auto').backend)\n")
    out = _run(code, NUMBA_ENABLE_CUDASIM="0")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("ERR backend='cuda': no usable CUDA GPU:")
    assert "driver" in lines[0]
    assert lines[1] == "cpu"


def test_import_gradkern_does_not_load_numba_cuda():
    out = _run("import sys, gradkern; print('numba.cuda' in sys.modules)")
    assert out.stdout.strip() == "False"


def test_verify_cli_backend_cuda():
    out = _run("from gradkern.cli import main; main(['verify', '--backend', 'cuda', "
               "'--activations', 'Hardtanh', '--depths', '1'])")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "backend cuda" in out.stderr + out.stdout and "0 failed" in out.stdout


# -- real GPU only: full size, torch on the GPU -------------------------------

N_GPU = 1_000_000


@gpu_only
@pytest.mark.parametrize("name", ACT_NAMES)
def test_gpu_large_n_against_cpu(name, dtype):
    act = default_activation(name)
    x = (np.random.default_rng(0).standard_normal(N_GPU) * 2).astype(dtype)
    got = gk.chain_grad(x, act, W3, backend="cuda")
    cpu = gk.chain_grad(x, act, W3)
    for g, c in zip(got, cpu):
        if act.piecewise_linear:
            assert _bits_equal(g, c)
        else:
            np.testing.assert_allclose(g, c, rtol=1e-5 if dtype == np.float32 else 1e-12,
                                       atol=1e-6 if dtype == np.float32 else 1e-14)


@gpu_only
@pytest.mark.parametrize("name", ACT_NAMES)
def test_gpu_against_torch_autograd_on_gpu(name, dtype):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here (CPU build); compared with CPU autograd above")
    from gradkern.bench.gpu import torch_batched_cuda

    act = default_activation(name)
    x = (np.random.default_rng(1).standard_normal(200_000) * 2).astype(dtype)
    xt = torch.as_tensor(x, device="cuda")
    ref = torch_batched_cuda(xt, act, W3)
    got = gk.chain_grad(xt, act, W3, backend="cuda")  # a torch CUDA tensor in
    for g, r in zip(got, ref):
        g = torch.as_tensor(g, device="cuda").cpu().numpy()
        r = r.cpu().numpy()
        ok = ~np.isnan(r)
        rtol, atol = verify.TOLERANCES[np.dtype(dtype)]
        np.testing.assert_allclose(g[ok], r[ok], rtol=rtol * 4, atol=atol)


@gpu_only
def test_gpu_torch_stream_and_tensors():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA here")
    x = torch.linspace(-3, 3, 10_000, device="cuda")
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        res = gk.chain_grad(x, "Tanh", W3, backend="cuda", stream=s)
    s.synchronize()
    cpu = gk.chain_grad(x.cpu().numpy(), "Tanh", W3)
    np.testing.assert_allclose(torch.as_tensor(res.output, device="cuda").cpu().numpy(),
                               cpu.output, rtol=1e-6, atol=1e-7)


@gpu_only
def test_gpu_chunked_equals_one_pass(monkeypatch):
    x = np.random.default_rng(3).standard_normal(N_GPU).astype(np.float32)
    one = gk.chain_grad(x, "Tanh", W3, backend="cuda")
    monkeypatch.setattr(backend_cuda, "CHUNK_SAMPLES", 123_457)
    many = gk.chain_grad(x, "Tanh", W3, backend="cuda")
    for a, b in zip(many, one):
        assert _bits_equal(a, b)


@gpu_only
def test_gpu_launch_config_from_occupancy():
    from gradkern.chain.cuda_kernel import get_kernel, launch_config

    kernel = get_kernel(gk.activation("Tanh").ops(), np.float32)
    blocks, threads = launch_config(kernel, 10**8)
    dev = cuda.get_current_device()
    assert threads in (128, 256, 512, 1024)
    assert blocks % dev.MULTIPROCESSOR_COUNT == 0 and blocks >= dev.MULTIPROCESSOR_COUNT
    assert launch_config(kernel, 10) == (1, threads)


@sim_only
def test_simulator_launch_uses_grid_stride():
    from gradkern.chain.cuda_kernel import SIM_LAUNCH, get_kernel, launch_config

    kernel = get_kernel(gk.activation("ReLU").ops(), np.float64)
    assert launch_config(kernel, 1000) == SIM_LAUNCH  # 64 threads for 1000 samples
    assert launch_config(kernel, 10) == (1, SIM_LAUNCH[1])
    assert launch_config(kernel, 0) == (0, 0)


@pytest.mark.parametrize("name", PIECEWISE)
def test_piecewise_denormal_products_sign_of_zero(name):
    """Products that underflow to zero: +0.0 as torch's matmul gives (on a GPU this
    needs FMA contraction off: fma(w, a, 0) would keep -0.0)."""
    act = default_activation(name)
    tiny = np.finfo(np.float32).smallest_subnormal
    x = np.array([tiny, -tiny, 3 * tiny, -3 * tiny], np.float32)
    w = [1.0, -0.25, 0.5]
    got = gk.chain_grad(x, act, w, backend="cuda")
    cpu = gk.chain_grad(x, act, w)
    for g, c in zip(got, cpu):
        assert _bits_equal(g, c)
