"""The fused statistics kernel on the CPU (Numba, threads over blocks).

Per block, :data:`stats.LANES` = 64 samples at a time: draw their inputs
(``dists.filler``, one kernel per distribution kind; RReLU's slopes by
``stats.slope_params``, as on the GPU), run them through the chain together (``chain.core.make_block_chain``, the chain kernel's SIMD
loops), and add every df/dw_k, df/dx and f to the block's lane sums
(``stats.accumulate_lanes``), which are closed in lane order at the block's
end (``stats.close_lanes``).  Every step is a SIMD loop over the 64 samples
except the histogram increments.  Nothing of size N is ever allocated: a call
covers a chunk of whole blocks and returns their partials (memory ~ chunk
blocks x channels x 356 histogram columns).

Threads, not a ``parallel=True`` loop: each kernel is a serial ``nogil``
function over a range of blocks, and :func:`run_blocks` runs ranges of the
chunk on a few Python threads.  Measured (float32, normal inputs, depth 3,
2 cores, empty cache): compiling the ``prange`` form took 4.0 s per
activation, 2.5 s of it Numba's parfor lowering (a second, gufunc compile of
the loop body); the serial form takes 1.5 s.  A block's partials are its own
(``stats``: lanes, then blocks folded in order), so which thread runs it
changes no bit.  Python threads are also fork-safe, where GNU OpenMP's are not.

Points with per-sample layers (random weights, biases: :mod:`.layers`) run a
second kernel of the same shape that also fills each group's w_k and b_k from
their counter families; the fixed-weight kernel is left as it was, so it
costs nothing when they are unused.
"""
import threading

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

__all__ = ["run_chunk", "get_stats_kernel", "run_blocks"]


#: ranges of blocks per thread and call: more than 1, so that a thread the
#: OS does not schedule (a busy machine) holds up at most a small share
RANGES_PER_THREAD = 4


def _make_stats_kernel(forward, backward, stochastic, code):
    block_chain = make_block_chain(forward, backward, stochastic)
    fill_x = filler(code)

    @numba.njit(nogil=True, error_model="numpy")
    def stats_kernel(b_lo, b_hi, dp, seed, n_total, block0, block_size, w, p, noise, F, MM, H):
        n_layers = w.shape[0]
        n_ch = n_layers + 2
        dt = w.dtype
        for b in range(b_lo, b_hi):
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
                accumulate_lanes(S, M, Hb, logs, cols, vals, m)
            close_lanes(S, M, F[b], MM[b])

    # the kind by number: the four pair fillers are one closure's code (a key
    # from fill_x's bytecode alone served a uniform kernel for a normal sweep)
    return cache_kernel(stats_kernel, forward, backward, fill_x, f"stochastic={stochastic}",
                        f"dist_kind={code}", "threads")


def _make_sample_stats_kernel(forward, backward, stochastic, code, wcode, bcode, biased):
    """As ``_make_stats_kernel``, with each group's weights (and biases) drawn
    per sample and layer before the chain runs."""
    block_chain = make_sample_block_chain(forward, backward, stochastic, biased)
    fill_x = filler(code)
    fill_w = layer_filler(wcode)
    fill_b = layer_filler(bcode)

    @numba.njit(nogil=True, error_model="numpy")
    def stats_kernel(b_lo, b_hi, dp, wp, bp, seed, n_total, block0, block_size, n_layers, like,
                     p, noise, F, MM, H):
        n_ch = F.shape[1]
        dt = like.dtype  # the chain's dtype, from an empty array of it
        for b in range(b_lo, b_hi):
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
                accumulate_lanes(S, M, Hb, logs, cols, vals, m)
            close_lanes(S, M, F[b], MM[b])

    return cache_kernel(stats_kernel, forward, backward, fill_x, fill_w, fill_b,
                        f"stochastic={stochastic}", f"dist_kind={code}", f"weight_kind={wcode}",
                        f"bias_kind={bcode}", f"biased={biased}", "threads",
                        "per_sample_layers")


_KERNELS = {}


def get_sample_stats_kernel(ops, stochastic, code, wcode, bcode, biased):
    """The compiled per-sample-layer kernel (see :func:`get_stats_kernel`)."""
    key = ("per_sample", *ops, stochastic, code, wcode, bcode, biased)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_sample_stats_kernel(*ops, stochastic, code, wcode, bcode,
                                                           biased)
    return kernel


def get_stats_kernel(ops, stochastic, code):
    """The compiled fused kernel for ``ops`` = (forward, backward) and
    distribution kind ``code`` (built once per process, cached on disk per
    dtype like the chain kernels)."""
    key = (*ops, stochastic, code)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_stats_kernel(*ops, stochastic, code)
    return kernel


def _ranges(n_blocks, n_threads):
    """Contiguous (lo, hi) ranges of ``n_blocks`` blocks, in order."""
    n = max(1, min(n_blocks, RANGES_PER_THREAD * n_threads))
    return [(r * n_blocks // n, (r + 1) * n_blocks // n) for r in range(n)]


def run_blocks(kernel, n_blocks, args, n_threads=None):
    """Run ``kernel(lo, hi, *args)`` over the ranges of blocks ``0 .. n_blocks-1``
    on ``n_threads`` threads (default: Numba's thread count), the caller's
    among them; each thread takes the next range until none is left.  The
    first error a range raises is raised here once every thread has stopped.
    """
    if n_threads is None:
        n_threads = _threads.num_threads()
    todo = _ranges(n_blocks, n_threads)
    todo.reverse()  # pop() takes them in order
    lock = threading.Lock()
    errors = []

    def work():
        while True:
            with lock:
                if errors or not todo:
                    return
                lo, hi = todo.pop()
            try:
                kernel(np.int64(lo), np.int64(hi), *args)
            except BaseException as exc:  # noqa: B036 -- re-raised in the caller
                with lock:
                    errors.append(exc)
                return

    helpers = [threading.Thread(target=work, daemon=True)
               for _ in range(min(n_threads, len(todo)) - 1)]
    for t in helpers:
        t.start()
    work()
    for t in helpers:
        t.join()
    if errors:
        raise errors[0]


def noise_tuple(act, seed, dtype):
    """The kernels' ``noise`` argument: (seed, lower, upper), bounds rounded to dtype."""
    if act.stochastic:
        lo, hi = (float(dtype.type(v)) for v in act.noise_bounds())
    else:
        lo = hi = 0.0
    return (np.uint64(seed), lo, hi)


def _stats_call(act, dist, weights, seed, n_total, block0, n_blocks, dtype):
    """(kernel, its arguments after the block range, Partials arrays) of a chunk."""
    if isinstance(weights, RandomLayers):
        F, MM, H = empty_partials(n_blocks, n_channels(weights.depth, weights.biased))
        code, dp = dist.kernel_params()
        wcode, wp = weights.weight.kernel_params()
        # without biases the bias fill is never called: any kind compiles it
        bcode, bp = weights.bias.kernel_params() if weights.biased else (5, np.zeros(4))
        kernel = get_sample_stats_kernel(act.ops(), act.stochastic, code, wcode, bcode,
                                         weights.biased)
        args = (dp, wp, bp, np.uint64(seed), np.int64(n_total), np.int64(block0),
                np.int64(BLOCK), np.int64(weights.depth), np.empty(0, dtype),
                act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM, H)
        return kernel, args, (F, MM, H)
    w = np.ascontiguousarray(weights, dtype=dtype)
    F, MM, H = empty_partials(n_blocks, w.shape[0] + 2)
    code, dp = dist.kernel_params()
    kernel = get_stats_kernel(act.ops(), act.stochastic, code)
    args = (dp, np.uint64(seed), np.int64(n_total), np.int64(block0), np.int64(BLOCK), w,
            act.kernel_params(dtype), noise_tuple(act, seed, dtype), F, MM, H)
    return kernel, args, (F, MM, H)


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
    kernel, args, (F, MM, H) = _stats_call(act, dist, weights, seed, n_total, block0, n_blocks,
                                           dtype)
    run_blocks(kernel, n_blocks, args)
    return Partials(block0, F, MM, H.sum(axis=0))


# -- compiling a sweep's kernels ahead, in worker processes (_numba.prewarm) --

def kernel_spec(point, dtype):
    """What a worker needs to compile ``point``'s kernel (picklable), and the
    key that tells kernels apart: points of one key share a kernel."""
    act = point.activation
    w = point.weights(dtype)
    kinds = (w.weight.kernel_params()[0], w.bias.kernel_params()[0] if w.biased else 5,
             w.biased) if isinstance(w, RandomLayers) else ()
    key = (act.ops(), act.stochastic, point.dist.code, kinds, np.dtype(dtype).name)
    return key, (act.name, dict(act.params), point.dist, w, np.dtype(dtype).name)


def _probe(spec):
    from ..activations import activation

    name, params, dist, w, dtype = spec
    kernel, args, _ = _stats_call(activation(name, **params), dist, w, 0, BLOCK, 0, 1,
                                  np.dtype(dtype))
    return kernel, (np.int64(0), np.int64(0)) + args


def compile_kernel(spec):
    """Compile (or load) the stats kernel of :func:`kernel_spec`'s ``spec``
    into the disk cache, running nothing (a worker's task)."""
    kernel, args = _probe(spec)
    kernel.compile(tuple(kernel.typeof_pyval(a) for a in args))


def is_compiled(spec):
    """True when the kernel of ``spec`` is in memory or the disk cache."""
    from .._numba.prewarm import is_cached

    return is_cached(*_probe(spec))
