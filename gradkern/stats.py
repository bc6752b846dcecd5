r"""What the fused statistics kernels share: one sample's chain, the per-block
accumulators, the fixed histogram bins, and the in-order fold of blocks.

Determinism by construction.  A point's N samples are cut into blocks of
:data:`BLOCK` consecutive indices.  Inside a block, samples are accumulated in
index order into float64 sums (one thread owns a block, on CPU and GPU).
Blocks are then folded in block-index order by :func:`fold`, one ``+=`` per
block.  So the exact sequence of float64 additions depends on N and BLOCK only,
never on threads, chunk sizes, Dask partitions or the device; min, max, counts
and histograms are order-independent anyway.

Channels: 0 .. L-1 are df/dw_1 .. df/dw_L, L is df/dx, L+1 is the output f.
Per block and channel:

- ``F[..., :]``  float64 sums over non-NaN values v: v, |v|, v*v, and
  log10|v| over the non-zero ones;
- ``MM[..., :]`` min and max over non-NaN values (+inf / -inf if none);
- ``C[..., :]``  counts: exactly zero (+0 or -0), NaN;
- ``H[..., :]``  histogram of log10|v| over non-zero, non-NaN v on
  :data:`HIST_EDGES`: bin 0 is below -48, bins 1..352 are [-48 + (j-1)/4,
  -48 + j/4), bin 353 is >= 40 (inf included).  Every non-zero finite float32
  lands in bins 1..352 (float32 spans 1.4e-45 .. 3.4e38); float64 values
  outside land in the end bins.

NaN values are counted and excluded from everything else: one NaN among 1e9
samples would otherwise turn every statistic of the point into NaN.
"""
import math

import numba
import numpy as np

from .dists import rrelu_slope
from .kernels_cpu import _linear

__all__ = ["BLOCK", "HIST_LO", "HIST_WIDTH", "HIST_BINS", "HIST_EDGES", "make_chain",
           "accumulate", "init_block", "Partials", "PointStats", "fold", "STAT_NAMES"]

#: samples per block: 2**12 so that a GPU has N/4096 threads to run (244k at
#: 1e9 samples) and the CPU's per-block histograms stay small
BLOCK = 4096
HIST_LO = -48.0
HIST_WIDTH = 0.25
HIST_INNER = 352  # (40 - (-48)) / 0.25
HIST_BINS = HIST_INNER + 2
#: edges of the inner bins; bin 0 is (-inf, -48), bin 353 is [40, inf]
HIST_EDGES = HIST_LO + HIST_WIDTH * np.arange(HIST_INNER + 1)
_INV_WIDTH = 1.0 / HIST_WIDTH

#: n_sum, n_abs, n_sq, n_log10 (F); min, max (MM); zero, nan (C)
SUM, ABS, SQ, LOG = 0, 1, 2, 3
ZERO, NAN = 0, 1


def make_chain(forward, backward, layer_params):
    """One sample through the chain, as ``kernels_cpu`` computes it.

    The same forward/backward order, ``_linear`` products and NaN rule as
    :mod:`gradkern.kernels_cpu`, but writing df/dw_k into ``g_out[k]`` and
    keeping a_{k-1} in the caller's scratch ``a_buf`` (a row of an array on
    CPU, a local array on GPU) instead of an (N, L) output.  Returns (f, df/dx).
    Tests check it bit-identical to ``chain_grad`` on the same inputs.
    """

    @numba.njit
    def chain(x, w, p, noise, i, a_buf, g_out):
        n_layers = w.shape[0]
        a = x
        for k in range(n_layers):
            a_buf[k] = a
            a = forward(_linear(w[k], a), layer_params(p, noise, i, k))
        out = a
        g = type(a)(1.0)
        y = a
        for k in range(n_layers - 1, -1, -1):
            a_prev = a_buf[k]
            z = _linear(w[k], a_prev)
            gz = backward(g, z, y, layer_params(p, noise, i, k))
            if z != z:
                gz = z  # NaN in, NaN out (kernels_cpu's rule)
            g_out[k] = _linear(gz, a_prev)
            g = _linear(gz, w[k])
            y = a_prev
        return out, g

    return chain


@numba.njit
def slope_params(p, noise, i, k):
    """RReLU training: the slope of sample i at layer k from stream 1+k.
    ``noise`` is (seed, lower, upper) with the bounds rounded to p's dtype."""
    return (type(p[0])(rrelu_slope(noise[0], i, k, noise[1], noise[2])), p[1], p[2], p[3])


@numba.njit
def hist_bin(lg):
    """Bin of log10|v| (see module docstring)."""
    t = (lg - HIST_LO) * _INV_WIDTH
    if t < 0.0:
        return 0
    if t >= HIST_INNER:
        return HIST_INNER + 1
    return 1 + int(t)


@numba.njit
def accumulate(F, MM, C, b, ch, v):
    """Add value ``v`` (any float type) to block ``b``, channel ``ch`` of the
    sums, extremes and counts; return the histogram bin of log10|v|, or -1 for
    zero and NaN (the caller adds to its histogram: a plain increment on CPU,
    an atomic one on GPU)."""
    if v != v:
        C[b, ch, NAN] += 1
        return -1
    d = np.float64(v)
    F[b, ch, SUM] += d
    a = abs(d)
    F[b, ch, ABS] += a
    F[b, ch, SQ] += d * d
    if d < MM[b, ch, 0]:
        MM[b, ch, 0] = d
    if d > MM[b, ch, 1]:
        MM[b, ch, 1] = d
    if a == 0.0:
        C[b, ch, ZERO] += 1
        return -1
    lg = math.log10(a)
    F[b, ch, LOG] += lg
    return hist_bin(lg)


def empty_partials(n_blocks, n_channels):
    """Zeroed per-block accumulators (F, MM, C, H) for ``n_blocks`` blocks."""
    F = np.zeros((n_blocks, n_channels, 4))
    MM = np.empty((n_blocks, n_channels, 2))
    MM[..., 0] = np.inf
    MM[..., 1] = -np.inf
    C = np.zeros((n_blocks, n_channels, 2), dtype=np.int64)
    H = np.zeros((n_blocks, n_channels, HIST_BINS), dtype=np.int64)
    return F, MM, C, H


class Partials:
    """Per-block results of blocks ``block0 ..`` of one point: F, MM, C per
    block (to be folded in order) and the histogram already summed (H, int64,
    order-free).  What a chunk, a Dask task or a GPU launch returns."""

    __slots__ = ("block0", "F", "MM", "C", "H")

    def __init__(self, block0, F, MM, C, H):
        self.block0, self.F, self.MM, self.C, self.H = block0, F, MM, C, H

    @property
    def n_blocks(self):
        return self.F.shape[0]


@numba.njit
def _fold(F, MM, C, tF, tMM, tC):
    for b in range(F.shape[0]):
        for ch in range(F.shape[1]):
            for s in range(4):
                tF[ch, s] += F[b, ch, s]
            if MM[b, ch, 0] < tMM[ch, 0]:
                tMM[ch, 0] = MM[b, ch, 0]
            if MM[b, ch, 1] > tMM[ch, 1]:
                tMM[ch, 1] = MM[b, ch, 1]
            tC[ch, 0] += C[b, ch, 0]
            tC[ch, 1] += C[b, ch, 1]


class PointStats:
    """Running totals of one point, fed blocks strictly in order by :func:`fold`."""

    def __init__(self, n_channels):
        F, MM, C, H = empty_partials(1, n_channels)
        self.F, self.MM, self.C, self.H = F[0], MM[0], C[0], H[0]
        self.next_block = 0

    def finish(self, n):
        """Statistics per channel for a point of ``n`` samples: a list of dicts."""
        out = []
        for ch in range(self.F.shape[0]):
            s, sa, sq, sl = (float(v) for v in self.F[ch])
            n_zero, n_nan = (int(v) for v in self.C[ch])
            valid = n - n_nan
            nonzero = valid - n_zero
            nan = float("nan")
            out.append({
                "mean": s / valid if valid else nan,
                "mean_abs": sa / valid if valid else nan,
                "rms": math.sqrt(sq / valid) if valid else nan,
                "min": float(self.MM[ch, 0]) if valid else nan,
                "max": float(self.MM[ch, 1]) if valid else nan,
                "zero_fraction": n_zero / n if n else nan,
                "nan_fraction": n_nan / n if n else nan,
                "mean_log10_abs": sl / nonzero if nonzero else nan,
                "hist": self.H[ch].copy(),
            })
        return out


def fold(total, part):
    """Add a chunk's blocks to ``total`` (a PointStats); chunks must arrive in
    block order, which is what makes the float64 sums reproducible."""
    if part.block0 != total.next_block:
        raise RuntimeError(f"blocks out of order: expected {total.next_block}, got {part.block0}")
    _fold(part.F, part.MM, part.C, total.F, total.MM, total.C)
    total.H += part.H
    total.next_block += part.n_blocks


#: column names of a per-layer record, in order (df/dw statistics)
STAT_NAMES = ("mean_abs_grad", "mean_grad", "rms_grad", "min_grad", "max_grad", "zero_fraction",
              "nan_fraction", "mean_log10_abs_grad")
