r"""What the fused statistics kernels share: one sample's chain, the per-block
accumulators, the fixed histogram bins, and the in-order fold of blocks.

Determinism by construction.  A point's N samples are cut into blocks of
:data:`BLOCK` consecutive indices, and each block into :data:`LANES` lanes:
sample ``i`` of a block belongs to lane ``i mod LANES``.  Each lane has its own
float64 sums, which take the lane's samples in index order; at the end of the
block the lanes are added in lane order, ``((0 + lane 0) + lane 1) + ...``.
Blocks are then folded in block-index order by :func:`fold`, one ``+=`` per
block.  So the exact sequence of float64 additions depends on N, BLOCK and
LANES only, never on threads, chunk sizes, Dask partitions or the device; min,
max, counts and histograms are order-independent anyway.  Lanes are what let
the CPU add 64 consecutive samples with SIMD instructions (a single running
sum is one long chain of dependent additions); a GPU thread owns a block and
walks it lane by lane.

Channels: 0 .. L-1 are df/dw_1 .. df/dw_L, L is df/dx, L+1 is the output f.
Per block and channel:

- ``F[..., :]``  float64 sums over non-NaN values v: v, |v|, v*v, and
  log10|v| = log|v| * (1/ln 10) over the non-zero ones, with log|v| by
  ``_vecmath.vlog`` in v's dtype (<= 0.81 ulp; the same bits on any CPU and
  GPU) and the product in float64;
- ``MM[..., :]`` min and max over non-NaN values (+inf / -inf if none);
- ``H[..., :]``  histogram of log10|v| over non-zero, non-NaN v on
  :data:`HIST_EDGES`: bin 0 is below -48, bins 1..352 are [-48 + (j-1)/4,
  -48 + j/4), bin 353 is >= 40 (inf included); then two more columns
  counting the values exactly zero (+0 or -0) and NaN.  Every non-zero finite float32
  lands in bins 1..352 (float32 spans 1.4e-45 .. 3.4e38); float64 values
  outside land in the end bins.

NaN values are counted and excluded from everything else: one NaN among 1e9
samples would otherwise turn every statistic of the point into NaN.
"""
import math

import numba
import numpy as np

from .._numba.vecmath import vlog
from ..stream.dists import rrelu_slope
from ..chain.core import linear

__all__ = ["BLOCK", "LANES", "HIST_LO", "HIST_WIDTH", "HIST_BINS", "HIST_EDGES", "make_chain",
           "accumulate", "accumulate_lanes", "close_lanes", "log10_abs", "Partials", "PointStats",
           "fold", "STAT_NAMES"]

#: samples per block: 2**12 so that a GPU has N/4096 threads to run (244k at
#: 1e9 samples) and the CPU's per-block histograms stay small
BLOCK = 4096
#: float64 partial sums per block and statistic: the lane of sample i is
#: i mod 64 (see the module docstring); 64 float64 lanes are 8 AVX-512 or
#: 16 AVX2 vectors, and (channels, 4, 64) sums stay in L1 up to depth ~20
LANES = 64
HIST_LO = -48.0
HIST_WIDTH = 0.25
HIST_INNER = 352  # (40 - (-48)) / 0.25
HIST_BINS = HIST_INNER + 2
#: edges of the inner bins; bin 0 is (-inf, -48), bin 353 is [40, inf]
HIST_EDGES = HIST_LO + HIST_WIDTH * np.arange(HIST_INNER + 1)
_INV_WIDTH = 1.0 / HIST_WIDTH
#: log10 is computed as log(a) * (1/ln 10), with gradkern's own vectorisable
#: log in a's dtype (``_log_abs``): once per value and channel, the kernel's
#: most frequent transcendental; the result differs from log10 by at most a few
#: ulp of a's dtype, far below any statistic
_INV_LN10 = 1.0 / math.log(10.0)

#: columns of F: sums of v, |v|, v*v, log10|v|
SUM, ABS, SQ, LOG = 0, 1, 2, 3
#: the histogram array's two extra columns count zeros and NaNs
ZERO_COL, NAN_COL = HIST_BINS, HIST_BINS + 1
HIST_COLS = HIST_BINS + 2
#: deepest chain the GPU sweep kernel takes (its local arrays need a
#: compile-time size; the CPU kernel takes any depth)
GPU_MAX_DEPTH = 64


def make_chain(forward, backward, layer_params):
    """One sample through the chain, as the chain kernels compute it.

    The same forward/backward order, ``linear`` products and NaN rule as
    :mod:`gradkern.chain.core`, but writing df/dw_k into ``g_out[k]`` and
    keeping a_{k-1} in the caller's scratch ``a_buf`` (a row of an array on
    CPU, a local array on GPU) instead of an (N, L) output.  Returns (f, df/dx).
    Tests check it bit-identical to ``chain_grad`` on the same inputs.
    """

    # inline="always": a call that passes arrays costs NRT reference counting
    # on each of them per sample (atomic, shared between threads)
    @numba.njit(inline="always")
    def chain(x, w, p, noise, i, a_buf, g_out):
        n_layers = w.shape[0]
        a = x
        for k in range(n_layers):
            a_buf[k] = a
            a = forward(linear(w[k], a), layer_params(p, noise, i, k))
        out = a
        g = type(a)(1.0)
        y = a
        for k in range(n_layers - 1, -1, -1):
            a_prev = a_buf[k]
            z = linear(w[k], a_prev)
            gz = backward(g, z, y, layer_params(p, noise, i, k))
            if z != z:
                gz = z  # NaN in, NaN out (the chain's rule)
            g_out[k] = linear(gz, a_prev)
            g = linear(gz, w[k])
            y = a_prev
        return out, g

    return chain


# forceinline: the CPU kernel calls it in a SIMD loop over samples
@numba.njit(forceinline=True)
def slope_params(p, noise, i, k):
    """RReLU training: the slope of sample i at layer k from stream 1+k.
    ``noise`` is (seed, lower, upper) with the bounds rounded to p's dtype.
    The GPU kernel's layer parameters, and the CPU kernel's slope fill."""
    return (type(p[0])(rrelu_slope(noise[0], i, k, noise[1], noise[2])), p[1], p[2], p[3])


@numba.njit
def hist_bin(lg):
    """Bin of log10|v| (see module docstring), without branches."""
    t = min(max((lg - HIST_LO) * _INV_WIDTH, -1.0), float(HIST_INNER))
    return 1 + int(math.floor(t))


@numba.njit(inline="always")
def _log_abs(v):
    """log|v| in v's own type, 0 for zero and NaN.  A float32 log is 8 SIMD
    lanes and a short polynomial; its <= 1 ulp (6e-8 relative) is far below
    any sampling error, and it is the same on CPU and GPU."""
    a = abs(v)
    return vlog(a if (a != 0) & (a == a) else type(v)(1.0))


@numba.njit(inline="always")
def _terms(v, log_abs):
    """One value's contributions: (v, |v|, v*v, log10|v|) with NaN and zero
    giving exactly +0.0 where they are left out, the min/max candidates
    (+inf/-inf for NaN) and the histogram column; ``log_abs`` is
    ``_log_abs(v)``.  Selects, no branches: a SIMD loop on the CPU."""
    d = np.float64(v)
    ok = d == d
    a = abs(d)
    nz = ok & (a != 0.0)
    dz = d if ok else 0.0
    lg = np.float64(log_abs) * _INV_LN10  # exactly 0.0 for zero and NaN
    col = hist_bin(lg) if nz else (ZERO_COL if ok else NAN_COL)
    lo = d if ok else np.inf
    hi = d if ok else -np.inf
    return dz, abs(dz), dz * dz, lg, lo, hi, col


@numba.njit(inline="always")
def accumulate(F, MM, ch, v):
    """Add value ``v`` (any float type) to channel ``ch`` of one lane's sums
    ``F`` (channels, 4) and extremes ``MM`` (channels, 2); return the column
    of the histogram to increment (an atomic increment on the GPU, which
    calls this once per value; the CPU runs :func:`accumulate_lanes`)."""
    dz, adz, sq, lg, lo, hi, col = _terms(v, _log_abs(v))
    F[ch, SUM] += dz
    F[ch, ABS] += adz
    F[ch, SQ] += sq
    F[ch, LOG] += lg
    MM[ch, 0] = lo if lo < MM[ch, 0] else MM[ch, 0]
    MM[ch, 1] = hi if hi > MM[ch, 1] else MM[ch, 1]
    return col


@numba.njit(inline="always")
def accumulate_lanes(S, M, Hb, logs, cols, vals, m):
    """``vals[ch, :m]``, the values of lanes 0 .. m-1 of each channel ``ch``,
    added to its lane sums ``S[ch]`` (4, LANES), lane extremes ``M[ch]`` (2,
    LANES: min, max) and histogram row ``Hb[ch]``; ``logs`` (LANES, vals'
    dtype) and ``cols`` (LANES, int64) are scratch.  The same additions per
    lane as :func:`accumulate`, so the same bits.

    Per channel three loops: the logs in vals' dtype first (in a loop that
    also computes in float64, float32 runs at 4 lanes, not 8), the float64
    sums second, the histogram's scatter (scalar) last.  Whole arrays and an
    index, not per-channel views; and every channel in one call: each call
    of an inlined function with loops increfs and decrefs its array
    arguments (atomics that LLVM's reference-count pruning cannot remove
    across the loops), and one call per channel spent 22% of a ReLU sweep's
    time in them (perf, one thread)."""
    for ch in range(vals.shape[0]):
        for j in range(m):
            logs[j] = _log_abs(vals[ch, j])
        for j in range(m):
            dz, adz, sq, lg, lo, hi, col = _terms(vals[ch, j], logs[j])
            S[ch, SUM, j] += dz
            S[ch, ABS, j] += adz
            S[ch, SQ, j] += sq
            S[ch, LOG, j] += lg
            M[ch, 0, j] = lo if lo < M[ch, 0, j] else M[ch, 0, j]
            M[ch, 1, j] = hi if hi > M[ch, 1, j] else M[ch, 1, j]
            cols[j] = col
        for j in range(m):  # a scatter: the one scalar loop
            Hb[ch, cols[j]] += 1


@numba.njit(inline="always")
def close_lanes(S, M, Fb, MMb):
    """A block's lane sums S (channels, 4, LANES) and extremes M (channels,
    2, LANES: min, max), added in lane order into its row of partials ``Fb``
    (channels, 4) / ``MMb`` (channels, 2)."""
    for ch in range(S.shape[0]):
        for s in range(4):
            t = 0.0
            for lane in range(S.shape[2]):
                t += S[ch, s, lane]
            Fb[ch, s] = t
        lo, hi = np.inf, -np.inf
        for lane in range(S.shape[2]):
            lo = M[ch, 0, lane] if M[ch, 0, lane] < lo else lo
            hi = M[ch, 1, lane] if M[ch, 1, lane] > hi else hi
        MMb[ch, 0] = lo
        MMb[ch, 1] = hi


@numba.njit
def log10_abs(values, out):
    """``out[j]`` = log10|values[j]| exactly as the kernels compute it (0.0
    for zero and NaN): for tests and users mirroring the statistics."""
    for j in range(values.shape[0]):
        out[j] = _terms(values[j], _log_abs(values[j]))[3]


def empty_partials(n_blocks, n_channels):
    """Zeroed per-block accumulators (F, MM, H) for ``n_blocks`` blocks."""
    F = np.zeros((n_blocks, n_channels, 4))
    MM = np.empty((n_blocks, n_channels, 2))
    MM[..., 0] = np.inf
    MM[..., 1] = -np.inf
    H = np.zeros((n_blocks, n_channels, HIST_COLS), dtype=np.int64)
    return F, MM, H


class Partials:
    """Per-block results of blocks ``block0 ..`` of one point: F and MM per
    block (to be folded in order) and the histogram with its zero and NaN
    counts already summed (H, int64, order-free).  What a chunk, a Dask task
    or a GPU launch returns."""

    __slots__ = ("block0", "F", "MM", "H")

    def __init__(self, block0, F, MM, H):
        self.block0, self.F, self.MM, self.H = block0, F, MM, H

    @property
    def n_blocks(self):
        return self.F.shape[0]


@numba.njit
def _fold(F, MM, tF, tMM):
    for b in range(F.shape[0]):
        for ch in range(F.shape[1]):
            for s in range(4):
                tF[ch, s] += F[b, ch, s]
            if MM[b, ch, 0] < tMM[ch, 0]:
                tMM[ch, 0] = MM[b, ch, 0]
            if MM[b, ch, 1] > tMM[ch, 1]:
                tMM[ch, 1] = MM[b, ch, 1]


class PointStats:
    """Running totals of one point, fed blocks strictly in order by :func:`fold`."""

    def __init__(self, n_channels):
        F, MM, H = empty_partials(1, n_channels)
        self.F, self.MM, self.H = F[0], MM[0], H[0]
        self.next_block = 0

    def finish(self, n):
        """Statistics per channel for a point of ``n`` samples: a list of dicts."""
        out = []
        for ch in range(self.F.shape[0]):
            s, sa, sq, sl = (float(v) for v in self.F[ch])
            n_zero, n_nan = int(self.H[ch, ZERO_COL]), int(self.H[ch, NAN_COL])
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
                "hist": self.H[ch, :HIST_BINS].copy(),
            })
        return out


def fold(total, part):
    """Add a chunk's blocks to ``total`` (a PointStats); chunks must arrive in
    block order, which is what makes the float64 sums reproducible."""
    if part.block0 != total.next_block:
        raise RuntimeError(f"blocks out of order: expected {total.next_block}, got {part.block0}")
    _fold(part.F, part.MM, total.F, total.MM)
    total.H += part.H
    total.next_block += part.n_blocks


#: column names of a per-layer record, in order (df/dw statistics)
STAT_NAMES = ("mean_abs_grad", "mean_grad", "rms_grad", "min_grad", "max_grad", "zero_fraction",
              "nan_fraction", "mean_log10_abs_grad")
