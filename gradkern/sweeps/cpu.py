"""The fused statistics kernel on the CPU (Numba, parallel over blocks).

Per block, :data:`stats.LANES` = 64 samples at a time: draw their inputs
(``dists.filler``, one kernel per distribution kind; RReLU's slopes by
``stats.slope_params``, as on the GPU), run them through the chain together (``chain.core.make_block_chain``, the chain kernel's SIMD
loops), and add every df/dw_k, df/dx and f to the block's lane sums
(``stats.accumulate_lanes``), which are closed in lane order at the block's
end (``stats.close_lanes``).  Every step is a SIMD loop over the 64 samples
except the histogram increments.  Nothing of size N is ever allocated: a call
covers a chunk of whole blocks and returns their partials (memory ~ chunk
blocks x channels x 356 histogram columns).

Points with per-sample layers (random weights, biases: :mod:`.layers`) run a
second kernel of the same shape that also fills each group's w_k and b_k from
their counter families; the fixed-weight kernel is left as it was, so it
costs nothing when they are unused.
"""
import contextlib

import numba
import numpy as np

from .._numba import threads as _threads
from .._numba.cache import cache_kernel
from ..stream.dists import filler, layer_filler
from ..stream.philox import BIAS_FAMILY, WEIGHT_FAMILY
from ..chain.core import make_block_chain
from .grid import RandomLayers
from .layers import make_sample_block_chain, n_channels
from .stats import (BLOCK, LANES, Partials, accumulate_lanes, close_lanes, empty_partials,
                    slope_params)

__all__ = ["run_chunk", "get_stats_kernel"]


def _make_stats_kernel(forward, backward, stochastic, code, parallel=True):
    block_chain = make_block_chain(forward, backward, stochastic)
    fill_x = filler(code)

    @numba.njit(parallel=parallel, error_model="numpy")
    def stats_kernel(dp, seed, n_total, block0, block_size, w, p, noise, F, MM, H):
        n_layers = w.shape[0]
        n_ch = n_layers + 2
        dt = w.dtype
        for b in numba.prange(F.shape[0]):
            xs = np.empty(LANES, dt)
            # RReLU's slopes stored (layer, sample) and read through the
            # transpose as block_chain's nb[j, k]: contiguous in the sample, so
            # both the Philox fill and the chain's loads are SIMD
            slopes = np.empty((n_layers, LANES), dt)
            nb = slopes.T
            # block_chain leaves df/dw_k in vals[k-1], df/dx in g and f in y,
            # each its own allocation so that LLVM knows them disjoint and
            # vectorises without runtime alias checks; g and y are then copied
            # to vals[L], vals[L+1], so that one inlined accumulate_lanes loop
            # serves every channel (three inlined copies tripled compile time)
            a = np.empty((n_layers + 1, LANES), dt)
            vals = np.empty((n_ch, LANES), dt)
            g = np.empty(LANES, dt)
            y = np.empty(LANES, dt)
            logs = np.empty(LANES, dt)
            cols = np.empty(LANES, np.int64)
            # allocated here, not by a helper: LLVM then knows that no two
            # scratch arrays overlap and vectorises without runtime alias
            # checks (through a helper's return the kernel ran 1.6x slower)
            S = np.zeros((n_ch, 4, LANES))
            M = np.empty((n_ch, 2, LANES))
            M[:, 0] = np.inf
            M[:, 1] = -np.inf
            Hb = H[b]
            start = (block0 + b) * block_size
            stop = min(start + block_size, n_total)
            for s0 in range(start, stop, LANES):
                m = min(LANES, stop - s0)
                fill_x(dp, seed, s0, m, n_total, xs)  # s0 is even: BLOCK, LANES are
                if stochastic:
                    for k in range(n_layers):
                        for j in range(m):
                            slopes[k, j] = slope_params(p, noise, s0 + j, k)[0]
                block_chain(xs, w, p, nb, a, vals, g, y, m)
                for j in range(m):
                    vals[n_layers, j] = g[j]
                for j in range(m):
                    vals[n_layers + 1, j] = y[j]
                for ch in range(n_ch):
                    accumulate_lanes(S, M, Hb, logs, cols, vals, ch, m)
            close_lanes(S, M, F[b], MM[b])

    # the kind by number: the four pair fillers are one closure's code (a key
    # from fill_x's bytecode alone served a uniform kernel for a normal sweep)
    return cache_kernel(stats_kernel, forward, backward, fill_x, f"stochastic={stochastic}",
                        f"dist_kind={code}", f"parallel={parallel}")


def _make_sample_stats_kernel(forward, backward, stochastic, code, wcode, bcode, biased,
                              parallel=True):
    """As ``_make_stats_kernel``, with each group's weights (and biases) drawn
    per sample and layer before the chain runs."""
    block_chain = make_sample_block_chain(forward, backward, stochastic, biased)
    fill_x = filler(code)
    fill_w = layer_filler(wcode)
    fill_b = layer_filler(bcode)

    @numba.njit(parallel=parallel, error_model="numpy")
    def stats_kernel(dp, wp, bp, seed, n_total, block0, block_size, n_layers, like, p, noise,
                     F, MM, H):
        n_ch = F.shape[1]
        dt = like.dtype  # the chain's dtype, from an empty array of it
        for b in numba.prange(F.shape[0]):
            xs = np.empty(LANES, dt)
            slopes = np.empty((n_layers, LANES), dt)
            nb = slopes.T
            W = np.empty((n_layers, LANES), dt)
            B = np.empty((n_layers, LANES), dt)
            a = np.empty((n_layers + 1, LANES), dt)
            vals = np.empty((n_ch, LANES), dt)
            g = np.empty(LANES, dt)
            y = np.empty(LANES, dt)
            logs = np.empty(LANES, dt)
            cols = np.empty(LANES, np.int64)
            S = np.zeros((n_ch, 4, LANES))
            M = np.empty((n_ch, 2, LANES))
            M[:, 0] = np.inf
            M[:, 1] = -np.inf
            Hb = H[b]
            start = (block0 + b) * block_size
            stop = min(start + block_size, n_total)
            for s0 in range(start, stop, LANES):
                m = min(LANES, stop - s0)
                fill_x(dp, seed, s0, m, n_total, xs)
                for k in range(n_layers):
                    fill_w(wp, seed, s0, m, n_total, WEIGHT_FAMILY, W, k)
                if biased:
                    for k in range(n_layers):
                        fill_b(bp, seed, s0, m, n_total, BIAS_FAMILY, B, k)
                if stochastic:
                    for k in range(n_layers):
                        for j in range(m):
                            slopes[k, j] = slope_params(p, noise, s0 + j, k)[0]
                block_chain(xs, W, B, p, nb, a, vals, g, y, m)
                for j in range(m):
                    vals[n_layers, j] = g[j]
                for j in range(m):
                    vals[n_layers + 1, j] = y[j]
                for ch in range(n_ch):
                    accumulate_lanes(S, M, Hb, logs, cols, vals, ch, m)
            close_lanes(S, M, F[b], MM[b])

    return cache_kernel(stats_kernel, forward, backward, fill_x, fill_w, fill_b,
                        f"stochastic={stochastic}", f"dist_kind={code}", f"weight_kind={wcode}",
                        f"bias_kind={bcode}", f"biased={biased}", f"parallel={parallel}",
                        "per_sample_layers")


_KERNELS = {}


def get_sample_stats_kernel(ops, stochastic, code, wcode, bcode, biased, parallel=True):
    """The compiled per-sample-layer kernel (see :func:`get_stats_kernel`)."""
    key = ("per_sample", *ops, stochastic, code, wcode, bcode, biased, parallel)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_sample_stats_kernel(*ops, stochastic, code, wcode, bcode,
                                                           biased, parallel)
    return kernel


def get_stats_kernel(ops, stochastic, code, parallel=True):
    """The compiled fused kernel for ``ops`` = (forward, backward) and
    distribution kind ``code`` (built once per process, cached on disk per
    dtype like the chain kernels); the serial build only where parallel
    regions cannot run (``_numba.threads.parallel_allowed``)."""
    key = (*ops, stochastic, code, parallel)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_stats_kernel(*ops, stochastic, code, parallel)
    return kernel


def noise_tuple(act, seed, dtype):
    """The kernels' ``noise`` argument: (seed, lower, upper), bounds rounded to dtype."""
    if act.stochastic:
        lo, hi = (float(dtype.type(v)) for v in act.noise_bounds())
    else:
        lo = hi = 0.0
    return (np.uint64(seed), lo, hi)


def run_chunk(act, dist, weights, seed, n_total, block0, n_blocks, dtype):
    """Statistics of blocks ``block0 .. block0+n_blocks-1`` of one point.

    Parameters
    ----------
    act : Activation
    dist : Dist
    weights : numpy array (L,) in ``dtype``, or grid.RandomLayers
        Fixed weights, or the distributions of per-sample weights and biases.
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
    if isinstance(weights, RandomLayers):
        return _run_sample_chunk(act, dist, weights, seed, n_total, block0, n_blocks, dtype)
    w = np.ascontiguousarray(weights, dtype=dtype)
    n_channels = w.shape[0] + 2
    F, MM, H = empty_partials(n_blocks, n_channels)
    code, dp = dist.kernel_params()
    parallel = _threads.parallel_allowed()
    kernel = get_stats_kernel(act.ops(), act.stochastic, code, parallel)
    with _threads.launch() if parallel else contextlib.nullcontext():
        kernel(dp, np.uint64(seed), np.int64(n_total), np.int64(block0), np.int64(BLOCK), w,
               act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM, H)
    return Partials(block0, F, MM, H.sum(axis=0))


def _run_sample_chunk(act, dist, layers, seed, n_total, block0, n_blocks, dtype):
    F, MM, H = empty_partials(n_blocks, n_channels(layers.depth, layers.biased))
    code, dp = dist.kernel_params()
    wcode, wp = layers.weight.kernel_params()
    # without biases the bias fill is never called: any kind compiles it
    bcode, bp = layers.bias.kernel_params() if layers.biased else (5, np.zeros(4))
    parallel = _threads.parallel_allowed()
    kernel = get_sample_stats_kernel(act.ops(), act.stochastic, code, wcode, bcode,
                                     layers.biased, parallel)
    with _threads.launch() if parallel else contextlib.nullcontext():
        kernel(dp, wp, bp, np.uint64(seed), np.int64(n_total), np.int64(block0), np.int64(BLOCK),
               np.int64(layers.depth), np.empty(0, dtype), act.kernel_params(dtype),
               noise_tuple(act, seed, dtype),
               F, MM, H)
    return Partials(block0, F, MM, H.sum(axis=0))
