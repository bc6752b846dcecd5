"""The Numba CPU chain-rule kernel, one compiled instance per activation.

For f = a(w_L * a(... a(w_1 * x))), each sample is one forward and one backward
sweep over the L layers:

    forward:  a_0 = x;  z_k = w_k * a_{k-1};  a_k = act(z_k)           (k = 1..L)
    backward: g = 1;    g_z = act'(z_k) . g   (PyTorch's backward, as a VJP)
              df/dw_k = g_z * a_{k-1};  g = g_z * w_k                   (k = L..1)
              df/dx = g

Arbitrary depth without scratch memory: the forward stores a_{k-1} in the
sample's own row of ``weight_grads`` (slot k-1), and the backward reads it back
and overwrites it with df/dw_k.  z_k is recomputed as w_k * a_{k-1}, the same
single rounding, so no state is kept but the row the result needs anyway.

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

__all__ = ["get_kernel"]


@numba.njit
def _linear(a, b):
    """``a*b`` as a 1x1 matmul computes it: accumulated from +0, so -0 -> +0."""
    return a * b + type(a)(0.0)


@numba.njit
def _shared_params(p, noise, i, k):
    return p


@numba.njit
def _noise_params(p, noise, i, k):
    # RReLU training: the slope of sample i at layer k
    return (noise[i, k], p[1], p[2], p[3])


def _make_chain_kernel(forward, backward, layer_params):
    @numba.njit(parallel=True)
    def chain_kernel(x, w, p, noise, out_y, out_gw, out_gx):
        n_layers = w.shape[0]
        for i in numba.prange(x.shape[0]):
            a = x[i]
            for k in range(n_layers):
                out_gw[i, k] = a
                a = forward(_linear(w[k], a), layer_params(p, noise, i, k))
            out_y[i] = a
            g = type(a)(1.0)
            y = a
            for k in range(n_layers - 1, -1, -1):
                a_prev = out_gw[i, k]
                z = _linear(w[k], a_prev)
                gz = backward(g, z, y, layer_params(p, noise, i, k))
                if z != z:
                    # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                    gz = z
                out_gw[i, k] = _linear(gz, a_prev)
                g = _linear(gz, w[k])
                y = a_prev
            out_gx[i] = g

    return cache_kernel(chain_kernel, forward, backward, layer_params)


_KERNELS = {}


def get_kernel(spec, per_sample_noise=False):
    """The compiled chain kernel for ``spec`` (an activations.Spec).

    Built once per process and per (forward, backward) pair; compiled lazily per
    dtype and memory layout and cached on disk, so a second process loads it
    instead of compiling (see ``_numba_util.cache_kernel``).
    """
    layer_params = _noise_params if per_sample_noise else _shared_params
    key = (spec.forward, spec.backward, layer_params)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = _KERNELS[key] = _make_chain_kernel(spec.forward, spec.backward, layer_params)
    return kernel


def empty_noise(dtype):
    """Placeholder noise array for kernels that take none (one type per dtype)."""
    return np.empty((0, 0), dtype=dtype)
