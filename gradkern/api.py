"""Public entry point: :func:`chain_grad`, input checking, dtype rules, backends.

Backends are modules named in :data:`BACKENDS` and imported on first use, so
``import gradkern`` never loads numba.cuda or a native library.  Each exposes
``chain_grad(x, act, weights, *, out, noise, seed[, stream]) -> ChainGrad`` taking the
caller's raw x/weights/out and a resolved :class:`Activation`; the NumPy
helpers below (``prepare_*``) are theirs to reuse.
"""
import importlib
import inspect
import os
from typing import NamedTuple

import numpy as np

from .errors import BackendUnavailableError
from .activations import Activation, activation as _activation, from_torch, is_torch_module
from .dists import rrelu_slopes
from .kernels_cpu import empty_noise

__all__ = ["ChainGrad", "chain_grad", "resolve_activation", "BACKENDS", "BackendUnavailableError"]

#: backend name -> module implementing it (relative to the gradkern package)
BACKENDS = {
    "cpu": ".backend_cpu",
    "cuda": ".backend_cuda",  # numba-cuda, the `cuda` extra
    "auto": ".backend_auto",  # cuda when a GPU is usable, else cpu
    "native": ".backend_native",  # cuda/ C++ on the host (g++, OpenMP): make -C cuda
    "native-cuda": ".backend_native_cuda",  # cuda/ CUDA C++ (nvcc), needs a GPU
}


class _ChainGradFields(NamedTuple):
    output: np.ndarray  #: (N,) f(x)
    weight_grads: np.ndarray  #: (N, L) column i is df/dw_{i+1}, per sample
    input_grad: np.ndarray  #: (N,) df/dx


class ChainGrad(_ChainGradFields):
    """Results of :func:`chain_grad` for N inputs and L layers.

    A named tuple ``(output, weight_grads, input_grad)``; ``backend`` names the
    backend that computed it (useful with ``backend="auto"``).
    """

    backend = None


def resolve_activation(act):
    """An :class:`Activation` from an Activation, a name or a torch.nn module."""
    if isinstance(act, Activation):
        return act
    if isinstance(act, str):
        return _activation(act)
    if is_torch_module(act):
        return from_torch(act)
    raise TypeError(
        "activation must be a gradkern Activation, a torch.nn class name such as "
        f"'Tanh', or a torch.nn activation module; got {type(act).__name__}"
    )


def _is_torch_tensor(value):
    return hasattr(value, "detach") and hasattr(value, "cpu")


def _as_real_array(value, what):
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{what} is a numpy masked array, and gradkern would ignore its mask: "
                        f"pass {what}.compressed() or {what}.filled(value) instead")
    if _is_torch_tensor(value):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{what} must be array-like of real numbers: {exc}") from None
    if arr.dtype.kind not in "fiu":
        raise TypeError(
            f"{what} must hold real numbers (float or int; integers beyond 64 bits are not "
            f"supported), got dtype {arr.dtype}"
        )
    return arr


def compute_dtype(x):
    """float32 stays float32, float64 stays float64, any other real -> float64.

    By kind and size, in either byte order: ``>f4`` is float32.
    """
    if x.dtype.kind == "f" and x.dtype.itemsize == 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _to_dtype(arr, dtype, what):
    """``arr`` as a contiguous, aligned, native ``dtype`` array (a copy unless it
    already is one); ValueError if a finite value overflows ``dtype``."""
    with np.errstate(over="ignore"):
        out = np.require(arr, dtype=dtype, requirements=("C", "A"))
    # only a narrowing float cast can overflow (float64 -> float32, longdouble ->
    # float64); ints and float16 always fit
    if arr.dtype.kind == "f" and arr.dtype.itemsize > dtype.itemsize:
        overflow = np.isfinite(arr) & ~np.isfinite(out)
        if overflow.any():
            value = arr[overflow].flat[0]
            raise ValueError(f"{what} holds {value!s}, which overflows {dtype} (largest "
                             f"{dtype}: {np.finfo(dtype).max:.6g}; torch refuses it too)")
    return out


def prepare_inputs(x, weights):
    x = _as_real_array(x, "x")
    if x.ndim != 1:
        raise ValueError(f"x must be 1-D (N inputs), got shape {x.shape}")
    dtype = compute_dtype(x)
    if x.dtype != dtype:
        # a copy: the caller's array is never written.  Strided x of the right
        # dtype goes to the kernels as it is.
        x = _to_dtype(x, dtype, "x")
    w = _as_real_array(weights, "weights")
    if w.ndim != 1 or w.shape[0] < 1:
        raise ValueError(f"weights must be 1-D with at least one layer, got shape {w.shape}")
    w = _to_dtype(w, dtype, "weights")
    return x, w, dtype


def _fresh_seed():
    """A seed nobody chose: 64 bits from the operating system."""
    return int.from_bytes(os.urandom(8), "little")


def prepare_noise(act, noise, seed, n, n_layers, dtype):
    if not act.stochastic:
        for key, value in (("noise", noise), ("seed", seed)):
            if value is not None:
                raise ValueError(f"{key}= is only for RReLU in training mode (the slopes it "
                                 f"draws per sample and layer), not {act!r}")
        return empty_noise(dtype)
    if noise is None:
        # the slopes of samples 0..N-1 of a sweep with this seed (gk.rrelu_slopes)
        seed = _fresh_seed() if seed is None else seed
        return rrelu_slopes(n, n_layers, seed, act.params["lower"], act.params["upper"],
                            dtype=dtype)
    if seed is not None:
        raise ValueError("pass noise= or seed=, not both: seed= draws the slopes that noise= "
                         "gives")
    noise = _as_real_array(noise, "noise")
    if noise.shape != (n, n_layers):
        raise ValueError(f"noise must have shape (N, L) = {(n, n_layers)}, got {noise.shape}")
    return _to_dtype(noise, dtype, "noise")


def _host_memory(value):
    """A NumPy array over the caller's memory behind ``value``, or None when
    there is none to overlap (lists, scalars, device arrays)."""
    if isinstance(value, np.ndarray):
        return value
    try:
        if _is_torch_tensor(value):
            return value.detach().numpy() if value.device.type == "cpu" else None
        if hasattr(value, "__array_interface__"):
            return np.asarray(value)
        return np.asarray(memoryview(value))  # bytearray, array.array, ...
    except Exception:
        return None


def prepare_out(out, n, n_layers, dtype, inputs):
    """The arrays to write the results into (new ones if ``out`` is None).

    ``inputs`` are every input the call reads, as the caller passed them and
    as converted: an ``out`` array overlapping any of them is refused, so
    neither the caller's arrays nor the kernel's inputs are ever written.
    """
    if out is None:
        return ChainGrad(
            np.empty(n, dtype), np.empty((n, n_layers), dtype), np.empty(n, dtype)
        )
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError("out must be a ChainGrad or a tuple (output, weight_grads, input_grad)")
    shapes = ChainGrad((n,), (n, n_layers), (n,))
    out = ChainGrad(*(_out_array(name, arr, shape, dtype)
                      for name, arr, shape in zip(ChainGrad._fields, out, shapes)))
    memory = [m for m in map(_host_memory, inputs) if m is not None]
    for name, arr in zip(ChainGrad._fields, out):
        if any(np.may_share_memory(arr, m) for m in memory):
            raise ValueError(f"out.{name} overlaps an input array")
    for i in range(3):
        for j in range(i):
            if np.may_share_memory(out[i], out[j]):
                raise ValueError(f"out.{out._fields[i]} overlaps out.{out._fields[j]}")
    return out


def _out_array(name, arr, shape, dtype):
    if isinstance(arr, np.ma.MaskedArray):
        raise TypeError(f"out.{name} is a numpy masked array, and gradkern would ignore its "
                        "mask: pass a plain numpy array")
    if not isinstance(arr, np.ndarray):
        raise TypeError(f"out.{name} must be a numpy array, got {type(arr).__name__}")
    if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(
            f"out.{name} must have shape {shape} and dtype {dtype}, "
            f"got {arr.shape} {arr.dtype}"
        )
    if not arr.flags.writeable:
        raise ValueError(f"out.{name} is read-only")
    # other ndarray subclasses (np.memmap, ...) are written through a plain view
    return arr if type(arr) is np.ndarray else arr.view(np.ndarray)


def chain_grad(x, activation, weights, *, backend="cpu", out=None, noise=None, seed=None,
               stream=None):
    """Output, df/dx and every df/dw_i of the chain f = a(w_L*a(...a(w_1*x))).

    Parameters
    ----------
    x : array_like, shape (N,)
        Scalar inputs.  float32 in -> float32 out, float64 -> float64 (either
        byte order); any other real dtype (ints, float16) is converted to
        float64.  May be empty or non-contiguous; it is never modified.  Not
        a numpy masked array (TypeError: the mask would be ignored).
    activation : Activation, str or torch.nn.Module
        The activation between layers: ``gradkern.activation(...)``, a
        ``torch.nn`` class name (case-insensitive), or a torch.nn activation
        module instance (its parameters are read).
    weights : array_like, shape (L,)
        One weight per layer, L >= 1, any real values; rounded to x's dtype
        (a finite weight that overflows it is a ValueError, as in torch).
    backend : str
        Where to compute: one of ``gradkern.BACKENDS``: "cpu" (Numba
        parallel), "cuda" (numba-cuda on an NVIDIA GPU; x may then also be a
        device array, see the README's "CUDA backend"), "auto" (cuda when a GPU
        is usable, else cpu; ``result.backend`` says which ran), "native" (the
        C++ library of ``cuda/`` on the host) and "native-cuda" (its CUDA
        build); both native ones need ``make -C cuda`` first.
    out : ChainGrad or tuple of 3 arrays, optional
        Arrays to write the results into (shapes (N,), (N, L), (N,), dtype as
        above); returned.  Device arrays when x is one.  None of them may
        overlap another or any input (as passed, or converted); numpy masked
        arrays are refused (their mask would be ignored).
    noise : array_like, shape (N, L), optional
        RReLU in training mode only: the slope of sample n at layer k, used
        where that layer's pre-activation is <= 0.  Pass the noise torch drew to
        reproduce torch exactly; without it, slopes are drawn from
        U[lower, upper] by ``seed``.  Any other activation: a ValueError.
    seed : int, optional
        RReLU in training mode only (any other activation: a ValueError), and
        not with ``noise``: the slopes are
        ``gradkern.rrelu_slopes(N, L, seed, lower, upper, dtype=...)``, the
        Philox stream of samples 0..N-1 of a sweep with this seed, so
        ``chain_grad(gradkern.draw(dist, N, seed), "RReLU", w, seed=seed)``
        reproduces that sweep's samples.  0 <= seed < 2**64; None (default)
        takes a fresh seed from ``os.urandom``: other slopes at every call.
    stream : optional
        CUDA backends only: the stream to work on (a numba stream, a
        ``torch.cuda.Stream``, a CuPy stream or a raw handle).  Passing one to
        the cpu backend is a TypeError.

    Returns
    -------
    ChainGrad
        ``output`` (N,), ``weight_grads`` (N, L) with column i = df/dw_{i+1},
        ``input_grad`` (N,).

    Notes
    -----
    Derivatives follow PyTorch 2.13's CPU kernels, including the value at every
    kink; a NaN pre-activation gives NaN gradients.
    """
    act = resolve_activation(activation)
    module = backend_module(backend)
    kwargs = {}
    if stream is not None:
        if "stream" not in inspect.signature(module.chain_grad).parameters:
            raise TypeError(f"backend {backend!r} does not take stream= (it is for GPU backends)")
        kwargs["stream"] = stream
    return module.chain_grad(x, act, weights, out=out, noise=noise, seed=seed, **kwargs)


def backend_module(name):
    """The module implementing backend ``name`` (ValueError if unknown)."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name], __package__)
