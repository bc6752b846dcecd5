"""The Numba CPU chain-rule kernel, one compiled instance per activation.

For f = a(w_L * a(... a(w_1 * x))), each sample is one forward and one backward
sweep over the L layers:

    forward:  a_0 = x;  z_k = w_k * a_{k-1};  a_k = act(z_k)           (k = 1..L)
    backward: g = 1;    g_z = act'(z_k) . g   (PyTorch's backward, as a VJP)
              df/dw_k = g_z * a_{k-1};  g = g_z * w_k                   (k = L..1)
              df/dx = g

Layout for speed: samples are taken in blocks of ``BLOCK``; within a block the
layers are the outer loop and the samples the inner one, so every inner loop
is the same scalar code over 256 independent samples, which LLVM turns into
SIMD code, 8 float32 lanes on this AVX-512 machine (LLVM's tuning prefers
256-bit vectors); the scalar functions are branch-free: selects, no libm calls
(see ``_vecmath``).  The forward keeps a_0..a_L for the block in a scratch
array of (L+1) x BLOCK values, allocated once per parallel chunk, not per
sample; the backward overwrites a_k with df/dw_k once it is no longer needed,
and the block is then written out.  z_k is recomputed as w_k * a_{k-1}, the
same single rounding, so nothing else is kept.

Each product is the one multiplication PyTorch's Linear(1, 1) does, in the
same dtype and with no FMA contraction (Numba's default), which is why
piecewise-linear activations come out bit-identical to autograd.  Linear runs
a matmul, which accumulates from +0: ``0 + w*a`` turns a -0.0 product into
+0.0 (and changes nothing else), in the forward and in both backward products;
``_linear`` does the same so that even the sign of zero matches.
"""
import numba
import numpy as np

from ._numba_util import cache_kernel

__all__ = ["get_kernel", "make_block_chain"]


@numba.njit(error_model="numpy", forceinline=True)
def _linear(a, b):
    """``a*b`` as a 1x1 matmul computes it: accumulated from +0, so -0 -> +0."""
    return a * b + type(a)(0.0)


# Parameters of layer k for sample i, as the CUDA kernel (kernels_cuda) reads
# them; the CPU kernel inlines the same two cases (see _make_chain_kernel).
@numba.njit(forceinline=True)
def _shared_params(p, noise, i, k):
    return p


@numba.njit(forceinline=True)
def _noise_params(p, noise, i, k):
    # RReLU training: the slope of sample i at layer k
    return (noise[i, k], p[1], p[2], p[3])


#: samples per block: (L+1) x 256 float32 scratch is 4 KB at depth 3 and stays
#: in L1 up to depth ~45; 256 = 16 AVX-512 float32 vectors per inner loop
BLOCK = 256
#: parallel chunks per thread: more than 1 so an uneven tail balances
CHUNKS_PER_THREAD = 4


#: below this many samples the serial build runs: there is too little to
#: share (1e4 samples: 0.025 ms on one core; waking GNU OpenMP's team once
#: cost 4.7 ms per call on a busy machine, see _threads)
SERIAL_BELOW = 65536


def make_block_chain(forward, backward, per_sample_noise, in_place=False):
    """The chain over one block of ``m`` samples, layers outer and samples inner.

    ``block_chain(xb, w, p, nb, a, dw, g, yb, m)`` reads inputs ``xb[:m]`` (and
    RReLU's slopes ``nb[j, k]`` when ``per_sample_noise``), keeps a_0..a_L in
    the scratch ``a`` ((L+1) x m), and leaves ``g[:m]`` = df/dx, ``yb[:m]`` = f
    and df/dw_{k+1} in ``dw[k, :m]``, or with ``in_place`` in ``a[k + 1, :m]``
    (``dw`` unused).  Shared by the chain kernel and the fused sweep kernel
    (``stats_cpu``), so both run the same SIMD loops and the same operations.

    Two forms of the backward because LLVM vectorised each in one caller only.
    In place, one loop per layer reads and writes ``a`` and ``g``: SIMD in the
    chain kernel, where it moves the fewest bytes (86-95% of the memory floor
    for the piecewise-linear activations; 80-86% with the other form).  In
    the sweep kernel the same loop stayed scalar (Tanhshrink's backward: 25 ns
    per sample); there each layer is three loops that each write one array
    (3.6 ns).
    """
    # RReLU training: slot 0 is the sample's noise at layer k, read in the
    # loop itself under a closure constant (Numba prunes the other branch).
    # Handing the noise array to a helper instead made Numba incref/decref it
    # around every call: atomics in the inner loop, 16.6 vs 7 ns/sample (ELU).
    noisy = per_sample_noise

    # inline at Numba IR level: the loops must sit in the caller's body, where
    # the views' strides are known, or LLVM keeps them scalar
    @numba.njit(inline="always", error_model="numpy")
    def block_chain(xb, w, p, nb, a, dw, g, yb, m):
        n_layers = w.shape[0]
        one = a.dtype.type(1.0)
        for j in range(m):
            a[0, j] = xb[j]
        for k in range(n_layers):
            wk = w[k]
            for j in range(m):
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                a[k + 1, j] = forward(_linear(wk, a[k, j]), pk)
        for j in range(m):
            yb[j] = a[n_layers, j]
            g[j] = one
        for k in range(n_layers - 1, -1, -1):
            wk = w[k]
            if in_place:
                for j in range(m):
                    a_prev = a[k, j]
                    z = _linear(wk, a_prev)
                    pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                    gz = backward(g[j], z, a[k + 1, j], pk)
                    # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                    gz = z if z != z else gz
                    a[k + 1, j] = _linear(gz, a_prev)  # a_{k+1} is done with: df/dw_{k+1}
                    g[j] = _linear(gz, wk)
                continue
            # the same operations as three loops, each writing one array
            for j in range(m):
                z = _linear(wk, a[k, j])
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                gz = backward(g[j], z, a[k + 1, j], pk)
                # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                dw[k, j] = z if z != z else gz  # g_z, for the next two loops
            for j in range(m):
                g[j] = _linear(dw[k, j], wk)
            for j in range(m):
                dw[k, j] = _linear(dw[k, j], a[k, j])  # df/dw_{k+1} = g_z * a_k

    return block_chain


def _make_chain_kernel(forward, backward, per_sample_noise, parallel=True):
    noisy = per_sample_noise
    block_chain = make_block_chain(forward, backward, per_sample_noise, in_place=True)

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
            for b in range(c * n_blocks // n_chunks, (c + 1) * n_blocks // n_chunks):
                i0 = b * BLOCK
                m = min(BLOCK, n - i0)
                # per-block views indexed by j in range(m): with x[i0 + j] LLVM
                # could not rule out Numba's negative-index wraparound and used
                # gathers/scatters instead of vector loads/stores
                gxb = out_gx[i0:i0 + m]
                gwb = out_gw[i0:i0 + m]
                nb = noise[i0:i0 + m] if noisy else noise
                block_chain(x[i0:i0 + m], w, p, nb, a, a, g, out_y[i0:i0 + m], m)
                for j in range(m):
                    gxb[j] = g[j]
                for k in range(n_layers):
                    for j in range(m):
                        gwb[j, k] = a[k + 1, j]

    return cache_kernel(chain_kernel, forward, backward, f"noise={noisy}", f"parallel={parallel}")


_KERNELS = {}


def get_kernel(spec, per_sample_noise=False, parallel=True):
    """The compiled chain kernel for ``spec`` (an activations.Spec).

    Built once per process and per (forward, backward) pair; compiled lazily per
    dtype and memory layout and cached on disk, so a second process loads it
    instead of compiling (see ``_numba_util.cache_kernel``).
    """
    key = (spec.forward, spec.backward, per_sample_noise, parallel)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_chain_kernel(spec.forward, spec.backward,
                                                    per_sample_noise, parallel)
    return kernel


def empty_noise(dtype):
    """Placeholder noise array for kernels that take none (one type per dtype)."""
    return np.empty((0, 0), dtype=dtype)
