"""Arrays from other libraries: DLPack and the array interfaces, in and out.

What the kernel receives is checked by pointer (a spy around the kernel), not
by timing: a torch CPU tensor, a JAX CPU array and a bare ``__dlpack__``
producer reach it without a copy; ``out=`` torch tensors are written in
place; device memory, unreadable exports and non-real dtypes are refused by
name.  The CUDA backend's results export ``__dlpack__`` beside numba's
``__cuda_array_interface__`` (simulator here; the real-GPU round trip through
torch runs where a GPU is present).
"""
import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

import gradkern as gk
from gradkern.chain import cpu, elementwise

from .conftest import CUDASIM, REAL_GPU

torch = pytest.importorskip("torch")

needs_cuda = pytest.mark.skipif(not (CUDASIM or REAL_GPU), reason="no GPU and no simulator")
gpu_only = pytest.mark.skipif(not REAL_GPU, reason="needs a real CUDA GPU (simulator run)")

W = [0.75, -1.5, 2.0]
TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class DLPackOnly:
    """A minimal array library's array: the DLPack protocol and nothing else
    (no ``__array__``, no ``__array_interface__``)."""

    def __init__(self, arr, device=(1, 0)):
        self._arr, self._device = arr, device

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        return self._arr.__dlpack__(stream=stream, max_version=max_version,
                                    dl_device=dl_device, copy=copy)

    def __dlpack_device__(self):
        return self._device


class CudaInterfaceOnly:
    """What a CuPy array or a numba device array looks like to the CPU path."""

    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f4", "data": (1 << 20, False),
                                "version": 3, "strides": None}


def _inputs(dtype, n=300):
    return np.linspace(-3, 3, n).astype(dtype)


@pytest.fixture
def kernel_inputs(monkeypatch):
    """The ``x`` every CPU chain and elementwise kernel call receives."""
    seen = []

    def spy_on(module):
        real = module.get_kernel

        def get_kernel(*args, **kwargs):
            kernel = real(*args, **kwargs)

            def call(x, *rest):
                seen.append(x)
                return kernel(x, *rest)

            return call

        monkeypatch.setattr(module, "get_kernel", get_kernel)

    spy_on(cpu)
    spy_on(elementwise)
    return seen


def _address(arr):
    return arr.__array_interface__["data"][0]


# -- read without a copy --------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("step", [1, 3], ids=["contiguous", "strided"])
def test_torch_cpu_tensor_reaches_the_kernel_without_a_copy(dtype, step, kernel_inputs):
    base = torch.from_numpy(_inputs(dtype))
    xt = base[::step]
    xt.requires_grad_(step == 1)  # a leaf that requires grad is read through .detach()
    res = gk.chain_grad(xt, "ELU", W)
    (seen,) = kernel_inputs
    assert _address(seen) == xt.data_ptr() and seen.strides == (xt.stride(0) * xt.element_size(),)
    ref = gk.chain_grad(xt.detach().numpy().copy(), "ELU", W)
    assert all(np.array_equal(a, b) for a, b in zip(res, ref))
    assert type(res.output) is np.ndarray and res.output.dtype == dtype


#: JAX reaches the kernel without a copy: run in a fresh process, because a
#: process that has started JAX warns at every later os.fork() (JAX is
#: multithreaded), which this suite's forking sweep tests turn into errors
JAX_SCRIPT = """
import json
import numpy as np
import jax.numpy as jnp
import gradkern as gk
from gradkern.chain import cpu

seen, real = [], cpu.get_kernel

def get_kernel(*args, **kwargs):
    kernel = real(*args, **kwargs)
    def call(x, *rest):
        seen.append(x)
        return kernel(x, *rest)
    return call

cpu.get_kernel = get_kernel
act = gk.activation("ELU", alpha=0.3)
xj = jnp.asarray(np.linspace(-3, 3, 300, dtype=np.float32))
before = np.array(xj)
res = gk.chain_grad(xj, act, [0.75, -1.5, 2.0])
ref = gk.chain_grad(before, act, [0.75, -1.5, 2.0])
print(json.dumps({
    "same_memory": seen[0].__array_interface__["data"][0] == xj.unsafe_buffer_pointer(),
    "read_only": not seen[0].flags.writeable,
    "unchanged": bool(np.array_equal(np.asarray(xj), before)),
    "results_equal": all(bool(np.array_equal(a, b)) for a, b in zip(res, ref)),
}))
"""


def test_jax_cpu_array_reaches_the_kernel_without_a_copy():
    if importlib.util.find_spec("jax") is None:
        pytest.skip("JAX (the `bench` extra) not installed")
    out = subprocess.run([sys.executable, "-c", JAX_SCRIPT], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    facts = json.loads(out.stdout.strip().splitlines()[-1])
    # read-only: JAX exports its buffer read-only, and nothing wrote it
    assert facts == {"same_memory": True, "read_only": True, "unchanged": True,
                     "results_equal": True}


def test_a_bare_dlpack_producer_is_read_without_a_copy(kernel_inputs):
    x = _inputs(np.float64)
    res = gk.chain_grad(DLPackOnly(x), "Tanh", DLPackOnly(np.asarray(W)))
    assert _address(kernel_inputs[0]) == _address(x)
    ref = gk.chain_grad(x, "Tanh", W)
    assert all(np.array_equal(a, b) for a, b in zip(res, ref))


@pytest.mark.parametrize("method", ["forward", "derivative"])
def test_activation_elementwise_reads_dlpack_without_a_copy(method, kernel_inputs):
    act = gk.activation("ELU", alpha=0.3)
    x = _inputs(np.float32).reshape(20, 15)
    expected = getattr(act, method)(x)
    for arr in (torch.from_numpy(x), DLPackOnly(x)):
        kernel_inputs.clear()
        got = getattr(act, method)(arr)
        assert _address(kernel_inputs[0]) == _address(x)
        assert type(got) is np.ndarray and got.shape == x.shape
        assert np.array_equal(got, expected)


# -- write through out= ------------------------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_out_torch_tensors_are_written_in_place(dtype):
    x = _inputs(dtype)
    tdt = TORCH_DTYPES[np.dtype(dtype)]
    out = (torch.full((300,), 7.0, dtype=tdt), torch.full((300, 3), 7.0, dtype=tdt),
           torch.full((300,), 7.0, dtype=tdt))
    res = gk.chain_grad(torch.from_numpy(x), "Tanh", W, out=out)
    ref = gk.chain_grad(x, "Tanh", W)
    for tensor, got, want in zip(out, res, ref):
        assert np.array_equal(tensor.numpy(), want)  # the caller's tensor holds the result
        assert _address(got) == tensor.data_ptr()  # and the returned array is its memory


def test_out_strided_torch_view_is_written_in_place():
    x = _inputs(np.float32)
    big = torch.zeros(300, 6)
    out = (torch.empty(300), big[:, ::2], torch.empty(300))
    gk.chain_grad(x, "ReLU", W, out=out)
    assert np.array_equal(big[:, ::2].numpy(), gk.chain_grad(x, "ReLU", W).weight_grads)
    assert not big[:, 1::2].any()  # the columns between were not touched


def test_out_read_only_export_is_refused():
    # a read-only DLPack export (JAX arrays are exported so), flagged by DLPack 1.0
    frozen = np.zeros(300, np.float32)
    frozen.flags.writeable = False
    out = (DLPackOnly(frozen), np.empty((300, 3), np.float32), np.empty(300, np.float32))
    with pytest.raises(ValueError, match=r"out\.output is read-only"):
        gk.chain_grad(_inputs(np.float32), "Tanh", W, out=out)
    assert not frozen.any()


def test_out_tensor_that_requires_grad_is_refused():
    out = (torch.zeros(300, requires_grad=True), torch.zeros(300, 3), torch.zeros(300))
    with pytest.raises(ValueError, match=r"out\.output .*requires grad"):
        gk.chain_grad(_inputs(np.float32), "Tanh", W, out=out)
    # refused before anything is written (zeros, not torch.empty: its garbage may be NaN)
    assert not out[0].detach().any() and not out[1].any() and not out[2].any()


def test_out_overlapping_a_torch_input_is_refused():
    xt = torch.from_numpy(_inputs(np.float32))
    with pytest.raises(ValueError, match=r"out\.output overlaps an input"):
        gk.chain_grad(xt, "Tanh", W, out=(xt, torch.empty(300, 3), torch.empty(300)))
    assert np.array_equal(xt.numpy(), _inputs(np.float32))


def test_out_that_is_not_an_array_is_refused():
    with pytest.raises(TypeError, match=r"out\.output must be a numpy array or a host array"):
        gk.chain_grad(_inputs(np.float32), "Tanh", W,
                      out=([0.0] * 300, np.empty((300, 3), np.float32), np.empty(300, np.float32)))


# -- bad input, by name --------------------------------------------------------------

@pytest.mark.parametrize("arg", ["x", "weights", "out"])
def test_device_memory_is_refused_by_the_cpu_backend(arg):
    host = {"x": _inputs(np.float32), "weights": W, "out": None}
    for device in (DLPackOnly(_inputs(np.float32)[:3], device=(2, 0)), CudaInterfaceOnly()):
        args = dict(host)
        args[arg] = device if arg != "out" else (device, np.empty((300, 3), np.float32),
                                                 np.empty(300, np.float32))
        name = "out.output" if arg == "out" else arg
        with pytest.raises(TypeError, match=rf"{name} lives in CUDA device .*backend='cuda'"):
            gk.chain_grad(args["x"], "Tanh", args["weights"], out=args["out"])
    with pytest.raises(TypeError, match=r"x lives in CUDA device 0"):
        gk.activation("Tanh").forward(DLPackOnly(np.zeros(3), device=(2, 0)))


def test_an_unreadable_dlpack_export_is_a_value_error_naming_the_argument():
    # strides of 6 bytes over float32: NumPy's exporter refuses them (BufferError)
    buf = np.zeros(64, np.uint8)
    odd = np.ndarray((5,), np.float32, buf, strides=(6,))
    with pytest.raises(ValueError, match=r"x: its DLPack export cannot be read .*multiple of"):
        gk.chain_grad(DLPackOnly(odd), "Tanh", W)
    with pytest.raises(ValueError, match=r"noise: its DLPack export cannot be read"):
        gk.chain_grad(np.zeros(5, np.float32), "RReLU", [1.0], noise=DLPackOnly(odd))


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64, torch.bfloat16])
def test_non_real_dtypes_are_refused_by_name(dtype):
    xt = torch.zeros(4, dtype=dtype)
    with pytest.raises(TypeError, match=r"^x"):
        gk.chain_grad(xt, "Tanh", W)
    with pytest.raises(TypeError, match=r"^weights"):
        gk.chain_grad(np.zeros(4), "Tanh", torch.ones(3, dtype=dtype))
    with pytest.raises(TypeError, match=r"^x"):
        gk.activation("Tanh").derivative(DLPackOnly(xt.numpy()) if dtype != torch.bfloat16
                                         else xt)


def test_inputs_are_never_written():
    xt = torch.from_numpy(_inputs(np.float64))
    w = torch.tensor(W)
    snapshot = xt.clone(), w.clone()
    gk.chain_grad(xt, "Hardtanh", w)
    gk.activation("SiLU").derivative(xt)
    assert torch.equal(xt, snapshot[0]) and torch.equal(w, snapshot[1])


# -- the CUDA backend ------------------------------------------------------------------

@needs_cuda
def test_cuda_results_export_dlpack_and_torch_reads_them_without_a_copy():
    from numba import cuda

    from gradkern.chain.cuda import DLPackExport

    x = _inputs(np.float32)
    res = gk.chain_grad(cuda.to_device(x), "ELU", W, backend="cuda")
    ref = gk.chain_grad(x, "ELU", W)
    for got, want in zip(res, ref):
        assert isinstance(got, DLPackExport) and getattr(got, "__cuda_ndarray__", False)
        t = torch.from_dlpack(got)
        if CUDASIM:  # the simulator's device memory is a NumPy array
            assert got.__dlpack_device__() == (1, 0) and t.data_ptr() == _address(got._ary)
        else:
            assert t.data_ptr() == got.__cuda_array_interface__["data"][0]
        assert np.array_equal(t.cpu().numpy(), want)


@needs_cuda
@pytest.mark.parametrize("stream, error", [(0, ValueError), (-2, ValueError),
                                           (True, TypeError), ("1", TypeError)])
def test_cuda_results_check_the_dlpack_stream_argument(stream, error):
    from numba import cuda

    res = gk.chain_grad(cuda.to_device(_inputs(np.float32)), "Tanh", W, backend="cuda")
    with pytest.raises(error, match="stream"):
        res.output.__dlpack__(stream=stream)
    with pytest.raises(BufferError, match="copy=True"):
        res.output.__dlpack__(copy=True)
    res.output.__dlpack__(stream=-1)  # -1: no ordering asked; accepted


def test_dlpack_cuda_producers_count_as_device_arrays():
    from gradkern.chain.cuda import is_device_array

    assert is_device_array(DLPackOnly(np.zeros(3), device=(2, 0)))
    assert is_device_array(DLPackOnly(np.zeros(3), device=(13, 0)))  # managed memory
    assert not is_device_array(DLPackOnly(np.zeros(3), device=(3, 0)))  # pinned host
    assert not is_device_array(torch.zeros(3)) and not is_device_array(np.zeros(3))


@gpu_only
def test_torch_cuda_tensors_round_trip_through_dlpack_on_a_stream():
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA build of torch")
    x = _inputs(np.float32, n=100_000)
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        xt = torch.as_tensor(x, device="cuda") * 1  # queued on s: DLPack must order it
        res = gk.chain_grad(xt, "Tanh", W, backend="cuda", stream=s)
        gw = torch.from_dlpack(res.weight_grads)  # consumer: s, the current stream
    assert gw.data_ptr() == res.weight_grads.__cuda_array_interface__["data"][0]
    ref = gk.chain_grad(x, "Tanh", W)
    s.synchronize()
    assert np.array_equal(gw.cpu().numpy(), ref.weight_grads)
    out = tuple(torch.empty_like(torch.as_tensor(a), device="cuda") for a in ref)
    gk.chain_grad(xt, "Tanh", W, backend="cuda", out=out)
    torch.cuda.synchronize()
    assert all(np.array_equal(o.cpu().numpy(), r) for o, r in zip(out, ref))
