"""The fused statistics kernel on the CPU (Numba, parallel over blocks).

For each sample of a block: draw x (``dists.sample_x``), run it through the
chain (``stats.make_chain``, the ``kernels_cpu`` algorithm), and accumulate
every df/dw_k, df/dx and f into the block's statistics (``stats.accumulate``).
Nothing of size N is ever allocated: a call covers a chunk of whole blocks and
returns their partials (memory ~ chunk blocks x channels x 356 histogram columns).
"""
import numba
import numpy as np

from ._numba_util import cache_kernel
from .dists import fill_x
from .kernels_cpu import _shared_params
from .stats import BLOCK, Partials, accumulate_run, empty_partials, make_chain, slope_params

__all__ = ["run_chunk", "get_stats_kernel"]

#: samples per sub-block (a multiple of nothing in particular; 64 keeps the
#: (channels, 64) buffer in L1 up to depth ~60)
SUB = 64


def _make_stats_kernel(forward, backward, layer_params):
    chain = make_chain(forward, backward, layer_params)

    @numba.njit(parallel=True)
    def stats_kernel(code, dp, seed, n_total, block0, block_size, w, p, noise, F, MM, H):
        n_layers = w.shape[0]
        for b in numba.prange(F.shape[0]):
            a_buf = np.empty(n_layers, w.dtype)
            g = np.empty(n_layers, w.dtype)
            # SUB samples at a time: chain results into a (channels, SUB) buffer,
            # then each channel accumulated in sample order (accumulate_run)
            buf = np.empty((n_layers + 2, SUB), w.dtype)
            xs = np.empty(SUB, w.dtype)
            Fb, MMb, Hb = F[b], MM[b], H[b]  # this block's rows (2-D views)
            start = (block0 + b) * block_size
            stop = min(start + block_size, n_total)
            for s0 in range(start, stop, SUB):
                m = min(SUB, stop - s0)
                fill_x(code, dp, seed, s0, m, n_total, xs)  # s0 is even: BLOCK, SUB are
                for j in range(m):
                    i = s0 + j
                    y, gx = chain(xs[j], w, p, noise, i, a_buf, g)
                    for k in range(n_layers):
                        buf[k, j] = g[k]
                    buf[n_layers, j] = gx
                    buf[n_layers + 1, j] = y
                for k in range(n_layers + 2):
                    accumulate_run(Fb, MMb, Hb, k, buf[k], m)

    return cache_kernel(stats_kernel, forward, backward, layer_params, chain, fill_x,
                        accumulate_run)


_KERNELS = {}


def get_stats_kernel(spec, stochastic):
    """The compiled fused kernel for an activation spec (built once per process,
    cached on disk per dtype like the chain kernels)."""
    layer_params = slope_params if stochastic else _shared_params
    key = (spec.forward, spec.backward, layer_params)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_stats_kernel(spec.forward, spec.backward, layer_params)
    return kernel


def noise_tuple(act, seed, dtype):
    """The kernels' ``noise`` argument: (seed, lower, upper), bounds rounded to dtype."""
    if act.stochastic:
        lo, hi = (float(dtype.type(act.params[k])) for k in ("lower", "upper"))
    else:
        lo = hi = 0.0
    return (np.uint64(seed), lo, hi)


def run_chunk(act, dist, weights, seed, n_total, block0, n_blocks, dtype):
    """Statistics of blocks ``block0 .. block0+n_blocks-1`` of one point.

    Parameters
    ----------
    act : Activation
    dist : Dist
    weights : numpy array (L,) in ``dtype``
    seed, n_total : int
        The sweep's seed and the point's sample count N.
    block0, n_blocks : int
        The chunk, in blocks of ``stats.BLOCK`` samples (the last may be short).
    dtype : numpy dtype of the chain (float32 or float64)

    Returns
    -------
    stats.Partials
    """
    dtype = np.dtype(dtype)
    w = np.ascontiguousarray(weights, dtype=dtype)
    n_channels = w.shape[0] + 2
    F, MM, H = empty_partials(n_blocks, n_channels)
    code, dp = dist.kernel_params()
    kernel = get_stats_kernel(act.spec, act.stochastic)
    kernel(code, dp, np.uint64(seed), np.int64(n_total), np.int64(block0), np.int64(BLOCK), w,
           act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM, H)
    return Partials(block0, F, MM, H.sum(axis=0))
