"""Shared parametrisation: everything comes from the activation registry."""
import ctypes
import os

import numpy as np
import pytest


def _real_gpu_present():
    """A CUDA driver that reports a device, asked through ctypes so that
    numba.cuda is not imported (it reads NUMBA_ENABLE_CUDASIM on import)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
        count = ctypes.c_int(0)
        return lib.cuInit(0) == 0 and lib.cuDeviceGetCount(ctypes.byref(count)) == 0 \
            and count.value > 0
    except (OSError, AttributeError):
        return False


#: No GPU (CI): the CUDA backend's tests run on numba-cuda's simulator.  Set
#: before anything imports numba.cuda; an explicit NUMBA_ENABLE_CUDASIM wins.
if "NUMBA_ENABLE_CUDASIM" not in os.environ and not _real_gpu_present():
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
CUDASIM = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")
REAL_GPU = not CUDASIM and _real_gpu_present()

import gradkern as gk  # noqa: E402

ACT_NAMES = list(gk.ACTIVATIONS)
PIECEWISE = [n for n, s in gk.ACTIVATIONS.items() if s.piecewise_linear]
SMOOTH = [n for n, s in gk.ACTIVATIONS.items() if not s.piecewise_linear]
#: label -> Activation for every registry variant (RReLU and RReLU(training), ...)
VARIANTS = dict(gk.activations.variants())
DTYPES = [np.float32, np.float64]


def default_activation(name, **params):
    """The registry's deterministic configuration of ``name`` (RReLU in eval
    mode), with ``params`` on top."""
    return gk.activation(gk.activations.default(name), **params)


@pytest.fixture(params=ACT_NAMES)
def act_name(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(scope="session")
def native_host():
    """libgradkern_host.so built where backend="native" finds it (g++, OpenMP)."""
    import subprocess
    from pathlib import Path

    from gradkern.chain import native

    cuda_dir = Path(__file__).resolve().parent.parent / "cuda"
    proc = subprocess.run(["make", "-C", str(cuda_dir), "host"], capture_output=True, text=True)
    assert proc.returncode == 0, f"make host failed:\n{proc.stdout}\n{proc.stderr}"
    return native.load("native")


def _native_cuda_or_skip():
    from gradkern.chain import native

    try:
        lib = native.load("native-cuda")
    except native.NativeLibraryError as exc:
        pytest.skip(f"native-cuda library not built here ({exc})")
    if lib.gk_cuda_device_count() == 0:
        pytest.skip("no GPU here: native-cuda parity not run ("
                    + lib.gk_cuda_last_error().decode() + ")")


@pytest.fixture
def backend_ready(request, backend):
    """Skip unless ``backend`` can run here; build the host library for "native"."""
    if backend == "cuda":
        pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")
        if not (CUDASIM or REAL_GPU):
            pytest.skip("no GPU and no simulator")
    elif backend == "native":
        request.getfixturevalue("native_host")
    elif backend == "native-cuda":
        _native_cuda_or_skip()
    return backend
