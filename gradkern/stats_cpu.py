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
from .dists import sample_x
from .kernels_cpu import _shared_params
from .stats import BLOCK, Partials, accumulate, empty_partials, make_chain, slope_params

__all__ = ["run_chunk", "get_stats_kernel"]


def _make_stats_kernel(forward, backward, layer_params):
    chain = make_chain(forward, backward, layer_params)

    @numba.njit(parallel=True)
    def stats_kernel(code, dp, seed, n_total, block0, block_size, w, p, noise, F, MM, H):
        n_layers = w.shape[0]
        T = w.dtype.type
        for b in numba.prange(F.shape[0]):
            a_buf = np.empty(n_layers, w.dtype)
            g = np.empty(n_layers, w.dtype)
            Fb, MMb, Hb = F[b], MM[b], H[b]  # this block's rows (2-D views)
            start = (block0 + b) * block_size
            stop = min(start + block_size, n_total)
            for i in range(start, stop):
                x = T(sample_x(code, dp, seed, i, n_total))
                y, gx = chain(x, w, p, noise, i, a_buf, g)
                for k in range(n_layers + 2):
                    v = g[k] if k < n_layers else (gx if k == n_layers else y)
                    Hb[k, accumulate(Fb, MMb, k, v)] += 1

    return cache_kernel(stats_kernel, forward, backward, layer_params, chain, sample_x,
                        accumulate)


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
