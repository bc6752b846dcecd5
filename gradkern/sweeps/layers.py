"""The chain with per-sample layers: each sample's own weights w_k (and biases
b_k), drawn in the kernel, for sweeps over weight and bias distributions.

The same operations as the chain kernels (:mod:`gradkern.chain.core`) with the
layer's weight read per sample, and with a bias as ``Linear(1, 1, bias=True)``
adds it (an addmm whose accumulator starts at the bias: the product rounded,
then the sum, no FMA; as ``chain_grad(..., biases=)`` computes it):

    forward:  z_k = w_k * a_{k-1} + b_k  (no bias: w_k * a_{k-1} + 0);  a_k = act(z_k)
    backward: g_z = act'(z_k) . g;  df/db_k = g_z + 0;  df/dw_k = g_z * a_{k-1} + 0;
              g = g_z * w_k + 0

With b_k = +0 the bias changes no bit (w*a + 0 is exactly the bias-free
``linear``), which is why a sweep with ``biases=[0.0]`` has the df/dw
statistics of one without biases bit for bit (tested).  Fixed-weight points without biases never come here: they run the
chain kernels' own block loops, unchanged.

Channels of a per-sample point: 0 .. L-1 df/dw_1 .. df/dw_L, L df/dx, L+1 f
(as for fixed weights), then L+2 .. 2L+1 df/db_1 .. df/db_L with biases.
"""
import numba

from ..chain.core import linear

__all__ = ["make_sample_block_chain", "make_sample_chain", "n_channels"]


def n_channels(depth, biased):
    """Statistics channels of a point: df/dw_k, df/dx, f, and df/db_k with biases."""
    return 2 * depth + 2 if biased else depth + 2


def make_sample_block_chain(forward, backward, per_sample_noise, biased):
    """The CPU kernel's chain over ``m`` samples with per-sample layers.

    ``block_chain(xb, W, B, p, nb, a, vals, g, yb, m)``: inputs ``xb[:m]``,
    weights ``W[k, :m]`` and biases ``B[k, :m]`` (unused without biases),
    RReLU's slopes ``nb[j, k]``; scratch ``a`` ((L+1) x m); leaves df/dw_{k+1}
    in ``vals[k]``, df/db_{k+1} in ``vals[L+2+k]``, df/dx in ``g``, f in
    ``yb``.  The three-loop backward of ``chain.core.make_block_chain`` (the
    form LLVM vectorises in the sweep kernel), with ``W[k, j]`` for ``w[k]``.
    """
    noisy = per_sample_noise

    @numba.njit(inline="always", error_model="numpy")
    def block_chain(xb, W, B, p, nb, a, vals, g, yb, m):
        n_layers = W.shape[0]
        one = a.dtype.type(1.0)
        zero = a.dtype.type(0.0)
        for j in range(m):
            a[0, j] = xb[j]
        for k in range(n_layers):
            for j in range(m):
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                z = W[k, j] * a[k, j] + B[k, j] if biased else linear(W[k, j], a[k, j])
                a[k + 1, j] = forward(z, pk)
        for j in range(m):
            yb[j] = a[n_layers, j]
            g[j] = one
        for k in range(n_layers - 1, -1, -1):
            for j in range(m):
                z = W[k, j] * a[k, j] + B[k, j] if biased else linear(W[k, j], a[k, j])
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                gz = backward(g[j], z, a[k + 1, j], pk)
                vals[k, j] = z if z != z else gz  # g_z; NaN in, NaN out
            if biased:
                for j in range(m):
                    vals[n_layers + 2 + k, j] = vals[k, j] + zero  # df/db_{k+1} = g_z + 0
            for j in range(m):
                g[j] = linear(vals[k, j], W[k, j])
            for j in range(m):
                vals[k, j] = linear(vals[k, j], a[k, j])  # df/dw_{k+1} = g_z * a_k

    return block_chain


def make_sample_chain(forward, backward, layer_params, biased):
    """One sample through the chain with its own weights ``w`` and biases
    ``b`` (the GPU kernel's; ``stats.make_chain`` with per-sample layers).
    Writes df/dw_k into ``g_out[k]`` and df/db_k into ``g_out[L + k]``;
    returns (f, df/dx)."""

    @numba.njit(inline="always")
    def chain(x, w, b, p, noise, i, a_buf, g_out):
        n_layers = w.shape[0]
        a = x
        for k in range(n_layers):
            a_buf[k] = a
            z = w[k] * a + b[k] if biased else linear(w[k], a)
            a = forward(z, layer_params(p, noise, i, k))
        out = a
        g = type(a)(1.0)
        y = a
        for k in range(n_layers - 1, -1, -1):
            a_prev = a_buf[k]
            z = w[k] * a_prev + b[k] if biased else linear(w[k], a_prev)
            gz = backward(g, z, y, layer_params(p, noise, i, k))
            if z != z:
                gz = z  # NaN in, NaN out (the chain's rule)
            if biased:
                g_out[n_layers + k] = gz + type(gz)(0.0)
            g_out[k] = linear(gz, a_prev)
            g = linear(gz, w[k])
            y = a_prev
        return out, g

    return chain
