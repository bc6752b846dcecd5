"""The fused statistics kernel against numpy statistics of ``chain_grad`` on the
inputs materialised by ``gradkern.draw`` (and RReLU's slopes by
``gradkern.rrelu_slopes``): bit-exact, because the test mirrors the kernel's
blocking (float64 sums per lane of 64 in each block of 4096, lanes then added in order,
blocks folded in order).""" 
import math

import numpy as np
import pytest

import gradkern as gk
from gradkern.sweeps.stats import (BLOCK, HIST_BINS, HIST_COLS, HIST_LO, HIST_WIDTH, LANES, NAN_COL,
                            ZERO_COL, PointStats, fold, log10_abs)
from gradkern.sweeps.cpu import run_chunk

from .conftest import ACT_NAMES


def _seq_sum(a):
    """0 + a0 + a1 + ... in this order (np.add.accumulate is sequential)."""
    return float(np.add.accumulate(np.concatenate([[0.0], a]))[-1]) if len(a) else 0.0


def _lane_sum(block):
    """A block's sum as the kernel adds it: lane l (= index mod LANES) sums its
    values in order from +0.0, then the lanes are added in lane order.  A short
    block is padded with +0.0, which changes no sum that starts at +0.0."""
    padded = np.zeros(-(-block.size // LANES) * LANES)
    padded[:block.size] = block
    lanes = np.add.accumulate(np.vstack([np.zeros(LANES), padded.reshape(-1, LANES)]), axis=0)[-1]
    return _seq_sum(lanes)


def mirror(values, n_samples):
    """(F, MM, H) of one channel, computed the way the kernel does."""
    v = np.asarray(values)
    lg = np.empty(v.size)
    log10_abs(v, lg)  # the kernel's log10|v| (0 for zero and NaN), bit for bit
    v = v.astype(np.float64)
    sums = np.zeros((-(-n_samples // BLOCK), 4))
    mn, mx = np.inf, -np.inf
    hist = np.zeros(HIST_COLS, dtype=np.int64)
    for b in range(sums.shape[0]):
        blk = v[b * BLOCK:(b + 1) * BLOCK]
        lgb = lg[b * BLOCK:(b + 1) * BLOCK]
        nan = np.isnan(blk)
        hist[NAN_COL] += int(nan.sum())
        hist[ZERO_COL] += int((blk == 0).sum())
        blk = np.where(nan, 0.0, blk)  # NaN adds +0.0 in its lane
        sums[b] = [_lane_sum(blk), _lane_sum(np.abs(blk)), _lane_sum(blk * blk), _lane_sum(lgb)]
        if (~nan).any():
            mn, mx = min(mn, blk[~nan].min()), max(mx, blk[~nan].max())
        nz = (blk != 0) & ~nan
        t = np.clip((lgb[nz] - HIST_LO) * (1.0 / HIST_WIDTH), -1.0, HIST_BINS - 2)
        np.add.at(hist, 1 + np.floor(t).astype(np.int64), 1)
    F = np.array([_seq_sum(sums[:, s]) for s in range(4)])
    return F, (mn, mx), hist


def fused(act, dist, weights, n, seed, dtype, chunk_blocks):
    """The kernel's totals, chunk by chunk as the sweep runner folds them."""
    total = PointStats(len(weights) + 2)
    w = np.asarray(weights, dtype=dtype)
    n_blocks = -(-n // BLOCK)
    for b0 in range(0, n_blocks, chunk_blocks):
        fold(total, run_chunk(act, gk.Dist.parse(dist), w, seed, n, b0,
                              min(chunk_blocks, n_blocks - b0), dtype))
    return total


def reference(act, dist, weights, n, seed, dtype):
    x = gk.draw(dist, n, seed, dtype=dtype)
    noise = None
    if act.stochastic:
        noise = gk.rrelu_slopes(n, len(weights), seed, act.params["lower"], act.params["upper"],
                                dtype=dtype)
    res = gk.chain_grad(x, act, weights, noise=noise)
    return [res.weight_grads[:, k] for k in range(len(weights))] + [res.input_grad, res.output]


def check_exact(act, dist, weights, n, seed, dtype, chunk_blocks):
    total = fused(act, dist, weights, n, seed, dtype, chunk_blocks)
    for ch, values in enumerate(reference(act, dist, weights, n, seed, dtype)):
        F, (mn, mx), hist = mirror(values, n)
        assert np.array_equal(total.F[ch], F), (ch, total.F[ch], F)
        assert (total.MM[ch, 0], total.MM[ch, 1]) == (mn, mx), ch
        assert np.array_equal(total.H[ch], hist), ch
    return total


N_SMALL = 2 * BLOCK + 777  # three blocks, the last one short


@pytest.mark.parametrize("name", ACT_NAMES)
def test_exact_against_chain_grad_float32(name):
    act = gk.activations.fresh(name)  # RReLU in training mode: slopes from the stream
    check_exact(act, "normal:0,2", [1.0, -0.5, 2.0], N_SMALL, seed=11, dtype=np.float32,
                chunk_blocks=2)


@pytest.mark.parametrize("name,dist", [("Tanh", "lognormal:0,1"), ("RReLU", "laplace:0,1"),
                                       ("Softplus", "student-t:2"), ("ReLU", "grid:-4,4"),
                                       ("Sigmoid", "uniform:-10,10")])
def test_exact_against_chain_grad_float64(name, dist):
    check_exact(gk.activation(name), dist, [0.5, 3.0, -1.0, 1.0], N_SMALL, seed=2**40 + 3,
                dtype=np.float64, chunk_blocks=1)


def test_nan_and_zero_are_counted_apart():
    """Huge lognormal inputs overflow float32 to inf; inf*0 chains give NaN."""
    act = gk.activation("Hardshrink")
    total = check_exact(act, "lognormal:80,10", [1.0, 0.0], BLOCK + 5, 0, np.float32, 1)
    assert total.H[:, ZERO_COL].sum() > 0  # zeros (the second weight is 0)
    assert total.H[:, NAN_COL].sum() > 0


def test_public_table_matches_numpy_statistics():
    """Against plain numpy statistics (any summation order): close to 1e-12
    (1e-7 for the mean log10, taken in float32)."""
    n, w = 50_000, [1.0, 1.0, 1.0]
    res = gk.sweep("Tanh", 3, "normal:0,1", 1.0, n, seed=5, backend="cpu")
    g = reference(gk.activation("Tanh"), "normal:0,1", w, n, 5, np.float32)
    for row in res.rows:
        v = g[row["layer"] - 1].astype(np.float64)
        assert row["samples"] == n and row["activation"] == "Tanh"
        assert row["mean_abs_grad"] == pytest.approx(np.abs(v).mean(), rel=1e-12)
        assert row["mean_grad"] == pytest.approx(v.mean(), rel=1e-12)
        assert row["rms_grad"] == pytest.approx(np.sqrt((v * v).mean()), rel=1e-12)
        assert (row["min_grad"], row["max_grad"]) == (v.min(), v.max())
        assert row["zero_fraction"] == (v == 0).mean()
        nz = np.abs(v[v != 0])
        # log|g| is taken in g's dtype (float32 here, <= 1 ulp): each term is
        # off by ~1e-7 relative at most, the mean by less
        assert row["mean_log10_abs_grad"] == pytest.approx(np.log10(nz).mean(), rel=1e-7)
        hist = res.histograms[(0, row["layer"])]
        assert hist.sum() == nz.size
    pt = res.points[0]
    assert pt["input_grad_mean_abs"] == pytest.approx(np.abs(g[3].astype(float)).mean(),
                                                      rel=1e-12)
    assert pt["output_mean"] == pytest.approx(g[4].astype(float).mean(), rel=1e-12)


def test_relu_depth1_closed_form():
    """ReLU, depth 1, x ~ N(0,1): df/dw = max(x, 0), so mean |g| = 1/sqrt(2 pi),
    zero fraction 1/2, rms sqrt(1/2); standard error of the mean 5.8e-4 at N = 1e6."""
    (row,) = gk.sweep("ReLU", 1, "normal:0,1", 1.0, 10**6, seed=0, backend="cpu").rows
    assert abs(row["mean_abs_grad"] - 1 / math.sqrt(2 * math.pi)) < 4 * 5.8e-4
    assert abs(row["zero_fraction"] - 0.5) < 4 * 5e-4
    assert abs(row["rms_grad"] - math.sqrt(0.5)) < 2e-3


def test_uniform_grid_closed_form():
    """grid(0, 1), Tanh depth 1: df/dw = x (1 - tanh(x)^2), whose mean over an
    even grid of [0, 1] tends to its integral, tanh(1) - ln cosh(1)
    (antiderivative x tanh x - ln cosh x); the grid's error is O(1/N)."""
    n = 200_001
    (row,) = gk.sweep("Tanh", 1, "grid:0,1", 1.0, n, seed=0, backend="cpu",
                      dtype="float64").rows
    exact = 1 * math.tanh(1) - math.log(math.cosh(1))
    assert abs(row["mean_grad"] - exact) < 1e-5
    assert row["min_grad"] == 0.0 and row["zero_fraction"] == 1 / n
