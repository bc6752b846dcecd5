"""ctypes bindings to the native libraries built from ``cuda/`` (``make -C cuda``).

Two libraries share one C API (``cuda/gradkern.h``):

- ``libgradkern_host.so`` (g++, OpenMP): backend ``"native"``, runs anywhere;
- ``libgradkern_cuda.so`` (nvcc): backend ``"native-cuda"``, needs an NVIDIA GPU.

Both are looked up in ``cuda/build/`` of the source tree this package was
installed from (editable install), or at the path in ``GRADKERN_NATIVE_LIB`` /
``GRADKERN_NATIVE_CUDA_LIB``.  Activations cross the ABI as the ``gk_activation``
enum.  gradkern keeps no copy of its numbers: on load it reads the library's
own (number, name) pairs (``gk_activation_name``) and maps its activations by
name, so an activation the library lacks (a newer gradkern, an older build) is
a :class:`NativeLibraryError` naming it, for that activation only.  The
libraries' parameter slots are checked against the registry's by the tests
(``gk_default_params_*`` against ``kernel_params``), not here: this layer does
not import the registry.

The C API computes the plain chain only: one activation for every layer, no
biases.  A chain with biases or with an activation per layer is a
:class:`~gradkern.errors.BackendUnavailableError` naming what is missing
(``backend="cpu"`` and ``"cuda"`` run both; ``"auto"`` never picks a native
backend).  Adding them would change the C ABI of ``cuda/gradkern.h`` (a bias
array, a per-layer activation table) and every kernel of ``cuda/``.
"""
import ctypes
import os
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError
from .arrays import prepare_inputs, prepare_noise, prepare_out
from .outputs import OUTPUT_NAMES, resolve_outputs
from .layers import layer_plan

__all__ = ["NativeLibraryError", "NativeUnsupportedError", "library_path", "load", "activation_ids", "chain_grad",
           "chain_grad_host", "chain_grad_cuda"]

GK_OK, GK_ERR_NO_DEVICE, GK_ERR_CUDA = 0, 3, 4

#: the source tree's cuda/ folder (exists for an editable install or a checkout)
CUDA_DIR = Path(__file__).resolve().parents[2] / "cuda"

_KINDS = {
    # backend -> (library file, environment variable, entry-point prefix, make target)
    "native": ("libgradkern_host.so", "GRADKERN_NATIVE_LIB", "gk_chain_grad", "host"),
    "native-cuda": ("libgradkern_cuda.so", "GRADKERN_NATIVE_CUDA_LIB", "gk_cuda_chain_grad_host",
                    "cuda"),
}


class NativeLibraryError(BackendUnavailableError):
    """A native backend cannot run: library not built, stale, or no GPU."""


def library_path(backend):
    """Where ``backend``'s library is expected (the env var wins)."""
    filename, env, _, _ = _KINDS[backend]
    return Path(os.environ.get(env) or CUDA_DIR / "build" / filename)


_LOADED = {}  # (backend, path) -> (ctypes.CDLL, {activation name: gk_activation number})

#: the most numbers read from a library: its table ends at the first NULL name
#: (the enum is dense from 0); the bound only guards against a broken build
_MAX_ACTIVATIONS = 4096


def _build_hint(backend):
    filename, env, _, _ = _KINDS[backend]
    cuda = str(CUDA_DIR) if CUDA_DIR.is_dir() else "cuda"
    if backend == "native":
        how = f"`make -C {cuda}` (or `make -C {cuda} host`: g++ only, no CUDA needed)"
    else:
        how = f"`make -C {cuda}` (needs nvcc; the library runs only on an NVIDIA GPU)"
    return f"build it with {how}, or set {env} to a built {filename}"


def _make_command():
    return f"`make -C {CUDA_DIR if CUDA_DIR.is_dir() else 'cuda'}`"


def load(backend):
    """The loaded, checked library for ``backend`` ("native" or "native-cuda")."""
    return _load(backend)[0]


def activation_ids(backend):
    """``{activation name: gk_activation number}`` as ``backend``'s library
    reports them (``gk_activation_name``), read once per library."""
    return dict(_load(backend)[1])


def _load(backend):
    path = library_path(backend)
    loaded = _LOADED.get((backend, path))
    if loaded is not None:
        return loaded
    if not path.is_file():
        raise NativeLibraryError(
            f"backend {backend!r} needs the native library {path}, which is not built; "
            + _build_hint(backend)
        )
    try:
        lib = ctypes.CDLL(str(path))
    except OSError as exc:
        raise NativeLibraryError(f"backend {backend!r}: cannot load {path}: {exc}; "
                                 + _build_hint(backend)) from None
    try:
        _declare(lib, backend)
    except AttributeError as exc:  # ctypes: "undefined symbol: gk_..."
        raise NativeLibraryError(f"backend {backend!r}: {path} is not a gradkern library of "
                                 f"this version ({exc}); " + _build_hint(backend)) from None
    loaded = _LOADED[(backend, path)] = (lib, _read_ids(lib, path))
    return loaded


def _read_ids(lib, path):
    """The library's ``{name: number}``.  A name given to two numbers would make
    one of them unreachable or, worse, ambiguous: such a library is refused."""
    ids = {}
    for number in range(_MAX_ACTIVATIONS):
        name = lib.gk_activation_name(number)
        if name is None:
            break
        name = name.decode()
        if name in ids:
            raise NativeLibraryError(
                f"{path} names activations {ids[name]} and {number} both {name!r}: a broken "
                f"build; rebuild it with {_make_command()}"
            )
        ids[name] = number
    return ids


def _activation_id(backend, act):
    number = _load(backend)[1].get(act.name)
    if number is None:
        raise NativeLibraryError(
            f"{act.name} is not in this native library ({library_path(backend)}); "
            f"rebuild with {_make_command()}"
        )
    return number


def _declare(lib, backend):
    ptr, i64, c_int = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
    lib.gk_activation_name.restype = ctypes.c_char_p
    lib.gk_activation_name.argtypes = [c_int]
    lib.gk_status_string.restype = ctypes.c_char_p
    lib.gk_status_string.argtypes = [c_int]
    for suffix in ("f32", "f64"):
        fn = getattr(lib, f"gk_default_params_{suffix}")
        fn.restype, fn.argtypes = c_int, [c_int, ptr]
        fn = getattr(lib, f"{_KINDS[backend][2]}_{suffix}")
        # act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx
        fn.restype = c_int
        fn.argtypes = [c_int, ptr, ptr, i64, ptr, i64, ptr, ptr, ptr, ptr]
    if backend == "native-cuda":
        lib.gk_cuda_device_count.restype = c_int
        lib.gk_cuda_device_count.argtypes = []
        lib.gk_cuda_last_error.restype = ctypes.c_char_p
        lib.gk_cuda_last_error.argtypes = []


def _no_gpu_error(lib, why=""):
    why = why or lib.gk_cuda_last_error().decode() or "no CUDA device"
    return NativeLibraryError(
        f"backend 'native-cuda' needs an NVIDIA GPU and found none usable ({why}); "
        "backend='native' runs the same kernels on the CPU"
    )


def _ptr(arr):
    return ctypes.c_void_p(arr.ctypes.data) if arr is not None else None


class NativeUnsupportedError(BackendUnavailableError):
    """A native backend was asked for a chain its C API does not compute."""


def _plain_activation(backend, act, biases, weights):
    """The one activation of a plain chain; NativeUnsupportedError for
    biases or an activation per layer."""
    n_layers = len(prepare_inputs([], weights)[1])
    missing = []
    if biases is not None:
        missing.append("biases")
    if isinstance(act, tuple) and layer_plan(act, False, n_layers)[1] is not None:
        missing.append("an activation per layer")
    if missing:
        raise NativeUnsupportedError(
            f"backend {backend!r} does not support {' or '.join(missing)} (its C API computes "
            "one activation for every layer, without biases); use backend='cpu' or 'cuda'")
    return layer_plan(act, False, n_layers)[0]


def _check_outputs(backend, outputs, biases):
    # the C API writes all three arrays; a subset would need a kernel per set there too
    wanted = resolve_outputs(outputs, biases is not None)
    if not wanted.full:
        asked = ", ".join(repr(n) for n, on in zip(OUTPUT_NAMES, wanted) if on)
        raise NativeUnsupportedError(
            f"backend {backend!r} computes all three results (output, weight_grads, "
            f"input_grad); outputs=({asked}) needs backend='cpu' or 'cuda', or outputs=None")


def chain_grad(backend, x, act, weights, *, biases=None, out=None, noise=None, seed=None,
               outputs=None):
    """``gradkern.chain_grad`` through the native library of ``backend``."""
    _check_outputs(backend, outputs, biases)
    act = _plain_activation(backend, act, biases, weights)
    lib = load(backend)
    number = _activation_id(backend, act)
    if backend == "native-cuda" and lib.gk_cuda_device_count() == 0:
        raise _no_gpu_error(lib)
    caller = (x, weights, noise)  # as passed: out= may overlap none of them either
    x, w, dtype = prepare_inputs(x, weights)
    n, n_layers = x.shape[0], w.shape[0]
    noise_arr = prepare_noise(act, noise, seed, n, n_layers, dtype)
    res = prepare_out(out, n, n_layers, dtype, (x, w, noise_arr) + caller)
    # the C API takes contiguous rows; strided x or out= views go through copies
    x = np.ascontiguousarray(x)
    targets = [a if a.flags.c_contiguous else np.empty(a.shape, dtype) for a in res]
    params = np.array(act.kernel_params(dtype), dtype=dtype)
    fn = getattr(lib, f"{_KINDS[backend][2]}_{'f32' if dtype == np.float32 else 'f64'}")
    status = fn(number, _ptr(params), _ptr(w), n_layers, _ptr(x), n,
                _ptr(noise_arr) if act.stochastic else None, *map(_ptr, targets))
    if status in (GK_ERR_NO_DEVICE, GK_ERR_CUDA):
        err = lib.gk_cuda_last_error().decode()
        if status == GK_ERR_NO_DEVICE:
            raise _no_gpu_error(lib, err)
        raise NativeLibraryError(f"backend 'native-cuda': CUDA error: {err}")
    if status != GK_OK:  # prepare_* checked everything the library checks
        raise NativeLibraryError(
            f"{library_path(backend)} refused the call: {lib.gk_status_string(status).decode()}"
        )
    for target, arr in zip(targets, res):
        if target is not arr:
            np.copyto(arr, target)
    res.backend = backend
    return res


def chain_grad_host(x, act, weights, *, biases=None, out=None, noise=None, seed=None,
                    outputs=None):
    """Backend ``native``: the C++ chain kernel of ``cuda/`` compiled for the
    host with g++ and OpenMP (``libgradkern_host.so``, ``make -C cuda``).
    No biases, one activation, all three results (see the module doc)."""
    return chain_grad("native", x, act, weights, biases=biases, out=out, noise=noise, seed=seed,
                      outputs=outputs)


def chain_grad_cuda(x, act, weights, *, biases=None, out=None, noise=None, seed=None,
                    outputs=None):
    """Backend ``native-cuda``: the CUDA C++ chain kernel of ``cuda/``
    (``libgradkern_cuda.so``, ``make -C cuda``; needs an NVIDIA GPU).  Host
    arrays are copied to the device and back on every call.  No biases, one
    activation (see the module doc)."""
    return chain_grad("native-cuda", x, act, weights, biases=biases, out=out, noise=noise,
                      seed=seed, outputs=outputs)
