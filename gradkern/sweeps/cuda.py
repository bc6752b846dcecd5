"""The fused statistics kernel on a CUDA GPU (numba.cuda), same blocking as the CPU.

One GPU thread owns one block of ``stats.BLOCK`` = 4096 consecutive samples and
walks it lane by lane (``stats.LANES`` = 64; sample i is in lane i mod 64),
adding each lane's samples in order and the lanes in lane order, as the CPU
kernel does, with the same scalar functions (``dists.sample_pair``,
``stats.make_chain``, ``stats.accumulate``; transcendentals from
``_vecmath``, no libm) and FMA contraction off as for the chain kernels.  So
each block's float64 partials are meant to be the CPU's bit for bit; that is
tested under the simulator (no GPU has run it yet).  The host then folds the
blocks in order, as for the CPU.  Histograms (with the zero and NaN counts)
are integer atomics into one (channels, columns) array: order-free.

Accumulators live in per-thread local arrays (sized for :data:`MAX_DEPTH`
layers) and are written to global memory once per block.  Global arrays are
copied to local ones before the shared njit functions see them, which is also
what lets the kernel run under ``NUMBA_ENABLE_CUDASIM=1`` (the simulator's
device arrays cannot be passed to njit functions).

Performance on real hardware is not measured here (no GPU was available when
this was written); ``gradkern.sweep(backend="cuda")`` is tested on the simulator.
"""
import numpy as np

from ..chain.core import shared_params
from .grid import RandomLayers
from .layers import n_channels
from .stats import BLOCK, GPU_MAX_DEPTH as MAX_DEPTH, HIST_COLS, Partials, slope_params

__all__ = ["run_chunk", "kernel_for"]

_THREADS = 128


_KERNELS = {}


def kernel_for(act, dtype):
    """The ``cuda.jit`` sweep kernel for ``act`` in ``dtype`` (built once per
    process; compiled on its first launch)."""
    from .cuda_kernel import make_kernel

    layer_params = slope_params if act.stochastic else shared_params
    key = (*act.ops(), layer_params, dtype)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = make_kernel(*act.ops(), layer_params, dtype)
    return kernel


def sample_kernel_for(act, dtype, biased):
    """The kernel for points with per-sample layers (see :func:`kernel_for`)."""
    from .cuda_kernel import make_sample_kernel

    layer_params = slope_params if act.stochastic else shared_params
    key = ("per_sample", *act.ops(), layer_params, dtype, biased)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = make_sample_kernel(*act.ops(), layer_params, dtype, biased)
    return kernel


def run_chunk(act, dist, weights, seed, n_total, block0, n_blocks, dtype):
    """As :func:`gradkern.sweeps.cpu.run_chunk`, on the GPU."""
    from numba import cuda

    from ..chain.cuda_kernel import without_fma_contraction
    from .cpu import noise_tuple

    dtype = np.dtype(dtype)
    if isinstance(weights, RandomLayers):
        return _run_sample_chunk(act, dist, weights, seed, n_total, block0, n_blocks, dtype)
    w = np.ascontiguousarray(weights, dtype=dtype)
    if w.shape[0] > MAX_DEPTH:
        raise ValueError(f"backend='cuda' takes depths up to {MAX_DEPTH}, got {w.shape[0]}")
    kernel = kernel_for(act, dtype)
    n_ch = w.shape[0] + 2
    code, dp = dist.kernel_params()
    F = cuda.device_array((n_blocks, n_ch, 4), np.float64)
    MM = cuda.device_array((n_blocks, n_ch, 2), np.float64)
    H = cuda.to_device(np.zeros((n_ch, HIST_COLS), np.int64))
    grid = -(-n_blocks // _THREADS)
    # the first call compiles (for these argument types): with NVVM's mul+add
    # contraction off, so that the GPU rounds as the CPU kernel does
    with without_fma_contraction():
        kernel[grid, _THREADS](code, cuda.to_device(dp), np.uint64(seed), np.int64(n_total),
                               np.int64(block0), np.int64(BLOCK), cuda.to_device(w),
                               act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM,
                               H)
    return Partials(block0, F.copy_to_host(), MM.copy_to_host(), H.copy_to_host())


def _run_sample_chunk(act, dist, layers, seed, n_total, block0, n_blocks, dtype):
    from numba import cuda

    from ..chain.cuda_kernel import without_fma_contraction
    from .cpu import noise_tuple

    if layers.depth > MAX_DEPTH:
        raise ValueError(f"backend='cuda' takes depths up to {MAX_DEPTH}, got {layers.depth}")
    kernel = sample_kernel_for(act, dtype, layers.biased)
    n_ch = n_channels(layers.depth, layers.biased)
    code, dp = dist.kernel_params()
    wcode, wp = layers.weight.kernel_params()
    bcode, bp = layers.bias.kernel_params() if layers.biased else (5, np.zeros(4))
    F = cuda.device_array((n_blocks, n_ch, 4), np.float64)
    MM = cuda.device_array((n_blocks, n_ch, 2), np.float64)
    H = cuda.to_device(np.zeros((n_ch, HIST_COLS), np.int64))
    grid = -(-n_blocks // _THREADS)
    with without_fma_contraction():
        kernel[grid, _THREADS](code, cuda.to_device(dp), wcode, cuda.to_device(wp), bcode,
                               cuda.to_device(bp), np.uint64(seed), np.int64(n_total),
                               np.int64(block0), np.int64(BLOCK), np.int64(layers.depth),
                               act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM,
                               H)
    return Partials(block0, F.copy_to_host(), MM.copy_to_host(), H.copy_to_host())
