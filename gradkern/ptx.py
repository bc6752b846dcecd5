"""PTX of the real CUDA chain kernels, compiled without a GPU, and what it shows.

``numba.cuda.compile_ptx`` needs only NVVM (``numba-cuda[cu13]`` ships it), but
numba-cuda compiles a CPU ``numba.njit`` function called from a kernel by
asking the *current device* for its compute capability, which needs a driver.
:func:`compile_chain_ptx` answers that question with the requested ``cc``
while it compiles (only when no driver is present), so CI machines without a
GPU still compile every kernel gradkern would launch, for every activation and
dtype, and check the instructions that decide parity with torch.

Not available under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator has no
compiler); :func:`ptx_report` can be run in a subprocess without it.
"""
import contextlib
import re

import numpy as np

__all__ = ["compile_chain_ptx", "compile_stats_ptx", "ptx_facts", "ptx_report",
           "nvvm_available"]


def nvvm_available():
    """True when numba-cuda and its NVVM library can be loaded (no GPU needed)."""
    try:
        from numba.cuda.cudadrv import nvvm

        return bool(nvvm.is_available())
    except Exception:  # ImportError, simulator assertion, missing libNVVM
        return False


class _Device:
    def __init__(self, cc):
        self.compute_capability = cc


@contextlib.contextmanager
def _compute_capability(cc):
    """Make numba-cuda see a device of capability ``cc`` when there is no driver.

    Three things go to the driver while a kernel compiles: the dispatcher's
    ``get_current_device().compute_capability`` and the code library's target
    when no ``cc`` is given (``_ensure_cc``), both answered with ``cc``, and
    loading the result (``_Kernel.bind``), skipped.
    """
    from numba import cuda
    from numba.cuda import codegen, dispatcher

    if cuda.is_available():
        yield  # a real device answers for itself
        return
    target = (cc[0], cc[1], "a" if tuple(cc) >= (9, 0) else "")
    lib, kern = codegen.CUDACodeLibrary, dispatcher._Kernel
    saved = dispatcher.get_current_device, lib._ensure_cc, kern.bind
    dispatcher.get_current_device = lambda: _Device(tuple(cc))
    lib._ensure_cc = lambda self, want: want or target
    kern.bind = lambda self: None  # loading into a context: nothing to load into
    try:
        yield
    finally:
        dispatcher.get_current_device, lib._ensure_cc, kern.bind = saved


def compile_chain_ptx(act, dtype, cc=(9, 0)):
    """PTX text of the chain kernel that backend "cuda" launches for ``act``.

    The kernel is built by :func:`gradkern.chain.cuda_kernel.build_kernel`, the
    same call the backend makes, so its compile options (FMA contraction off)
    are the launched kernel's.

    Parameters
    ----------
    act : Activation
    dtype : float32 or float64
    cc : tuple of int
        Target compute capability (default sm_90, the H100).

    Returns
    -------
    str
    """
    from .chain.cuda_kernel import build_kernel, kernel_ptx

    with _compute_capability(cc):
        kernel = build_kernel(act.ops(), np.dtype(dtype), act.stochastic)
        return kernel_ptx(kernel, (cc[0], cc[1], "a" if tuple(cc) >= (9, 0) else ""))


def compile_stats_ptx(act, dtype, cc=(9, 0)):
    """PTX text of the fused sweep kernel that ``gradkern.sweep(backend="cuda")``
    launches for ``act`` (:mod:`gradkern.sweeps.cuda`), compiled for the
    argument types ``stats_cuda.run_chunk`` passes and with FMA contraction
    off as there.  The simulator runs that kernel's body as Python; this
    checks that the GPU compiler takes it."""
    from numba import types

    from .chain.cuda_kernel import without_fma_contraction
    from .sweeps.cuda import kernel_for

    ft = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    f64 = types.float64
    sig = (types.int64, f64[::1], types.uint64, types.int64, types.int64, types.int64, ft[::1],
           types.UniTuple(ft, 4), types.Tuple((types.uint64, f64, f64)), f64[:, :, ::1],
           f64[:, :, ::1], types.int64[:, ::1])
    with _compute_capability(cc), without_fma_contraction():
        kernel = kernel_for(act, np.dtype(dtype))
        kernel.compile(sig)
        overload = kernel.overloads[sig]
        return overload._codelibrary.get_asm_str(cc=(cc[0], cc[1], "a" if tuple(cc) >= (9, 0) else ""))


_INSTR = re.compile(r"^\s*(?:@%p\d+\s+)?([a-z][\w.]*)", re.M)


def ptx_facts(ptx):
    """What matters in one kernel's PTX, as plain counts.

    ``f64`` counts float64 arithmetic instructions (``.f64`` opcodes, not
    loads/stores/conversions; in a float32 kernel they come from the float64
    exp/tanh/log1p of :mod:`gradkern.activations.scalar`); ``fma`` the fused
    multiply-adds (with contraction off, each comes from an explicit ``fma``
    in :mod:`gradkern.activations.scalar` or from inside libdevice's exp/tanh/log1p);
    ``approx_or_ftz`` the ``.approx``/``.ftz`` instructions (libdevice uses
    ``rcp.approx.ftz.f64`` as a first guess it then refines); ``calls`` the
    device calls left un-inlined.
    """
    ops = _INSTR.findall(ptx)
    arith64 = [o for o in ops if o.endswith(".f64") and not o.startswith(("ld.", "st.", "cvt.", "mov."))]
    return {
        "instructions": len(ops),
        "f64": len(arith64),
        "cvt_f64": sum(1 for o in ops if o.startswith("cvt.") and ".f64" in o),
        "fma": sum(1 for o in ops if o.startswith("fma.")),
        "fma_rn": sum(1 for o in ops if o.startswith("fma.rn.")),
        "fma_contracted": sum(1 for o in ops if o.startswith("fma.") and not o.startswith("fma.rn.")),
        "approx_or_ftz": sum(1 for o in ops if ".ftz" in o or ".approx" in o),
        "calls": sum(1 for o in ops if o == "call" or o.startswith("call.")),
    }


def ptx_report(names=None, dtypes=("float32", "float64"), cc=(9, 0)):
    """``{"label/dtype": ptx_facts(...)}`` for every registry variant
    (``RReLU`` and ``RReLU(training)``, ...)."""
    from .activations import variants

    report = {}
    for label, act in variants(names):
        for dt in dtypes:
            report[f"{label}/{dt}"] = ptx_facts(compile_chain_ptx(act, np.dtype(dt), cc))
    return report


if __name__ == "__main__":  # python -m gradkern.ptx: the report as JSON
    import json
    import sys

    print(json.dumps(ptx_report(sys.argv[1:] or None), indent=1))
