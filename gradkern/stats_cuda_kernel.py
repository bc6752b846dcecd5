"""The ``@cuda.jit`` fused statistics kernel (see :mod:`gradkern.stats_cuda`).

A module of its own because it imports ``numba.cuda`` at the top: the CUDA
simulator swaps that module in a kernel's globals (not in closures), and
``import gradkern`` must not load it.
"""
import numba
import numpy as np
from numba import cuda

from .dists import sample_x
from .stats import accumulate, make_chain
from .stats_cuda import MAX_DEPTH

__all__ = ["make_kernel"]

_MAX_CH = MAX_DEPTH + 2


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
        F = cuda.local.array((_MAX_CH, 4), numba.float64)
        MM = cuda.local.array((_MAX_CH, 2), numba.float64)
        for k in range(n_ch):
            for s in range(4):
                F[k, s] = 0.0
            MM[k, 0] = np.inf
            MM[k, 1] = -np.inf
        start = (block0 + b) * block_size
        stop = min(start + block_size, n_total)
        for i in range(start, stop):
            x = nbt(sample_x(code, dp, seed, i, n_total))
            y, gx = chain(x, w, p, noise, i, a_buf, g)
            for k in range(n_ch):
                v = g[k] if k < n_layers else (gx if k == n_layers else y)
                cuda.atomic.add(H, (k, accumulate(F, MM, k, v)), 1)
        for k in range(n_ch):
            for s in range(4):
                F_g[b, k, s] = F[k, s]
            MM_g[b, k, 0] = MM[k, 0]
            MM_g[b, k, 1] = MM[k, 1]

    return stats_kernel
