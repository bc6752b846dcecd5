"""The ``@cuda.jit`` fused statistics kernel (see :mod:`gradkern.sweeps.cuda`).

A module of its own because it imports ``numba.cuda`` at the top: the CUDA
simulator swaps that module in a kernel's globals (not in closures), and
``import gradkern`` must not load it.
"""
import numba
import numpy as np
from numba import cuda

from ..stream.dists import layer_pair, sample_pair
from ..stream.philox import BIAS_FAMILY, WEIGHT_FAMILY
from .layers import make_sample_chain
from .stats import GPU_MAX_DEPTH as MAX_DEPTH, LANES, accumulate, make_chain

__all__ = ["make_kernel", "make_sample_kernel"]

_MAX_CH = MAX_DEPTH + 2
#: channels with biases: df/dw_k, df/dx, f, df/db_k
_MAX_CH_BIASED = 2 * MAX_DEPTH + 2


def make_kernel(forward, backward, layer_params, dtype):
    chain = make_chain(forward, backward, layer_params)
    nbt = numba.float32 if dtype == np.float32 else numba.float64

    @cuda.jit
    def stats_kernel(code, dp_g, seed, n_total, block0, block_size, w_g, p, noise,
                     F_g, MM_g, H):
        b = cuda.grid(1)
        if b >= F_g.shape[0]:
            return
        n_layers = w_g.shape[0]
        n_ch = n_layers + 2
        w_loc = cuda.local.array(MAX_DEPTH, nbt)
        for k in range(n_layers):
            w_loc[k] = w_g[k]
        w = w_loc[:n_layers]
        dp = cuda.local.array(4, numba.float64)
        for k in range(4):
            dp[k] = dp_g[k]
        a_buf = cuda.local.array(MAX_DEPTH, nbt)
        g = cuda.local.array(MAX_DEPTH, nbt)
        F = cuda.local.array((_MAX_CH, 4), numba.float64)  # the block's sums
        MM = cuda.local.array((_MAX_CH, 2), numba.float64)
        LS = cuda.local.array((2, _MAX_CH, 4), numba.float64)  # lanes 2q and 2q+1
        for k in range(n_ch):
            for s in range(4):
                F[k, s] = 0.0
            MM[k, 0] = np.inf
            MM[k, 1] = -np.inf
        start = (block0 + b) * block_size
        stop = min(start + block_size, n_total)
        # lane by lane, as the CPU kernel's lanes add (stats module docstring):
        # lanes 2q and 2q+1 together, since samples 2j and 2j+1 share a draw
        for q in range(LANES // 2):
            for h in range(2):
                for k in range(n_ch):
                    for s in range(4):
                        LS[h, k, s] = 0.0
            for i in range(start + 2 * q, stop, LANES):
                pair = sample_pair(code, dp, seed, i >> 1, n_total)
                for h in range(2):
                    if i + h < stop:
                        y, gx = chain(nbt(pair[h]), w, p, noise, i + h, a_buf, g)
                        for k in range(n_ch):
                            v = g[k] if k < n_layers else (gx if k == n_layers else y)
                            cuda.atomic.add(H, (k, accumulate(LS[h], MM, k, v)), 1)
            for h in range(2):
                for k in range(n_ch):
                    for s in range(4):
                        F[k, s] += LS[h, k, s]
        for k in range(n_ch):
            for s in range(4):
                F_g[b, k, s] = F[k, s]
            MM_g[b, k, 0] = MM[k, 0]
            MM_g[b, k, 1] = MM[k, 1]

    return stats_kernel


def make_sample_kernel(forward, backward, layer_params, dtype, biased):
    """The kernel of points with per-sample layers: as :func:`make_kernel`,
    each pair of samples first drawing its w_k (and b_k) with ``layer_pair``
    (the CPU kernel's fills, value for value)."""
    chain = make_sample_chain(forward, backward, layer_params, biased)
    nbt = numba.float32 if dtype == np.float32 else numba.float64
    max_ch = _MAX_CH_BIASED if biased else _MAX_CH

    @cuda.jit
    def stats_kernel(code, dp_g, wcode, wp_g, bcode, bp_g, seed, n_total, block0, block_size,
                     n_layers, p, noise, F_g, MM_g, H):
        b = cuda.grid(1)
        if b >= F_g.shape[0]:
            return
        n_ch = F_g.shape[1]
        dp = cuda.local.array(4, numba.float64)
        wp = cuda.local.array(4, numba.float64)
        bp = cuda.local.array(4, numba.float64)
        for k in range(4):
            dp[k] = dp_g[k]
            wp[k] = wp_g[k]
            bp[k] = bp_g[k]
        W = cuda.local.array((2, MAX_DEPTH), nbt)  # samples i and i + 1
        B = cuda.local.array((2, MAX_DEPTH), nbt)
        a_buf = cuda.local.array(MAX_DEPTH, nbt)
        g = cuda.local.array(2 * MAX_DEPTH, nbt)
        F = cuda.local.array((max_ch, 4), numba.float64)
        MM = cuda.local.array((max_ch, 2), numba.float64)
        LS = cuda.local.array((2, max_ch, 4), numba.float64)
        for k in range(n_ch):
            for s in range(4):
                F[k, s] = 0.0
            MM[k, 0] = np.inf
            MM[k, 1] = -np.inf
        start = (block0 + b) * block_size
        stop = min(start + block_size, n_total)
        for q in range(LANES // 2):
            for h in range(2):
                for k in range(n_ch):
                    for s in range(4):
                        LS[h, k, s] = 0.0
            for i in range(start + 2 * q, stop, LANES):
                pair = sample_pair(code, dp, seed, i >> 1, n_total)
                for k in range(n_layers):
                    wk = layer_pair(wcode, wp, seed, i >> 1, n_total, k, WEIGHT_FAMILY)
                    W[0, k] = wk[0]
                    W[1, k] = wk[1]
                    if biased:
                        bk = layer_pair(bcode, bp, seed, i >> 1, n_total, k, BIAS_FAMILY)
                        B[0, k] = bk[0]
                        B[1, k] = bk[1]
                for h in range(2):
                    if i + h < stop:
                        y, gx = chain(nbt(pair[h]), W[h, :n_layers], B[h, :n_layers], p, noise,
                                      i + h, a_buf, g)
                        for k in range(n_ch):
                            if k < n_layers:
                                v = g[k]
                            elif k == n_layers:
                                v = gx
                            elif k == n_layers + 1:
                                v = y
                            else:
                                v = g[k - 2]  # df/db_{k-L-1}, at g[L + (k - L - 2)]
                            cuda.atomic.add(H, (k, accumulate(LS[h], MM, k, v)), 1)
            for h in range(2):
                for k in range(n_ch):
                    for s in range(4):
                        F[k, s] += LS[h, k, s]
        for k in range(n_ch):
            for s in range(4):
                F_g[b, k, s] = F[k, s]
            MM_g[b, k, 0] = MM[k, 0]
            MM_g[b, k, 1] = MM[k, 1]

    return stats_kernel
