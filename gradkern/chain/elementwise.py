"""The activation alone, elementwise: ``Activation.forward`` and ``.derivative``.

What ``module(x)`` and its autograd give for a ``torch.nn`` activation module
on the same tensor: the activation's scalar forward ``y = f(x)`` and its
backward with upstream gradient 1, ``backward(1, x, y)``, applied to each
element directly.  Not a depth-1 chain: the chain's ``Linear`` step (``1*x``
accumulated from +0, :func:`.core.linear`) turns -0.0 into +0.0, so
``ReLU(-0.0)`` would come out +0.0 where ``nn.ReLU()(torch.tensor(-0.0))`` is
-0.0 (and likewise for 11 other activations); here the input reaches the
activation as it is.  Every other input gives the depth-1 chain's numbers
(but for a -0.0 derivative, which the chain's Linear also makes +0.0).

A NaN input gives a NaN derivative, as in the chain: torch's value there
depends on whether the element took its scalar or its SIMD path (Hardtanh:
g or 0).  RReLU in training mode multiplies by a slope per element, from
``noise`` (torch's recorded noise, say) or drawn from ``seed`` as
:func:`gradkern.rrelu_slopes` draws layer 1's.

The kernels are built from ``Activation.ops()`` like the chain kernels
(:mod:`.cpu`), one per (forward, backward) pair, and cached on disk.
"""
import contextlib

import numba
import numpy as np

from .._numba import threads
from .._numba.cache import cache_kernel
from ..stream.dists import rrelu_slopes
from .arrays import _as_real_array, _fresh_seed, _to_dtype, compute_dtype

__all__ = ["elementwise", "get_kernel", "SERIAL_BELOW"]

#: below this many elements the serial build runs (as for the chain kernel,
#: :data:`.cpu.SERIAL_BELOW`: waking a thread team costs milliseconds on a
#: busy machine, 1e4 elements cost microseconds)
SERIAL_BELOW = 65536

#: parallel chunks per thread: more than 1 so an uneven tail balances
CHUNKS_PER_THREAD = 4


def _make_kernel(forward, backward, per_element_noise, parallel):
    noisy = per_element_noise

    @numba.njit(parallel=parallel, error_model="numpy")
    def elementwise_kernel(x, p, noise, out_y, out_d, n_threads):
        n = x.shape[0]
        n_chunks = max(1, min(n, CHUNKS_PER_THREAD * n_threads))
        one = x.dtype.type(1.0)
        for c in numba.prange(n_chunks):
            lo = c * n // n_chunks
            hi = (c + 1) * n // n_chunks
            # per-chunk views indexed by j in range(m), for vector loads and
            # stores (see the chain kernel, .cpu)
            xb = x[lo:hi]
            yb = out_y[lo:hi]
            db = out_d[lo:hi]
            nb = noise[lo:hi] if noisy else noise
            for j in range(hi - lo):
                xj = xb[j]
                pj = (nb[j], p[1], p[2], p[3]) if noisy else p
                y = forward(xj, pj)
                d = backward(one, xj, y, pj)
                yb[j] = y
                # NaN in, NaN out, as in the chain (.core)
                db[j] = xj if xj != xj else d

    return cache_kernel(elementwise_kernel, forward, backward, f"noise={noisy}",
                        f"parallel={parallel}")


_KERNELS = {}


def get_kernel(ops, per_element_noise=False, parallel=True):
    """The compiled elementwise kernel for ``ops`` = (forward, backward)."""
    key = (*ops, per_element_noise, parallel)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_kernel(*ops, per_element_noise, parallel)
    return kernel


def _slopes(act, noise, seed, shape, n, dtype):
    """RReLU training's slope per element: ``noise`` (the shape of x), or
    layer 1's slopes of a chain with ``seed`` (fresh when None)."""
    if not act.stochastic:
        for key, value in (("noise", noise), ("seed", seed)):
            if value is not None:
                raise ValueError(f"{key}= is only for an activation that draws a slope per "
                                 f"element (RReLU in training mode), not {act!r}")
        return np.empty(0, dtype)  # a placeholder the kernel does not read
    if noise is None:
        lower, upper = act.noise_bounds()
        seed = _fresh_seed() if seed is None else seed
        return np.ascontiguousarray(rrelu_slopes(n, 1, seed, lower, upper, dtype=dtype)[:, 0])
    if seed is not None:
        raise ValueError("pass noise= or seed=, not both: seed= draws the slopes that noise= "
                         "gives")
    noise = _as_real_array(noise, "noise")
    if noise.shape != shape:
        raise ValueError(f"noise must have the shape of x, {shape}, got {noise.shape}")
    return _to_dtype(noise, dtype, "noise").reshape(-1)


def elementwise(x, act, *, noise=None, seed=None):
    """``(f(x), f'(x))`` of the resolved activation ``act``, elementwise.

    ``x`` of any shape; float32 stays float32, any other real dtype is
    computed in float64 (the chain's rule).  Returns two new arrays of x's
    shape; x is never written.
    """
    arr = _as_real_array(x, "x")
    dtype = compute_dtype(arr)
    flat = _to_dtype(arr, dtype, "x").reshape(-1)  # C-contiguous: a view, or x's copy
    n = flat.shape[0]
    slopes = _slopes(act, noise, seed, arr.shape, n, dtype)
    params = act.kernel_params(dtype)
    y, d = np.empty(n, dtype), np.empty(n, dtype)
    parallel = n >= SERIAL_BELOW and threads.parallel_allowed()
    kernel = get_kernel(act.ops(), per_element_noise=act.stochastic, parallel=parallel)
    with threads.launch() if parallel else contextlib.nullcontext():
        kernel(flat, params, slopes, y, d, threads.num_threads())
    return y.reshape(arr.shape), d.reshape(arr.shape)
