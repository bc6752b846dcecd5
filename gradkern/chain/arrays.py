"""The arrays of a chain call: dtype rules, input checks, the result tuple.

Every backend takes the caller's raw ``x``, ``weights``, ``noise`` and
``out`` and runs them through these helpers, so the rules are the same on the
CPU, the GPU and the native libraries: float32 stays float32 and float64
stays float64 (by kind and size, either byte order), any other real dtype is
computed in float64, bad input is a ValueError or TypeError naming the
argument, and no output array may overlap anything the caller passed.

Arrays of other libraries are read in place: through ``__dlpack__`` first
(the array API's interchange: torch, JAX, NumPy >= 1.22), else
``__array_interface__``; ``out=`` arrays are written through the same views.
Device memory is refused here by name (the cuda backend reads it, :mod:`.cuda`):
copying it to the host behind the caller's back would hide a transfer.
"""
import os
from typing import NamedTuple

import numpy as np

from ..stream.dists import rrelu_slopes
from .core import empty_noise

__all__ = ["ChainGrad", "compute_dtype", "prepare_inputs", "prepare_noise", "prepare_out",
           "prepare_bias_grads"]


class _ChainGradFields(NamedTuple):
    output: np.ndarray  #: (N,) f(x)
    weight_grads: np.ndarray  #: (N, L) column i is df/dw_{i+1}, per sample
    input_grad: np.ndarray  #: (N,) df/dx


class ChainGrad(_ChainGradFields):
    """Results of :func:`chain_grad` for N inputs and L layers.

    A named tuple ``(output, weight_grads, input_grad)``; ``backend`` names the
    backend that computed it (useful with ``backend="auto"``), and
    ``bias_grads`` is the (N, L) array of df/db_{k+1} of a chain with biases
    (None without).  Not a fourth field, so that ``y, gw, gx = res`` keeps
    working whether or not the chain has biases.
    """

    backend = None
    bias_grads = None  #: (N, L) column k is df/db_{k+1}, per sample; None without biases

    def __new__(cls, output, weight_grads, input_grad, bias_grads=None):
        self = super().__new__(cls, output, weight_grads, input_grad)
        if bias_grads is not None:
            self.bias_grads = bias_grads
        return self


def _is_torch_tensor(value):
    return hasattr(value, "detach") and hasattr(value, "cpu")


#: DLPack device types (dlpack.h's DLDeviceType) whose memory the host reads:
#: kDLCPU, kDLCUDAHost (pinned), kDLROCMHost, kDLCUDAManaged
HOST_DEVICES = frozenset({1, 3, 11, 13})
_DEVICE_NAMES = {2: "CUDA", 4: "OpenCL", 7: "Vulkan", 8: "Metal", 9: "VPI", 10: "ROCm",
                 12: "ext_dev", 14: "oneAPI", 15: "WebGPU", 16: "Hexagon", 17: "MAIA"}


def _device_memory(value):
    """A description of the device memory ``value`` lives in ("CUDA device 0"),
    or None for host memory and for objects that say nothing."""
    if hasattr(value, "__cuda_array_interface__"):
        return "CUDA device (it has __cuda_array_interface__)"
    if hasattr(value, "__dlpack_device__"):
        try:
            kind, index = value.__dlpack_device__()
        except Exception:  # torch's meta tensors, say: np.from_dlpack will tell
            return None
        if int(kind) not in HOST_DEVICES:
            return f"{_DEVICE_NAMES.get(int(kind), f'DLPack type {int(kind)}')} device {index}"
    return None


def _from_dlpack(value, what):
    """NumPy's zero-copy view of a host array exported through ``__dlpack__``."""
    if _is_torch_tensor(value):
        value = value.detach()  # a tensor that requires grad refuses export, not its data
    try:
        return np.from_dlpack(value)
    except BufferError as exc:  # strides NumPy cannot express, an export refused
        raise ValueError(f"{what}: its DLPack export cannot be read ({exc}); pass a "
                         "contiguous array") from None
    except Exception as exc:  # a dtype NumPy lacks (bfloat16), ...
        raise TypeError(f"{what}: its DLPack export cannot be read as a NumPy array "
                        f"({type(exc).__name__}: {exc})") from None


def _host_view(value, what):
    """``value`` as a NumPy array over the caller's memory where it is one
    (NumPy arrays, ``__dlpack__`` and ``__array_interface__`` exporters: torch
    and JAX CPU arrays, NumPy >= 1.22's own); other array-likes
    (lists, scalars) converted.  TypeError for device memory: the CPU cannot
    read it, and copying it to the host behind the caller's back would hide a
    device-to-host transfer."""
    if isinstance(value, np.ndarray):
        return value
    device = _device_memory(value)
    if device is not None:
        raise TypeError(f"{what} lives in {device} memory, which the CPU cannot read: use "
                        "backend='cuda', or copy it to the host first (x.cpu(), "
                        "cupy.asnumpy(x), ...)")
    if hasattr(value, "__dlpack__"):
        return _from_dlpack(value, what)
    try:
        return np.asarray(value)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{what} must be array-like of real numbers: {exc}") from None


def _as_real_array(value, what):
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{what} is a numpy masked array, and gradkern would ignore its mask: "
                        f"pass {what}.compressed() or {what}.filled(value) instead")
    arr = _host_view(value, what)
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
                raise ValueError(f"{key}= is only for an activation that draws a slope per "
                                 f"sample and layer (RReLU in training mode), not {act!r}")
        return empty_noise(dtype)
    if noise is None:
        # the slopes of samples 0..N-1 of a sweep with this seed (gk.rrelu_slopes)
        seed = _fresh_seed() if seed is None else seed
        lower, upper = act.noise_bounds()
        return rrelu_slopes(n, n_layers, seed, lower, upper, dtype=dtype)
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
    if not (hasattr(value, "__dlpack__") or hasattr(value, "__array_interface__")):
        try:
            return np.asarray(memoryview(value))  # bytearray, array.array, ...
        except Exception:
            return None
    try:
        return _host_view(value, "value")
    except (TypeError, ValueError):
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
    what = f"out.{name}"
    if isinstance(arr, np.ma.MaskedArray):
        raise TypeError(f"{what} is a numpy masked array, and gradkern would ignore its "
                        "mask: pass a plain numpy array")
    arr = _writable_host_view(arr, what)
    if arr.shape != shape or arr.dtype != dtype:
        raise ValueError(
            f"{what} must have shape {shape} and dtype {dtype}, "
            f"got {arr.shape} {arr.dtype}"
        )
    if not arr.flags.writeable:
        raise ValueError(f"{what} is read-only")
    # other ndarray subclasses (np.memmap, ...) are written through a plain view
    return arr if type(arr) is np.ndarray else arr.view(np.ndarray)


def _writable_host_view(arr, what):
    """A NumPy view of the caller's ``out`` array, written in place: a NumPy
    array, or a host array exporting ``__dlpack__`` or ``__array_interface__``
    (a torch CPU tensor, say); never a converted copy, whose results the caller
    would not see."""
    if isinstance(arr, np.ndarray):
        return arr
    if not (hasattr(arr, "__dlpack__") or hasattr(arr, "__array_interface__")
            or _device_memory(arr)):
        raise TypeError(f"{what} must be a numpy array or a host array exporting __dlpack__ "
                        f"or __array_interface__ (a torch CPU tensor, ...), got "
                        f"{type(arr).__name__}")
    if getattr(arr, "requires_grad", False):
        raise ValueError(f"{what} is a tensor that requires grad: writing into it would "
                         "bypass autograd (torch refuses in-place writes to it too); pass "
                         "the tensor's .detach() to write into its memory")
    return _host_view(arr, what)


def prepare_bias_grads(out, res, n, n_layers, dtype, inputs):
    """The (N, L) array for df/db: ``out.bias_grads`` when ``out`` has one (a
    ChainGrad from an earlier call with biases), else a new one.  The same
    checks as :func:`prepare_out`'s, against the inputs and ``res``'s arrays."""
    arr = getattr(out, "bias_grads", None)
    if arr is None:
        return np.empty((n, n_layers), dtype)
    arr = _out_array("bias_grads", arr, (n, n_layers), dtype)
    memory = [m for m in map(_host_memory, inputs) if m is not None]
    if any(np.may_share_memory(arr, m) for m in memory):
        raise ValueError("out.bias_grads overlaps an input array")
    for name, other in zip(ChainGrad._fields, res):
        if np.may_share_memory(arr, other):
            raise ValueError(f"out.bias_grads overlaps out.{name}")
    return arr
