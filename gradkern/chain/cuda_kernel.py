"""The numba-cuda chain-rule kernel: the CPU kernel's sweep, one GPU thread per sample.

Same algorithm as :mod:`gradkern.chain.cpu` (read its docstring first): the
forward stores a_{k-1} in the sample's row of ``weight_grads``, the backward
recomputes z_k = w_k * a_{k-1} and overwrites the slot with df/dw_k.  The
scalar forward/backward come from :mod:`gradkern.activations.scalar` and the products from
``core.linear``, called unchanged: numba-cuda compiles a CPU
``numba.njit`` function called from a ``cuda.jit`` kernel as a device function
(numba-cuda's ``test_cpu_gpu_compat.py``), so there is no second copy of any
formula.  numba-cuda's default ``fastmath=False`` keeps every ``a*b + c``
unfused only with NVVM's contraction switched off as well
(:func:`without_fma_contraction`); then ``fma.rn`` appears only where
``scalar`` asks for it (Tanh, Tanhshrink) or inside libdevice's exp/tanh -
checked on the PTX by ``tests/test_cuda_ptx.py``.

The loop is grid-stride, so any grid covers any N and the grid can be sized
to fill the device exactly once (:func:`launch_config`).
"""
import contextlib
import warnings

import numba
import numpy as np
from numba import cuda, types

from .core import bias_grad as core_bias_grad, biased as core_biased, linear as core_linear
from .core import noise_params, shared_params

__all__ = ["get_kernel", "build_kernel", "kernel_signature", "make_chain_body", "launch_config",
           "get_layered_kernel", "build_layered_kernel", "layered_signature",
           "make_layered_body"]


def make_chain_body(forward, backward, layer_params, outputs=None):
    """The kernel's Python function for one (forward, backward, layer_params).

    Returned undecorated so that the same function is both launched
    (:func:`get_kernel`) and compiled to PTX for inspection without a GPU
    (:mod:`gradkern.ptx`).  ``outputs`` (an
    :class:`~gradkern.chain.outputs.Outputs`; None: all three): the stores
    of a result not asked for are left out.  ``out_gw`` keeps a_{k-1} between
    the sweeps, so without weight_grads but with a gradient it must still be
    an (N, L) scratch; with no gradient asked for, the backward and those
    stores go.
    """
    write_y, write_gw, write_gx, _ = (True, True, True, False) if outputs is None else outputs
    backward_needed = write_gw or write_gx
    from numba.cuda.core import config

    linear = core_linear
    if config.ENABLE_CUDASIM:
        # The simulator runs this body as Python, thread by thread.  Two things
        # differ from compiled code, both fixed here without touching a formula:
        # a compiled function returns a float32 result as a Python float (so
        # the next call would run in float64): cast each result back to the
        # type of its first argument, as the compiled kernel's types are; and
        # the simulator's arrays cannot be passed to compiled code: call the
        # plain Python of ``layer_params`` (the one that indexes ``noise``).
        forward, backward, linear = (_sim_typed(f) for f in (forward, backward, core_linear))
        layer_params = getattr(layer_params, "py_func", layer_params)

    def chain_kernel(x, w, p, noise, out_y, out_gw, out_gx):
        n_layers = w.shape[0]
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.shape[0], stride):
            a = x[i]
            for k in range(n_layers):
                if backward_needed:
                    out_gw[i, k] = a
                a = forward(linear(w[k], a), layer_params(p, noise, i, k))
            if write_y:
                out_y[i] = a
            if not backward_needed:
                continue
            g = type(a)(1.0)
            y = a
            for k in range(n_layers - 1, -1, -1):
                a_prev = out_gw[i, k]
                z = linear(w[k], a_prev)
                gz = backward(g, z, y, layer_params(p, noise, i, k))
                if z != z:
                    # NaN in, NaN out (as the CPU kernel)
                    gz = z
                if write_gw:
                    out_gw[i, k] = linear(gz, a_prev)
                g = linear(gz, w[k])
                y = a_prev
            if write_gx:
                out_gx[i] = g

    return chain_kernel


def _sim_typed(fn):
    """``fn`` for the simulator: its result in the type of its first argument."""

    def call(a, *args):
        return type(a)(fn(a, *args))

    return call


def kernel_signature(dtype):
    """The one signature each kernel is compiled for, per dtype.

    Arrays are typed with layout "A" (any strides) so a single compiled kernel
    takes C-contiguous buffers, strided views and foreign device arrays (CuPy,
    torch) alike; the cost is one multiply per index on a kernel bound by
    memory traffic, and it avoids a compile per layout at run time (about 1 s
    each).  ``w`` is always a contiguous copy made by gradkern.
    """
    t = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    vec = types.Array(t, 1, "A")
    mat = types.Array(t, 2, "A")
    return types.void(vec, types.Array(t, 1, "C"), types.UniTuple(t, 4), mat, vec, mat, vec)


_KERNELS = {}


def layer_params_for(per_sample_noise):
    return noise_params if per_sample_noise else shared_params


def build_kernel(ops, dtype, per_sample_noise=False, outputs=None):
    """A new ``cuda.jit`` chain kernel for ``ops`` = (forward, backward) in ``dtype``, compiled (and,
    on a GPU, loaded) for :func:`kernel_signature` with FMA contraction off,
    writing the results ``outputs`` names (None: all).
    Uncached: see :func:`get_kernel`."""
    forward, backward = ops
    body = make_chain_body(forward, backward, layer_params_for(per_sample_noise), outputs)
    with without_fma_contraction():
        return cuda.jit(kernel_signature(dtype))(body)


@contextlib.contextmanager
def without_fma_contraction():
    """While active, NVVM compiles with ``-fma=0`` (no mul+add contraction).

    NVVM contracts ``a*b + c`` into one ``fma.rn`` by default (``-fma=1``), and
    numba-cuda 0.30's ``fastmath=False`` does not turn that off: without this,
    the PTX of every chain kernel has ``linear``'s ``w*a + 0`` as
    ``fma.rn.f32 w, a, 0`` (measured: 49 of them in ReLU's float32 kernel).
    Fused, a negative product that underflows keeps its sign (-0.0) where
    torch's unfused matmul gives +0.0, and every smooth formula rounds
    differently from the CPU kernel.  With ``-fma=0`` the GPU rounds like the
    CPU kernel; the explicit ``fma`` of :mod:`gradkern.activations.scalar` (``llvm.fma``)
    and libdevice's own fused operations are unaffected.

    numba-cuda has no public switch for it, so ``nvvm.compile_ir`` (looked up
    at call time by numba-cuda's code library) is wrapped for the duration,
    holding numba's compiler lock so that no other thread's compilation sees
    the wrapper.  Numba-cuda builds and loads a kernel compiled for an
    explicit signature at once, so the whole compilation happens inside.
    """
    from numba.cuda.core import config

    if config.ENABLE_CUDASIM:
        yield  # the simulator runs Python: nothing is compiled or fused
        return
    from numba.cuda.core.compiler_lock import global_compiler_lock
    from numba.cuda.cudadrv import nvvm

    original = getattr(nvvm, "compile_ir", None)
    if original is None:
        warnings.warn("gradkern: cannot switch off FMA contraction with this numba-cuda "
                      "version; GPU results may round differently from the CPU kernel",
                      RuntimeWarning, stacklevel=3)
        yield
        return

    def compile_ir(llvmir, **options):
        options["fma"] = False
        return original(llvmir, **options)

    with global_compiler_lock:
        nvvm.compile_ir = compile_ir
        try:
            yield
        finally:
            nvvm.compile_ir = original


def get_kernel(ops, dtype, per_sample_noise=False, outputs=None):
    """The ``cuda.jit`` chain kernel for ``ops`` = (forward, backward) in ``dtype``.

    Built once per process and per (forward, backward, layer_params, dtype,
    outputs) by :func:`build_kernel`.  Under ``NUMBA_ENABLE_CUDASIM=1`` this
    is the simulator's kernel, running the same Python body thread by thread.
    """
    dtype = np.dtype(dtype)
    key = (*ops, layer_params_for(per_sample_noise), dtype, None if outputs is None else
           tuple(outputs)[:3])
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = build_kernel(ops, dtype, per_sample_noise, outputs)
    return kernel


# -- the general chain: an activation per layer, biases (see .layers) ---------

@numba.njit(forceinline=True)
def table_params(params, noise, i, k):
    # layer k's row of a LayerPlan's (L, 4) parameter table
    return (params[k, 0], params[k, 1], params[k, 2], params[k, 3])


@numba.njit(forceinline=True)
def table_noise_params(params, noise, i, k):
    # RReLU training: the slope of sample i at layer k, then layer k's row
    return (noise[i, k], params[k, 1], params[k, 2], params[k, 3])


def _slot_ops(slots):
    """``(forward, backward)`` taking a slot number first: an if-chain over
    the slots built by recursion (one closure per slot), compiled as device
    functions; ``forward(s, z, params, noise, i, k)``,
    ``backward(s, g, z, y, params, noise, i, k)``."""
    fwd0, bwd0, noisy = slots[0]
    params0 = table_noise_params if noisy else table_params
    if len(slots) == 1:
        @numba.njit(forceinline=True)
        def forward(s, z, params, noise, i, k):
            return fwd0(z, params0(params, noise, i, k))

        @numba.njit(forceinline=True)
        def backward(s, g, z, y, params, noise, i, k):
            return bwd0(g, z, y, params0(params, noise, i, k))

        return forward, backward
    fwd_rest, bwd_rest = _slot_ops(slots[1:])

    @numba.njit(forceinline=True)
    def forward(s, z, params, noise, i, k):
        if s == 0:
            return fwd0(z, params0(params, noise, i, k))
        return fwd_rest(s - 1, z, params, noise, i, k)

    @numba.njit(forceinline=True)
    def backward(s, g, z, y, params, noise, i, k):
        if s == 0:
            return bwd0(g, z, y, params0(params, noise, i, k))
        return bwd_rest(s - 1, g, z, y, params, noise, i, k)

    return forward, backward


def _sim_slot_ops(slots):
    """:func:`_slot_ops` for the simulator: plain Python choosing the slot's
    compiled functions (its arrays cannot be passed to compiled code), each
    result in the type of ``z`` (see :func:`make_chain_body`)."""

    def params_of(noisy, params, noise, i, k):
        first = noise[i, k] if noisy else params[k, 0]
        return (first, params[k, 1], params[k, 2], params[k, 3])

    def forward(s, z, params, noise, i, k):
        fwd, _, noisy = slots[s]
        return type(z)(fwd(z, params_of(noisy, params, noise, i, k)))

    def backward(s, g, z, y, params, noise, i, k):
        _, bwd, noisy = slots[s]
        return type(z)(bwd(g, z, y, params_of(noisy, params, noise, i, k)))

    return forward, backward


def make_layered_body(slots, has_bias, outputs=None):
    """The kernel's Python function for a LayerPlan's ``slots`` and bias flag:
    :func:`make_chain_body`'s sweep with layer k running slot ``slot[k]``
    with row k of the parameter table, adding ``b[k]`` after the product
    (``core.biased``), and (with ``has_bias``) writing df/db_{k+1} to
    ``out_gb[i, k]``; ``outputs`` as :func:`make_chain_body`'s."""
    write_y, write_gw, write_gx, write_gb = (True, True, True, True) if outputs is None \
        else outputs
    write_gb = write_gb and has_bias
    backward_needed = write_gw or write_gx or write_gb
    from numba.cuda.core import config

    linear, biased, bias_grad = core_linear, core_biased, core_bias_grad
    if config.ENABLE_CUDASIM:
        forward, backward = _sim_slot_ops(slots)
        linear, biased, bias_grad = (_sim_typed(f) for f in (linear, biased, bias_grad))
    else:
        forward, backward = _slot_ops(slots)

    def layered_kernel(x, w, b, slot, params, noise, out_y, out_gw, out_gx, out_gb):
        n_layers = w.shape[0]
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.shape[0], stride):
            a = x[i]
            for k in range(n_layers):
                if backward_needed:
                    out_gw[i, k] = a
                z = biased(w[k], a, b[k]) if has_bias else linear(w[k], a)
                a = forward(slot[k], z, params, noise, i, k)
            if write_y:
                out_y[i] = a
            if not backward_needed:
                continue
            g = type(a)(1.0)
            y = a
            for k in range(n_layers - 1, -1, -1):
                a_prev = out_gw[i, k]
                z = biased(w[k], a_prev, b[k]) if has_bias else linear(w[k], a_prev)
                gz = backward(slot[k], g, z, y, params, noise, i, k)
                if z != z:
                    # NaN in, NaN out (as the CPU kernel)
                    gz = z
                if write_gb:
                    out_gb[i, k] = bias_grad(gz)
                if write_gw:
                    out_gw[i, k] = linear(gz, a_prev)
                g = linear(gz, w[k])
                y = a_prev
            if write_gx:
                out_gx[i] = g

    return layered_kernel


def layered_signature(dtype):
    """:func:`kernel_signature` for the general chain: ``b`` (L,), ``slot``
    (L,) int64 and ``params`` (L, 4) after ``w``, ``out_gb`` (N, L) last."""
    t = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    vec, mat = types.Array(t, 1, "A"), types.Array(t, 2, "A")
    small = types.Array(t, 1, "C")
    return types.void(vec, small, small, types.Array(types.int64, 1, "C"),
                      types.Array(t, 2, "C"), mat, vec, mat, vec, mat)


_LAYERED = {}


def build_layered_kernel(plan, dtype, outputs=None):
    """A new ``cuda.jit`` kernel for a :class:`~gradkern.chain.layers.LayerPlan`
    in ``dtype``, FMA contraction off as :func:`build_kernel`'s."""
    body = make_layered_body(plan.slots, plan.has_bias, outputs)
    with without_fma_contraction():
        return cuda.jit(layered_signature(dtype))(body)


def get_layered_kernel(plan, dtype, outputs=None):
    """The kernel for ``plan`` in ``dtype``: one per process and per (slots,
    bias flag, dtype, outputs), whatever the depth or the order of the layers."""
    dtype = np.dtype(dtype)
    key = (*plan.cache_parts(), dtype, None if outputs is None else tuple(outputs))
    kernel = _LAYERED.get(key)
    if kernel is None:
        kernel = _LAYERED[key] = build_layered_kernel(plan, dtype, outputs)
    return kernel


def kernel_ptx(kernel, cc):
    """The PTX of ``kernel`` (from :func:`build_kernel`) for compute capability ``cc``."""
    overload = next(iter(kernel.overloads.values()))
    with without_fma_contraction():
        return overload._codelibrary.get_asm_str(cc=cc)


#: Simulator launch: 2 blocks x 32 threads.  The simulator runs one Python
#: thread per GPU thread, so it stays small; 64 threads over a few hundred
#: samples also exercise the grid-stride loop (several samples per thread).
SIM_LAUNCH = (2, 32)

_LAUNCH = {}


def launch_config(kernel, n):
    """(blocks, threads per block) for ``n`` samples, chosen from the device.

    Threads per block: of 128..1024, the size with the most resident warps per
    SM by the driver's occupancy calculator (``cuOccupancyMaxActiveBlocksPer-
    Multiprocessor``, which accounts for the kernel's registers); ties go to
    the smaller block.  Blocks: enough to make every SM fully resident once,
    never more than ``n`` needs; the grid-stride loop covers the rest.  One
    resident wave is enough on a memory-bound kernel: more blocks only add
    scheduling, fewer leave bandwidth idle.
    """
    if n == 0:
        return 0, 0
    from numba.cuda.core import config

    if config.ENABLE_CUDASIM:
        blocks, threads = SIM_LAUNCH
        return min(blocks, -(-n // threads)), threads
    ctx = cuda.current_context()
    key = (id(kernel), id(ctx))
    cached = _LAUNCH.get(key)
    if cached is None:
        overload = next(iter(kernel.overloads.values()))
        cufunc = overload._codelibrary.get_cufunc()
        max_threads = overload.max_threads_per_block
        dev = ctx.device
        sms = dev.MULTIPROCESSOR_COUNT
        best = None
        try:
            for threads in (128, 256, 512, 1024):
                if threads > max_threads:
                    break
                per_sm = int(ctx.get_active_blocks_per_multiprocessor(cufunc, threads, 0))
                warps = per_sm * threads // 32
                if per_sm > 0 and (best is None or warps > best[0]):
                    best = (warps, per_sm, threads)
        except Exception:  # an occupancy API this numba-cuda does not wrap: fall back
            best = None
        if best is None:
            # the device's own limit: threads resident per SM / block size
            threads = min(256, max_threads)
            per_sm = max(1, dev.MAX_THREADS_PER_MULTIPROCESSOR // threads)
            best = (0, per_sm, threads)
        _, per_sm, threads = best
        cached = _LAUNCH[key] = (per_sm * sms, threads)
    full_grid, threads = cached
    return min(full_grid, -(-n // threads)), threads
