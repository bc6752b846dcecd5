"""The ``cuda`` backend: the chain kernel on an NVIDIA GPU through numba-cuda.

Two paths, chosen by where ``x`` lives:

- **device arrays** (anything exporting ``__dlpack__`` on a CUDA device or
  ``__cuda_array_interface__``: numba device arrays, CuPy arrays, torch and
  JAX CUDA arrays): no host copy of x or of the results.  DLPack is asked
  first, with ``stream`` as the consumer stream, so the producer orders its
  pending work before the launch (the protocol's handshake).  The results are
  numba device arrays that also export ``__dlpack__`` (:func:`exporting`), or
  the caller's ``out=`` arrays, which CuPy, torch and JAX take without a copy
  (``torch.from_dlpack(r)``, ``cupy.from_dlpack(r)``).  The launch is
  asynchronous on ``stream``.
- **NumPy arrays**: copied to the device in chunks that fit the free device
  memory (:data:`CHUNK_SAMPLES` overrides the size), computed, copied back
  into NumPy results; returns when they are filled.  Each sample's result
  depends on that sample only, so chunking changes no bit.

This module imports numba.cuda only when called, so that ``backend="auto"``
can ask :func:`gpu_usable` and ``import gradkern`` stays light.
"""
import os

import numpy as np

from ..errors import BackendUnavailableError
from .arrays import ChainGrad, prepare_inputs, prepare_noise
from .layers import layer_plan, prepare_biases
from .outputs import OUTPUT_NAMES, Outputs, out_arrays, prepare_wanted_out, resolve_outputs

__all__ = ["chain_grad", "gpu_usable", "is_device_array", "CudaUnavailableError", "GPUOutOfMemoryError",
           "CHUNK_SAMPLES", "chunk_samples", "exporting", "DLPackExport"]

#: Samples per host->device chunk; None sizes chunks from the free device memory.
CHUNK_SAMPLES = None

#: Share of the free device memory one chunk may use: the rest is headroom for
#: numba's allocator, other streams and the caller's own allocations.
FREE_MEMORY_SHARE = 0.7

#: Halvings of the chunk size tried after an out-of-memory error before giving up
#: (1 GiB chunk -> 64 MiB after 4).
OOM_RETRIES = 4


class CudaUnavailableError(BackendUnavailableError):
    """backend="cuda" was asked for but no usable CUDA GPU (or numba-cuda) is present."""


class GPUOutOfMemoryError(MemoryError):
    """The GPU ran out of memory for the arrays this call needs."""


def _cuda():
    """numba.cuda, or CudaUnavailableError saying what is missing."""
    try:
        from numba import cuda
    except ImportError as exc:
        raise CudaUnavailableError(
            "backend='cuda' needs numba-cuda: pip install 'gradkern[cuda]' "
            f"(import failed: {exc})") from None
    if _simulated(cuda):
        return cuda
    if not cuda.is_available():
        raise CudaUnavailableError(f"backend='cuda': no usable CUDA GPU: {_why_unavailable()}")
    return cuda


def _simulated(cuda=None):
    from numba.cuda.core import config

    return bool(config.ENABLE_CUDASIM)


def _why_unavailable():
    try:
        from numba.cuda.cudadrv.driver import driver

        n = driver.get_device_count()
        return "the driver reports no devices" if n == 0 else f"{n} device(s) but none usable"
    except Exception as exc:  # CudaSupportError: no libcuda, driver too old, ...
        return " ".join(str(exc).split())


def gpu_usable():
    """True when numba-cuda is installed and a real CUDA GPU can be used: what
    ``backend="auto"`` asks, for chains and sweeps alike.

    The simulator (``NUMBA_ENABLE_CUDASIM=1``) is not a GPU: False there, so
    ``auto`` never picks it.  Without an NVIDIA driver's device node this
    answers without importing numba.cuda (about 0.5 s), and a broken CUDA
    install counts as no GPU rather than an error.
    """
    import numba

    if numba.config.ENABLE_CUDASIM:
        return False
    if not (os.path.exists("/dev/nvidiactl") or os.path.exists("/dev/dxg")):
        return False
    try:
        from numba import cuda

        return not _simulated(cuda) and bool(cuda.is_available())
    except Exception:  # ImportError, CudaSupportError, a driver too old, ...
        return False


def chain_grad(x, act, weights, *, biases=None, out=None, noise=None, seed=None, stream=None,
               outputs=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation, or a
    tuple of them, one per layer."""
    wanted = resolve_outputs(outputs, biases is not None)
    cuda = _cuda()
    stream = _as_stream(cuda, stream)
    if is_device_array(x):
        res = _device_chain_grad(cuda, x, act, weights, biases, out, noise, seed, stream, wanted)
    else:
        res = _host_chain_grad(cuda, x, act, weights, biases, out, noise, seed, stream, wanted)
    res.backend = "cuda"
    return res


class _Chain:
    """What a launch needs besides the arrays of x and the results: the plain
    chain's activation, or a LayerPlan with its biases and tables (on the
    device, L values each)."""

    def __init__(self, act, plan, biases, n_layers, dtype, wanted=None):
        self.act, self.plan = act, plan
        self.has_bias = plan is not None and plan.has_bias
        #: the results to write (chain_grad(outputs=...))
        self.wanted = Outputs(bias_grads=self.has_bias) if wanted is None else wanted
        self.stochastic = act.stochastic if plan is None else plan.stochastic
        if plan is not None:
            self.b = prepare_biases(biases, n_layers, dtype) if plan.has_bias else \
                np.zeros(n_layers, dtype)

    def noise(self, noise, seed, n, n_layers, dtype):
        if self.plan is not None:
            return self.plan.noise(noise, seed, n, dtype)
        return prepare_noise(self.act, noise, seed, n, n_layers, dtype)

    def result(self, res, gb):
        return ChainGrad(*res, bias_grads=gb) if self.has_bias else res

    def kernel_outputs(self):
        """``outputs`` for the kernel builders: None for the full set (the
        kernels every other call uses), else the Outputs."""
        full = self.wanted == Outputs(bias_grads=self.has_bias)
        return None if full else self.wanted

    def keeps_activations(self):
        """True when the kernel needs an (N, L) ``out_gw`` (df/dw, or a_{k-1}
        kept between the sweeps for a gradient without it)."""
        w = self.wanted
        return w.weight_grads or w.input_grad or (self.has_bias and w.bias_grads)


def _chain(act, biases, n_layers, dtype, wanted=None):
    act, plan = layer_plan(act, biases is not None, n_layers)
    return _Chain(act, plan, biases, n_layers, dtype, wanted)


# -- streams ------------------------------------------------------------------

def _as_stream(cuda, stream):
    """A numba stream from a numba Stream, a torch/CuPy stream or a raw handle."""
    if stream is None or _simulated():
        return 0 if stream is None else _sim_stream(cuda, stream)
    if isinstance(stream, bool):
        raise TypeError("stream must be a CUDA stream, not a bool")
    from numba.cuda.cudadrv.driver import Stream

    if isinstance(stream, Stream):
        return stream
    handle = None
    if hasattr(stream, "__cuda_stream__"):  # CUDA stream protocol: (version, handle)
        handle = stream.__cuda_stream__()[1]
    elif hasattr(stream, "cuda_stream"):  # torch.cuda.Stream
        handle = stream.cuda_stream
    elif hasattr(stream, "ptr"):  # cupy.cuda.Stream
        handle = stream.ptr
    elif isinstance(stream, (int, np.integer)):
        handle = int(stream)
    if handle is None:
        raise TypeError(
            "stream must be a numba stream, a torch.cuda.Stream, a cupy stream, an object "
            f"with __cuda_stream__, or a raw cudaStream_t handle; got {type(stream).__name__}")
    return cuda.external_stream(int(handle))


def _sim_stream(cuda, stream):
    # The simulator runs synchronously and cannot wrap foreign handles; a numba
    # stream object (cuda.stream()) is accepted, as on a GPU.
    if isinstance(stream, (int, np.integer)) and not isinstance(stream, bool):
        return 0
    return stream


# -- device arrays in, device arrays out --------------------------------------

#: DLPack device types of GPU memory this backend reads in place (dlpack.h):
#: kDLCUDA, kDLCUDAManaged.  Pinned host memory (kDLCUDAHost) is a host array.
CUDA_DEVICES = frozenset({2, 13})


def is_device_array(obj):
    """True for arrays in GPU memory: ``__cuda_array_interface__`` (CuPy, torch,
    numba), a numba (or simulator) device array, or a ``__dlpack__`` exporter
    whose ``__dlpack_device__`` is CUDA (JAX, torch, CuPy)."""
    if hasattr(obj, "__cuda_array_interface__") or getattr(obj, "__cuda_ndarray__", False):
        return True
    return _dlpack_device_type(obj) in CUDA_DEVICES


def _dlpack_device_type(obj):
    if not hasattr(obj, "__dlpack__") or not hasattr(obj, "__dlpack_device__"):
        return None
    try:
        return int(obj.__dlpack_device__()[0])
    except Exception:
        return None


def _device_array(cuda, obj, what, stream=0):
    """A numba device array over ``obj``'s memory, no copy: numba's own as it
    is, then DLPack (the producer orders its work before ``stream``), then
    ``__cuda_array_interface__``."""
    if getattr(obj, "__cuda_ndarray__", False):
        return obj  # numba's own (or the simulator's) device array
    if _dlpack_device_type(obj) in CUDA_DEVICES:
        return _from_dlpack(cuda, obj, what, stream)
    try:
        return cuda.as_cuda_array(obj)
    except Exception as exc:
        raise TypeError(f"{what}: not a usable CUDA array ({exc})") from None


def _from_dlpack(cuda, obj, what, stream):
    # cuda.core (a numba-cuda dependency) calls obj.__dlpack__(stream=...) and
    # reads the capsule; numba then wraps the pointer, keeping the view alive
    try:
        from cuda.core.utils import StridedMemoryView

        view = StridedMemoryView.from_dlpack(obj, stream_ptr=_dlpack_stream(stream))
        dtype = np.dtype(view.dtype)
        strides = None if view.strides is None else tuple(
            s * dtype.itemsize for s in view.strides)
        desc = {"shape": tuple(view.shape), "strides": strides, "typestr": dtype.str,
                "data": (view.ptr, bool(view.readonly)), "version": 3}
        d = cuda.from_cuda_array_interface(desc, owner=view, sync=False)
    except Exception as exc:
        raise TypeError(f"{what}: its DLPack export cannot be read on the GPU "
                        f"({type(exc).__name__}: {exc})") from None
    d.gradkern_read_only = bool(view.readonly)  # numba's interface drops the flag
    return d


def _dlpack_stream(stream):
    """The DLPack ``stream`` integer of a numba stream (0: numba's default)."""
    handle = int(getattr(stream, "handle", stream) or 0)
    if handle == 0:  # DLPack's codes: 1 legacy default, 2 per-thread default
        from numba.cuda.core import config

        return 2 if config.CUDA_PER_THREAD_DEFAULT_STREAM else 1
    return handle


# -- results that export DLPack -----------------------------------------------

class DLPackExport:
    """The DLPack protocol for gradkern's result device arrays.

    Mixed into numba's device array class (:func:`exporting`): the arrays keep
    ``__cuda_array_interface__`` and everything numba offers, and gain
    ``__dlpack__``/``__dlpack_device__``, so ``torch.from_dlpack(r)``,
    ``cupy.from_dlpack(r)`` and ``jax.dlpack.from_dlpack(r)`` take them
    without a copy.  ``stream`` follows the protocol: the consumer's stream
    (None or 1: the legacy default stream, 2: the per-thread default stream,
    > 2: a handle; -1: no ordering); the consumer's later work waits for the
    stream these results were computed on (an event, no host synchronisation).
    On numba-cuda's simulator the memory is the host's: the device is kDLCPU.
    """

    def __dlpack_device__(self):
        if _simulated():
            return (1, 0)  # kDLCPU: the simulator's arrays are NumPy arrays
        return tuple(self._view().__dlpack_device__())

    def __dlpack__(self, *, stream=None, max_version=None, dl_device=None, copy=None):
        consumer = _check_consumer_stream(stream)
        if copy:
            raise BufferError("copy=True: gradkern's device arrays export their memory, "
                              "never a copy")
        if dl_device is not None and tuple(dl_device) != tuple(self.__dlpack_device__()):
            raise BufferError(f"dl_device={tuple(dl_device)}: the array is on "
                              f"{tuple(self.__dlpack_device__())}")
        if _simulated():
            return self._ary.__dlpack__(max_version=max_version)
        if consumer != -1:
            _order_after(self.stream, consumer)
        return self._view().__dlpack__(stream=-1, max_version=max_version)

    def _view(self):
        from cuda.core.utils import StridedMemoryView

        try:
            return StridedMemoryView.from_cuda_array_interface(self, stream_ptr=-1)
        except AttributeError as exc:  # a cuda-core too old to export
            raise BufferError(f"DLPack export needs cuda-core's StridedMemoryView ({exc}); "
                              "__cuda_array_interface__ still works") from None


def _check_consumer_stream(stream):
    if stream is None:
        return 1  # the protocol: None means the legacy default stream
    if isinstance(stream, bool) or not isinstance(stream, (int, np.integer)):
        raise TypeError(f"stream must be None or an int (DLPack), got {type(stream).__name__}")
    stream = int(stream)
    if stream == 0 or stream < -1:
        raise ValueError(f"stream={stream}: DLPack takes -1 (no ordering), 1 (legacy default "
                         "stream), 2 (per-thread default stream) or a stream handle; 0 is "
                         "ambiguous and disallowed")
    return stream


def _order_after(producer, consumer):
    """Work later queued on the ``consumer`` stream (a DLPack integer) waits
    for what ``producer`` (a numba stream, or 0) has queued so far."""
    cuda = _cuda()
    if consumer == _dlpack_stream(producer):
        return  # one stream: already in order
    event = cuda.event(timing=False)
    event.record(producer)
    event.wait(cuda.external_stream(consumer))


_EXPORTING = {}


def exporting(cuda, d):
    """The device array ``d`` (numba's, or the simulator's) as one that also
    exports ``__dlpack__``: the same memory, shape, strides and stream."""
    base = type(d)
    cls = _EXPORTING.get(base)
    if cls is None:
        # the mixin first, so that its __dlpack__ wins over the simulator's
        # pass-through to the wrapped NumPy array
        cls = _EXPORTING[base] = type("DeviceArray", (DLPackExport, base),
                                      {"__module__": __name__, "__doc__": DLPackExport.__doc__})
    if _simulated():
        return cls(d._ary, stream=d.stream)
    return cls(d.shape, d.strides, d.dtype, stream=d.stream, gpu_data=d.gpu_data)


def _new_device_array(cuda, shape, dtype, stream):
    return exporting(cuda, cuda.device_array(shape, dtype, stream=stream))


def _device_chain_grad(cuda, x, act, weights, biases, out, noise, seed, stream, wanted):
    d_x = _device_array(cuda, x, "x", stream)
    if d_x.ndim != 1:
        raise ValueError(f"x must be 1-D (N inputs), got shape {d_x.shape}")
    dtype = np.dtype(d_x.dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(
            f"a device x must be float32 or float64, got {dtype}: convert it on the device "
            "first (gradkern makes no host copy of device inputs)")
    n = d_x.shape[0]
    w = _small_host_weights(cuda, weights, dtype, stream)
    if is_device_array(biases):
        biases = _device_array(cuda, biases, "biases", stream).copy_to_host()
    chain = _chain(act, biases, w.shape[0], dtype, wanted)
    d_noise = _device_noise(cuda, chain, noise, seed, n, w.shape[0], dtype, stream)
    if out is not None:
        out_arrays(out, chain.wanted, chain.has_bias)  # None exactly where not wanted
    res, d_out = _device_out(cuda, out, n, w.shape[0], dtype, stream, chain.wanted)
    gb, d_gb = _device_bias_grads(cuda, chain, out, n, w.shape[0], dtype, stream)
    _check_no_overlap(d_x, d_noise, d_out, d_gb)
    _launch(cuda, chain, dtype, d_x, cuda.to_device(w, stream=stream), d_noise, d_out, stream,
            d_gb)
    return chain.result(res, gb)


def _device_bias_grads(cuda, chain, out, n, n_layers, dtype, stream):
    """(returned, device) arrays for df/db: ``out.bias_grads`` when given,
    else a new device array; (None, None) without biases."""
    if not (chain.has_bias and chain.wanted.bias_grads):
        return None, None
    arr = getattr(out, "bias_grads", None)
    if arr is None:
        d = _alloc(cuda, lambda: _new_device_array(cuda, (n, n_layers), dtype, stream),
                   dtype.itemsize * n * n_layers)
        return d, d
    if not is_device_array(arr):
        raise TypeError("x is a device array, so out.bias_grads must be one too, got "
                        f"{type(arr).__name__}")
    d = _device_array(cuda, arr, "out.bias_grads", stream)
    if d.shape != (n, n_layers) or np.dtype(d.dtype) != dtype:
        raise ValueError(f"out.bias_grads must have shape {(n, n_layers)} and dtype {dtype}, "
                         f"got {d.shape} {d.dtype}")
    if _read_only(d):
        raise ValueError("out.bias_grads is read-only")
    return arr, d


def _small_host_weights(cuda, weights, dtype, stream=0):
    # L weights are a handful of numbers: a device array of them is read back once
    if is_device_array(weights):
        weights = _device_array(cuda, weights, "weights", stream).copy_to_host()
    _, w, _ = prepare_inputs(np.zeros(0, dtype), weights)
    return w


def _device_noise(cuda, chain, noise, seed, n, n_layers, dtype, stream):
    if chain.stochastic and noise is not None and is_device_array(noise):
        d = _device_array(cuda, noise, "noise", stream)
        if d.shape != (n, n_layers) or np.dtype(d.dtype) != dtype:
            raise ValueError(f"noise must have shape (N, L) = {(n, n_layers)} and dtype {dtype}, "
                             f"got {d.shape} {d.dtype}")
        return d
    # host noise, or slopes drawn on the host exactly as the CPU backend draws
    # them (same seed, same slopes, same results), then copied: N*L values
    host = chain.noise(noise, seed, n, n_layers, dtype)
    if host.size == 0:
        host = np.zeros((1, 1), dtype)  # the kernel never reads it
    return _alloc(cuda, lambda: cuda.to_device(host, stream=stream), host.nbytes)


def _device_out(cuda, out, n, n_layers, dtype, stream, wanted=Outputs()):
    # (returned, device) arrays; None for a result not wanted
    shapes = ChainGrad((n,), (n, n_layers), (n,))
    if out is None:
        nbytes = dtype.itemsize * n * sum(s[1] if len(s) == 2 else 1
                                          for s, on in zip(shapes, wanted) if on)
        arrays = _alloc(cuda, lambda: [_new_device_array(cuda, s, dtype, stream) if on else None
                                       for s, on in zip(shapes, wanted)], nbytes)
        return ChainGrad(*arrays), ChainGrad(*arrays)
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError("out must be a ChainGrad or a tuple (output, weight_grads, input_grad)")
    d_out = []
    for name, arr, shape, on in zip(ChainGrad._fields, out, shapes, wanted):
        if not on:
            d_out.append(None)
            continue
        if not is_device_array(arr):
            raise TypeError(f"x is a device array, so out.{name} must be one too "
                            f"(anything with __cuda_array_interface__), got {type(arr).__name__}")
        d = _device_array(cuda, arr, f"out.{name}", stream)
        if d.shape != shape or np.dtype(d.dtype) != dtype:
            raise ValueError(f"out.{name} must have shape {shape} and dtype {dtype}, "
                             f"got {d.shape} {d.dtype}")
        if _read_only(d):
            raise ValueError(f"out.{name} is read-only")
        d_out.append(d)
    return ChainGrad(*(a if on else None for a, on in zip(out, wanted))), ChainGrad(*d_out)


def _span(d):
    """[first, last) byte addresses a device array can touch."""
    cai = d.__cuda_array_interface__
    start = cai["data"][0]
    if d.size == 0:
        return start, start
    reach = [step * (extent - 1) for extent, step in zip(d.shape, d.strides)]
    lo = sum(r for r in reach if r < 0)
    hi = sum(r for r in reach if r > 0)
    return start + lo, start + hi + np.dtype(d.dtype).itemsize


def _read_only(d):
    if getattr(d, "gradkern_read_only", False):  # a DLPack export flagged read-only
        return True
    if hasattr(d, "_ary"):  # the simulator's device array wraps a NumPy array
        return not d._ary.flags.writeable
    return bool(d.__cuda_array_interface__["data"][1])


def _overlap(a, b):
    if hasattr(a, "_ary") and hasattr(b, "_ary"):  # simulator
        return np.may_share_memory(a._ary, b._ary)
    (a0, a1), (b0, b1) = _span(a), _span(b)
    return a0 < b1 and b0 < a1


def _check_no_overlap(d_x, d_noise, d_out, d_gb=None):
    pairs = [(n, d) for n, d in zip(OUTPUT_NAMES, (*d_out, d_gb)) if d is not None]
    names, outs = [n for n, _ in pairs], [d for _, d in pairs]
    for name, d in zip(names, outs):
        if _overlap(d, d_x) or _overlap(d, d_noise):
            raise ValueError(f"out.{name} overlaps an input array")
    for i in range(len(outs)):
        for j in range(i):
            if _overlap(outs[i], outs[j]):
                raise ValueError(f"out.{names[i]} overlaps out.{names[j]}")


# -- NumPy in, NumPy out, in chunks ------------------------------------------

def chunk_samples(n, n_layers, dtype, stochastic, free_bytes, has_bias=False):
    """Samples per chunk: :data:`CHUNK_SAMPLES`, or what fits the free memory.

    A sample needs x, output and input_grad (3 values) plus its weight_grads
    row (L) and, for RReLU training, its noise row (L), with biases its
    bias_grads row (L): 8 bytes x (3 + 2L) in float64 per sample for RReLU
    training, e.g. 72 bytes at L = 3, so 80 GB free hold a
    0.7 x 80e9 / 72 = 780-million-sample chunk.
    """
    if CHUNK_SAMPLES is not None:
        return max(1, int(CHUNK_SAMPLES))
    per_sample = np.dtype(dtype).itemsize * (3 + n_layers * (1 + bool(stochastic)
                                                              + bool(has_bias)))
    fit = int(FREE_MEMORY_SHARE * free_bytes) // per_sample
    return max(1, min(n, fit))


def _free_bytes(cuda):
    free, _ = cuda.current_context().get_memory_info()
    # the simulator reports infinite memory: take the host's numbers as its limit
    return int(min(free, 2**62))


def _host_chain_grad(cuda, x, act, weights, biases, out, noise, seed, stream, wanted):
    if out is not None and isinstance(out, tuple) and any(
            a is not None and is_device_array(a) for a in out):
        raise TypeError("x is a NumPy array, so out= must be NumPy arrays too; "
                        "pass x as a device array to get results on the device")
    # L weights and biases, and noise: small, or the caller's choice to mix;
    # read back to the host (the cpu backend refuses device arrays)
    if noise is not None and is_device_array(noise):
        noise = _device_array(cuda, noise, "noise", stream).copy_to_host()
    if is_device_array(biases):
        biases = _device_array(cuda, biases, "biases", stream).copy_to_host()
    if is_device_array(weights):
        weights = _device_array(cuda, weights, "weights", stream).copy_to_host()
    caller = (x, weights, noise, biases)  # as passed: out= may overlap none of them either
    x, w, dtype = prepare_inputs(x, weights)
    n, n_layers = x.shape[0], w.shape[0]
    chain = _chain(act, biases, n_layers, dtype, wanted)
    noise_arr = chain.noise(noise, seed, n, n_layers, dtype)
    inputs = (x, w, noise_arr) + caller
    full, _ = prepare_wanted_out(out, chain.wanted, n, n_layers, dtype, inputs, chain.has_bias)
    res, gb = ChainGrad(*full), full.bias_grads
    if n == 0:
        return chain.result(res, gb)
    d_w = cuda.to_device(w, stream=stream)
    chunk = min(n, chunk_samples(n, n_layers, dtype, chain.stochastic, _free_bytes(cuda),
                                 chain.has_bias))
    for attempt in range(OOM_RETRIES + 1):
        try:
            _run_chunks(cuda, chain, dtype, x, d_w, noise_arr, res, gb, chunk, stream)
            return chain.result(res, gb)
        except GPUOutOfMemoryError:
            if attempt == OOM_RETRIES or chunk == 1:
                raise
            chunk = max(1, chunk // 2)
    return chain.result(res, gb)


def _run_chunks(cuda, chain, dtype, x, d_w, noise_arr, res, gb, chunk, stream):
    n, n_layers = x.shape[0], d_w.shape[0]
    stochastic = chain.stochastic
    wanted, keep = chain.wanted, chain.keeps_activations()
    write_gb = chain.has_bias and wanted.bias_grads
    nbytes = dtype.itemsize * chunk * (
        n_layers * (keep + stochastic + write_gb) + 1 + wanted.output + wanted.input_grad)

    def allocate():
        # results not wanted get no buffer (and no copy back); without
        # weight_grads its buffer stays as the kernel's a_{k-1} scratch
        bufs = ChainGrad(cuda.device_array(chunk, dtype, stream=stream) if wanted.output else None,
                         cuda.device_array((chunk, n_layers), dtype, stream=stream) if keep
                         else None,
                         cuda.device_array(chunk, dtype, stream=stream) if wanted.input_grad
                         else None)
        d_x = cuda.device_array(chunk, dtype, stream=stream)
        shape = (chunk, n_layers) if stochastic else (1, 1)
        d_noise = cuda.device_array(shape, dtype, stream=stream)
        d_gb = cuda.device_array((chunk, n_layers), dtype, stream=stream) \
            if write_gb else None
        return d_x, d_noise, bufs, d_gb

    d_x, d_noise, bufs, d_gb = _alloc(cuda, allocate, nbytes)
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        m = stop - start
        d_x[:m].copy_to_device(np.ascontiguousarray(x[start:stop]), stream=stream)
        dn = d_noise
        if stochastic:
            dn = d_noise[:m]
            dn.copy_to_device(np.ascontiguousarray(noise_arr[start:stop]), stream=stream)
        views = ChainGrad(*(None if d is None else d[:m] for d in bufs))
        gb_view = d_gb[:m] if write_gb else None
        _launch(cuda, chain, dtype, d_x[:m], d_w, dn, views, stream, gb_view)
        for d, host in zip(views, res):
            if host is not None:
                _to_host(d, host[start:stop], stream)
        if write_gb:
            _to_host(gb_view, gb[start:stop], stream)
    _synchronize(stream)


def _synchronize(stream):
    if not isinstance(stream, int):  # 0: the default stream, copies already synchronous
        stream.synchronize()


def _to_host(d, host, stream):
    if host.flags.c_contiguous:
        d.copy_to_host(host, stream=stream)
    else:  # e.g. out.weight_grads a strided view: via a contiguous buffer
        buf = d.copy_to_host()
        _synchronize(stream)
        host[...] = buf


def _alloc(cuda, allocate, nbytes):
    """Run ``allocate()``; a CUDA out-of-memory error becomes GPUOutOfMemoryError."""
    try:
        return allocate()
    except Exception as exc:
        if not _is_oom(exc):
            raise
        try:
            free = f"{_free_bytes(cuda) / 2**30:.2f} GiB free"
        except Exception:
            free = "free memory unknown"
        raise GPUOutOfMemoryError(
            f"GPU out of memory: this call needs {nbytes / 2**30:.2f} GiB on the device "
            f"({free}). Pass NumPy arrays to have gradkern process them in chunks, or "
            "split x yourself.") from None


def _is_oom(exc):
    code = getattr(exc, "code", None)
    name = str(getattr(code, "name", code))
    return "OUT_OF_MEMORY" in name or code == 2 or "out of memory" in str(exc).lower()


# -- launch -------------------------------------------------------------------

def _launch(cuda, chain, dtype, d_x, d_w, d_noise, d_out, stream, d_gb=None):
    from .cuda_kernel import get_kernel, get_layered_kernel, launch_config

    n = d_x.shape[0]
    if n == 0:
        return
    d_out = _kernel_out(cuda, chain, d_out, n, d_w.shape[0], dtype, stream)
    plan, outputs = chain.plan, chain.kernel_outputs()
    if plan is None:
        act = chain.act
        kernel = get_kernel(act.ops(), dtype, per_sample_noise=act.stochastic, outputs=outputs)
        blocks, threads = launch_config(kernel, n)
        kernel[blocks, threads, stream](d_x, d_w, act.kernel_params(dtype), d_noise, *d_out)
        return
    kernel = get_layered_kernel(plan, dtype, outputs)
    blocks, threads = launch_config(kernel, n)
    if d_gb is None:
        d_gb = cuda.device_array((1, 1), dtype, stream=stream)  # never written
    tables = [cuda.to_device(a, stream=stream)
              for a in (chain.b, plan.slot_index, plan.kernel_params(dtype))]
    kernel[blocks, threads, stream](d_x, d_w, *tables, d_noise, *d_out, d_gb)



def _kernel_out(cuda, chain, d_out, n, n_layers, dtype, stream):
    """The three arrays the kernel takes: a 1-element placeholder for a result
    not written, and an (N, L) scratch in weight_grads' place when a gradient
    without it needs the a_{k-1} kept there."""
    def placeholder(shape):
        return cuda.device_array(shape, dtype, stream=stream)

    y, gw, gx = d_out
    if gw is None:
        gw = _alloc(cuda, lambda: placeholder((n, n_layers)),
                    dtype.itemsize * n * n_layers) if chain.keeps_activations() \
            else placeholder((1, 1))
    return (placeholder(1) if y is None else y, gw, placeholder(1) if gx is None else gx)
