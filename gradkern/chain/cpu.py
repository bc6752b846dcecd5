"""The ``cpu`` backend: NumPy arrays through the Numba chain kernel (parallel).

Layout for speed: samples are taken in blocks of ``BLOCK``; within a block the
layers are the outer loop and the samples the inner one, so every inner loop
is the same scalar code over 256 independent samples, which LLVM turns into
SIMD code, 8 float32 lanes on this AVX-512 machine (LLVM's tuning prefers
256-bit vectors); the scalar functions are branch-free: selects, no libm calls
(see ``_numba.vecmath``).  The forward keeps a_0..a_L for the block in a scratch
array of (L+1) x BLOCK values, allocated once per parallel chunk, not per
sample; the backward overwrites a_k with df/dw_k once it is no longer needed,
and the block is then written out.  z_k is recomputed as w_k * a_{k-1}, the
same single rounding, so nothing else is kept (the chain rule itself:
:mod:`.core`).
"""
import contextlib

import numba
import numpy as np

from .._numba import threads
from .._numba.cache import cache_kernel
from .arrays import prepare_inputs, prepare_noise
from .core import BLOCK, make_block_chain, make_layered_block_chain
from .layers import layer_plan, prepare_biases
from .outputs import Outputs, prepare_wanted_out, resolve_outputs

__all__ = ["chain_grad", "get_kernel", "get_layered_kernel", "SERIAL_BELOW", "CHUNKS_PER_THREAD"]

#: parallel chunks per thread: more than 1 so an uneven tail balances
CHUNKS_PER_THREAD = 4


#: below this many samples the serial build runs: there is too little to
#: share (1e4 samples: 0.025 ms on one core; waking GNU OpenMP's team once
#: cost 4.7 ms per call on a busy machine, see _threads)
SERIAL_BELOW = 65536


def _make_chain_kernel(forward, backward, per_sample_noise, parallel=True, outputs=Outputs()):
    # outputs: which results are written (chain_grad(outputs=...)); the arrays
    # of the others are empty placeholders the kernel never touches
    noisy = per_sample_noise
    write_y, write_gw, write_gx, _ = outputs
    backward_needed = write_gw or write_gx
    saving = getattr(forward, "saving", None)
    saves = saving is not None
    block_chain = make_block_chain(forward, backward, per_sample_noise, in_place=True,
                                   backward_needed=backward_needed)

    @numba.njit(parallel=parallel, error_model="numpy")
    def chain_kernel(x, w, p, noise, out_y, out_gw, out_gx, n_threads):
        # n_threads comes from the caller: numba.get_num_threads() inside the
        # kernel is a ctypes-pointer global, which disables the disk cache
        n = x.shape[0]
        n_layers = w.shape[0]
        n_blocks = (n + BLOCK - 1) // BLOCK
        n_chunks = min(n_blocks, CHUNKS_PER_THREAD * n_threads)
        for c in numba.prange(n_chunks):
            a = np.empty((n_layers + 1, BLOCK), dtype=x.dtype)
            g = np.empty(BLOCK, dtype=x.dtype)
            # the forward's saved values (block_chain's ``dw`` in place), if any
            saved = np.empty((n_layers if saves else 0, BLOCK), dtype=x.dtype)
            # a result not asked for goes to an L1 scratch of one block instead
            # of memory; the loops stay those of the full kernel (measured,
            # Tanhshrink float32: leaving a copy loop out made LLVM keep the
            # chain's loops scalar, 137-166 vs 23 ns/sample)
            ys, gxs, gws = _scratch(write_y, write_gx, write_gw, n_layers, x.dtype)
            for b in range(c * n_blocks // n_chunks, (c + 1) * n_blocks // n_chunks):
                i0 = b * BLOCK
                m = min(BLOCK, n - i0)
                # per-block views indexed by j in range(m): with x[i0 + j] LLVM
                # could not rule out Numba's negative-index wraparound and used
                # gathers/scatters instead of vector loads/stores
                nb = noise[i0:i0 + m] if noisy else noise
                yb = out_y[i0:i0 + m] if write_y else ys[:m]
                gxb = out_gx[i0:i0 + m] if write_gx else gxs[:m]
                gwb = out_gw[i0:i0 + m] if write_gw else gws[:m]
                block_chain(x[i0:i0 + m], w, p, nb, a, saved, g, yb, m)
                if backward_needed:
                    for j in range(m):
                        gxb[j] = g[j]
                    for k in range(n_layers):
                        for j in range(m):
                            gwb[j, k] = a[k + 1, j]

    return cache_kernel(chain_kernel, forward, backward, *(saving or ()), f"noise={noisy}",
                        f"parallel={parallel}",
                        *(() if outputs.full else (outputs.key(),)))


@numba.njit(inline="always")
def _scratch(write_y, write_gx, write_gw, n_layers, dtype):
    # one block of L1 scratch for each result not written to memory (else empty)
    return (np.empty(0 if write_y else BLOCK, dtype=dtype),
            np.empty(0 if write_gx else BLOCK, dtype=dtype),
            np.empty((0 if write_gw else BLOCK, n_layers), dtype=dtype))


_KERNELS = {}


def get_kernel(ops, per_sample_noise=False, parallel=True, outputs=Outputs()):
    """The compiled chain kernel for ``ops`` = (forward, backward)
    (``Activation.ops()``), writing the results ``outputs`` names.

    Built once per process and per (forward, backward) pair and outputs set;
    compiled lazily per dtype and memory layout and cached on disk, so a
    second process loads it instead of compiling (see ``_numba.cache``).
    """
    key = (*ops, per_sample_noise, parallel, tuple(outputs))
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_chain_kernel(*ops, per_sample_noise, parallel, outputs)
    return kernel


def _make_layered_kernel(plan, parallel=True, outputs=None):
    # the plain kernel's loop nest over a LayerPlan's block chain; df/db goes
    # through a second scratch, (L x BLOCK), as df/dw goes through ``a``
    has_bias, noisy = plan.has_bias, plan.stochastic
    outputs = Outputs(bias_grads=has_bias) if outputs is None else outputs
    write_y, write_gw, write_gx, write_gb = outputs
    write_gb = write_gb and has_bias
    backward_needed = write_gw or write_gx or write_gb
    block_chain = make_layered_block_chain(plan.slots, has_bias, backward_needed)

    @numba.njit(parallel=parallel, error_model="numpy")
    def layered_kernel(x, w, b, slot, params, noise, out_y, out_gw, out_gx, out_gb, n_threads):
        n = x.shape[0]
        n_layers = w.shape[0]
        n_blocks = (n + BLOCK - 1) // BLOCK
        n_chunks = min(n_blocks, CHUNKS_PER_THREAD * n_threads)
        for c in numba.prange(n_chunks):
            a = np.empty((n_layers + 1, BLOCK), dtype=x.dtype)
            gb = np.empty((n_layers if has_bias else 0, BLOCK), dtype=x.dtype)
            g = np.empty(BLOCK, dtype=x.dtype)
            # results not asked for go to L1 scratch, as in the plain kernel
            ys, gxs, gws = _scratch(write_y, write_gx, write_gw, n_layers, x.dtype)
            gbs = np.empty((0 if write_gb or not has_bias else BLOCK, n_layers), dtype=x.dtype)
            for blk in range(c * n_blocks // n_chunks, (c + 1) * n_blocks // n_chunks):
                i0 = blk * BLOCK
                m = min(BLOCK, n - i0)
                nb = noise[i0:i0 + m] if noisy else noise
                yb = out_y[i0:i0 + m] if write_y else ys[:m]
                gxb = out_gx[i0:i0 + m] if write_gx else gxs[:m]
                gwb = out_gw[i0:i0 + m] if write_gw else gws[:m]
                block_chain(x[i0:i0 + m], w, b, slot, params, nb, a, gb, g, yb, m)
                if backward_needed:
                    for j in range(m):
                        gxb[j] = g[j]
                    for k in range(n_layers):
                        for j in range(m):
                            gwb[j, k] = a[k + 1, j]
                if has_bias and backward_needed:
                    gbb = out_gb[i0:i0 + m] if write_gb else gbs[:m]
                    for k in range(n_layers):
                        for j in range(m):
                            gbb[j, k] = gb[k, j]

    full = outputs == Outputs(bias_grads=has_bias)
    return cache_kernel(layered_kernel, *plan.cache_parts(), f"parallel={parallel}",
                        *(() if full else (outputs.key(),)))


def get_layered_kernel(plan, parallel=True, outputs=None):
    """The compiled chain kernel for a :class:`~.layers.LayerPlan` (biases, or
    an activation per layer) writing the results ``outputs`` names (None:
    all): one per process and per (slots, bias flag, outputs), whatever the
    depth or the order of the layers; cached on disk like
    :func:`get_kernel`'s."""
    outputs = Outputs(bias_grads=plan.has_bias) if outputs is None else outputs
    key = (*plan.cache_parts(), parallel, tuple(outputs))
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_layered_kernel(plan, parallel, outputs)
    return kernel


def chain_grad(x, act, weights, *, biases=None, out=None, noise=None, seed=None, outputs=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation, or a
    tuple of them, one per layer."""
    caller = (x, weights, noise, biases)  # as passed: out= may overlap none of them either
    wanted = resolve_outputs(outputs, biases is not None)
    x, w, dtype = prepare_inputs(x, weights)
    n, n_layers = x.shape[0], w.shape[0]
    act, plan = layer_plan(act, biases is not None, n_layers)
    if plan is not None:
        return _layered_chain_grad(x, w, plan, biases, out, noise, seed, caller, wanted)
    noise_arr = prepare_noise(act, noise, seed, n, n_layers, dtype)
    res, arrays = prepare_wanted_out(out, wanted, n, n_layers, dtype, (x, w, noise_arr) + caller,
                                     False)
    parallel = n >= SERIAL_BELOW and threads.parallel_allowed()
    kernel = get_kernel(act.ops(), per_sample_noise=act.stochastic, parallel=parallel,
                        outputs=wanted)
    with threads.launch() if parallel else contextlib.nullcontext():
        kernel(x, w, act.kernel_params(dtype), noise_arr, *arrays[:3], threads.num_threads())
    res.backend = "cpu"
    return res


def _layered_chain_grad(x, w, plan, biases, out, noise, seed, caller, wanted):
    n, n_layers, dtype = x.shape[0], w.shape[0], x.dtype
    b = prepare_biases(biases, n_layers, dtype) if plan.has_bias else np.zeros(n_layers, dtype)
    noise_arr = plan.noise(noise, seed, n, dtype)
    inputs = (x, w, b, noise_arr) + caller
    res, arrays = prepare_wanted_out(out, wanted, n, n_layers, dtype, inputs, plan.has_bias)
    parallel = n >= SERIAL_BELOW and threads.parallel_allowed()
    kernel = get_layered_kernel(plan, parallel=parallel, outputs=wanted)
    with threads.launch() if parallel else contextlib.nullcontext():
        kernel(x, w, b, plan.slot_index, plan.slot_params(dtype), noise_arr, *arrays,
               threads.num_threads())
    res.backend = "cpu"
    return res
