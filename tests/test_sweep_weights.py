"""Random weights and biases in sweeps: each sample draws its own w_k (and b_k)
per layer from Philox counter families 1 and 2.  A point equals ``chain_grad``
on its materialised draws (``draw_weights``, ``draw_biases``) bit for bit; it is
bit-identical across chunks, thread counts, Dask and the CUDA simulator; the
fixed-weight numbers do not move; a resumed directory with other weights is
refused; the growth rate per layer is the least-squares slope it says."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import gradkern as gk
from gradkern.stream.dists import _box_muller
from gradkern.stream.philox import philox4x32, uniform_a, uniform_b
from gradkern.sweeps.cpu import run_chunk
from gradkern.sweeps.grid import RandomLayers
from gradkern.sweeps.stats import BLOCK, PointStats, fold
from gradkern.sweeps.store import ManifestMismatch
from gradkern.sweeps.table import growth_rate

from .test_sweep_run import _cli, _same
from .test_sweep_stats import mirror

N = BLOCK + 300  # two blocks, the second short
#: per-sample chain_grad calls cost ~1-4 ms each: these points are one short block
N_PER_SAMPLE = 1061
W = "normal:0,1.5"
B = "normal:0,0.25"


def _kernel_totals(act, dist, layers, n, seed, dtype, chunk_blocks=1):
    total = PointStats(2 * layers.depth + 2 if layers.biased else layers.depth + 2)
    n_blocks = -(-n // BLOCK)
    for b0 in range(0, n_blocks, chunk_blocks):
        fold(total, run_chunk(act, gk.Dist.parse(dist), layers, seed, n, b0,
                              min(chunk_blocks, n_blocks - b0), dtype))
    return total


def _per_sample(act, dist, weights, biases, depth, n, seed, dtype):
    """Every channel's values from chain_grad, one call per sample with its own
    weights (chain_grad takes one weight per layer for all its samples)."""
    x = gk.draw(dist, n, seed, dtype=dtype)
    w = gk.draw_weights(weights, n, depth, seed, dtype=dtype)
    b = None if biases is None else gk.draw_biases(biases, n, depth, seed, dtype=dtype)
    noise = None
    if act.stochastic:
        noise = gk.rrelu_slopes(n, depth, seed, act.params["lower"], act.params["upper"],
                                dtype=dtype)
    dw = np.empty((n, depth), dtype)
    db = np.empty((n, depth), dtype)
    dx = np.empty(n, dtype)
    y = np.empty(n, dtype)
    for j in range(n):
        r = gk.chain_grad(x[j:j + 1], act, w[j], biases=None if b is None else b[j],
                          noise=None if noise is None else noise[j:j + 1])
        dw[j], dx[j], y[j] = r.weight_grads[0], r.input_grad[0], r.output[0]
        if b is not None:
            db[j] = r.bias_grads[0]
    return [dw[:, k] for k in range(depth)] + [dx, y] + (
        [] if b is None else [db[:, k] for k in range(depth)])


# few kernels (each activation x kinds x biases compiles one, 5-15 s on 2 cores):
# the tests below reuse these, normal inputs, weights and biases throughout
@pytest.mark.parametrize("name,dtype", [("Tanh", np.float32), ("RReLU", np.float32),
                                        ("Tanh", np.float64)])
def test_point_equals_chain_grad_on_its_draws(name, dtype):
    act, depth, seed = gk.activation(name), 3, 2**33 + 5
    layers = RandomLayers(depth, gk.Dist.parse(W))
    n = N_PER_SAMPLE
    total = _kernel_totals(act, "normal:0,1", layers, n, seed, dtype)
    for ch, values in enumerate(_per_sample(act, "normal:0,1", W, None, depth, n, seed, dtype)):
        F, (mn, mx), hist = mirror(values, n)
        assert np.array_equal(total.F[ch], F), (ch, total.F[ch], F)
        assert (total.MM[ch, 0], total.MM[ch, 1]) == (mn, mx), ch
        assert np.array_equal(total.H[ch], hist), ch


@pytest.mark.parametrize("name", ["Tanh", "RReLU"])
def test_biased_point_equals_chain_grad_with_its_draws(name):
    """With biases too: chain_grad(x_j, act, w_j, biases=b_j) per sample, every
    channel (df/dw_k, df/dx, f, df/db_k) bit for bit."""
    act, depth, seed = gk.activation(name), 3, 21
    layers = RandomLayers(depth, gk.Dist.parse(W), gk.Dist.parse(B))
    total = _kernel_totals(act, "normal:0,1", layers, N_PER_SAMPLE, seed, np.float32)
    values = _per_sample(act, "normal:0,1", W, B, depth, N_PER_SAMPLE, seed, np.float32)
    assert len(values) == 2 * depth + 2
    for ch, v in enumerate(values):
        F, (mn, mx), hist = mirror(v, N_PER_SAMPLE)
        assert np.array_equal(total.F[ch], F), (ch, total.F[ch], F)
        assert (total.MM[ch, 0], total.MM[ch, 1]) == (mn, mx), ch
        assert np.array_equal(total.H[ch], hist), ch


def test_the_public_table_is_those_totals():
    res = gk.sweep("Tanh", 3, "normal:0,1", W, N, seed=4, backend="cpu")
    stats = _kernel_totals(gk.activation("Tanh"), "normal:0,1",
                           RandomLayers(3, gk.Dist.parse(W)), N, 4, np.float32).finish(N)
    for row in res.rows:
        s = stats[row["layer"] - 1]
        assert (row["mean_abs_grad"], row["mean_log10_abs_grad"], row["zero_fraction"]) == \
            (s["mean_abs"], s["mean_log10_abs"], s["zero_fraction"])
        assert row["weight"] == W


def test_weight_stream_is_its_own_family():
    """w of sample i at layer k: Box-Muller of Philox counter (i >> 1, 0, k, 1),
    half i & 1; biases use family 2; the inputs (family 0) are untouched."""
    seed, n, depth = 77, 10, 3
    w = gk.draw_weights("normal:0,1", n, depth, seed, dtype=np.float64)
    b = gk.draw_biases("normal:0,1", n, depth, seed, dtype=np.float64)
    for fam, arr in ((1, w), (2, b)):
        for i in range(n):
            for k in range(depth):
                r = philox4x32(i >> 1, 0, k, fam, seed, 0)
                z = _box_muller(uniform_a(r), uniform_b(r))[i & 1]
                assert arr[i, k] == z, (fam, i, k)
    x = gk.draw("normal:0,1", n, seed, dtype=np.float64)
    assert not np.isin(x, w).any() and not np.isin(w, b).any()
    # any range is the same stream, float32 the float64 draw rounded once
    assert np.array_equal(gk.draw_weights("normal:0,1", 4, depth, seed, start=5,
                                          dtype=np.float64), w[5:9])
    assert np.array_equal(gk.draw_weights("normal:0,1", n, depth, seed), w.astype(np.float32))
    assert np.all(gk.draw_weights(0.5, 3, 2, seed) == np.float32(0.5))


def test_fixed_settings_through_the_new_kernel_change_no_bit():
    """``constant:w`` weights and zero biases run the per-sample kernel; their
    df/dw, df/dx and f statistics equal the fixed-weight kernel's bit for bit."""
    kw = dict(activations="Tanh", depths=[1, 3], dists="normal:0,2", samples=N, seed=3,
              backend="cpu")
    fixed = gk.sweep(weights=[0.75], **kw)
    const = gk.sweep(weights=["constant:0.75"], **kw)
    zero_b = gk.sweep(weights=[0.75], biases=[0.0], **kw)
    strip = [{k: v for k, v in r.items() if k != "weight"} for r in fixed.rows]
    assert [{k: v for k, v in r.items() if k != "weight"} for r in const.rows] == strip
    assert [{k: r[k] for k in fixed.columns if k != "weight"} for r in zero_b.rows] == strip
    assert [p["input_grad_mean"] for p in zero_b.points] == \
        [p["input_grad_mean"] for p in fixed.points]
    assert all(r["bias_grad_mean_abs"] > 0 for r in zero_b.rows)
    assert "bias" not in fixed.columns and "bias_grad_mean" not in fixed.columns


def test_fixed_weight_results_are_pinned():
    """A fixed-weight sweep's numbers as they were before random weights
    existed (computed then, on this commit's parent code): its kernel is untouched."""
    res = gk.sweep("Tanh,ReLU", 3, "normal:0,1", [1.0, 0.5], 3 * BLOCK + 11, seed=7,
                   backend="cpu")
    assert [r["mean_abs_grad"] for r in res.rows] == PINNED_MEAN_ABS
    assert [r["mean_log10_abs_grad"] for r in res.rows] == PINNED_MEAN_LOG10


#: that sweep's mean_abs_grad and mean_log10_abs_grad per row, from the code
#: before per-sample layers existed; Tanh's rows re-taken once float32 tanh
#: became correctly rounded (they moved by 5e-9 relative; ReLU's did not)
PINNED_MEAN_ABS = [
    0.16461175846410386, 0.25757620024330424, 0.3448172434615989, 0.128922079148248,
    0.16305307673614064, 0.17086822732181223, 0.41333666844755884, 0.41333666844755884,
    0.41333666844755884, 0.10333416711188971, 0.10333416711188971, 0.10333416711188971]
PINNED_MEAN_LOG10 = [
    -0.874809063574195, -0.6380940817359672, -0.5299418136280221, -0.9928020794131894,
    -0.9238262605309899, -0.9110560197130022, -0.26198994641077233, -0.26198994641077233,
    -0.26198994641077233, -0.8640499373702638, -0.8640499373702638, -0.8640499373702638]


W2 = "normal:0,0.5"
GRID = dict(activations="Tanh,RReLU", depths=[2, 3], dists="normal:0,1",
            weights=[W, W2], biases=[B], seed=13)
N_GRID = 3 * BLOCK + 5


@pytest.fixture(scope="module")
def baseline():
    return gk.sweep(samples=N_GRID, backend="cpu", **GRID)


def _relu_with_biases(x, w, b):
    """ReLU's chain with per-sample weights and biases in numpy, in x's dtype,
    exactly as a Linear(1, 1) with bias rounds: z = w a + b (two roundings);
    threshold backward g where z > 0, else 0; bias grad g_z + 0."""
    zero = x.dtype.type(0)
    depth = w.shape[1]
    a, zs = [x], []
    for k in range(depth):
        zs.append(w[:, k] * a[-1] + b[:, k])
        a.append(np.maximum(zs[-1], zero))
    g = np.ones_like(x)
    dw, db = [None] * depth, [None] * depth
    for k in range(depth - 1, -1, -1):
        gz = np.where(zs[k] > 0, g, zero)
        db[k] = gz + zero
        dw[k] = gz * a[k] + zero
        g = gz * w[:, k] + zero
    return dw + [g, a[-1]] + db


def test_bias_point_equals_numpy_on_its_draws():
    """ReLU, where numpy computes the chain exactly: every channel (df/dw_k,
    df/dx, f, df/db_k) of a point with random weights and biases, bit for bit,
    from draw_weights and draw_biases."""
    act, depth, seed, n = gk.activation("ReLU"), 3, 8, N
    layers = RandomLayers(depth, gk.Dist.parse(W), gk.Dist.parse(B))
    total = _kernel_totals(act, "normal:0,1", layers, n, seed, np.float32)
    x = gk.draw("normal:0,1", n, seed)
    w = gk.draw_weights(W, n, depth, seed)
    b = gk.draw_biases(B, n, depth, seed)
    for ch, values in enumerate(_relu_with_biases(x, w, b)):
        F, (mn, mx), hist = mirror(values, n)
        assert np.array_equal(total.F[ch], F), (ch, total.F[ch], F)
        assert (total.MM[ch, 0], total.MM[ch, 1]) == (mn, mx), ch
        assert np.array_equal(total.H[ch], hist), ch
    assert 0 < total.H[-1, -2] < n  # df/db_3 is 0 where z_3 <= 0: both kinds occur


def test_bias_table(baseline):
    rows = [r for r in baseline.rows if r["bias"] == B and r["weight"] == W]
    assert rows and all(r["bias_grad_mean_abs"] > 0 for r in rows)
    assert len(baseline.points) == 2 * 2 * 2
    assert all(p["bias"] == B for p in baseline.points)
    assert all(h.sum() > 0 for h in baseline.bias_histograms.values())


@pytest.mark.parametrize("chunk_blocks", [1, 1000])
def test_bit_identical_for_any_chunk(baseline, chunk_blocks):
    other = gk.sweep(samples=N_GRID, backend="cpu", chunk_blocks=chunk_blocks, **GRID)
    _same(baseline, other)
    for k, h in baseline.bias_histograms.items():
        assert np.array_equal(other.bias_histograms[k], h), k


def test_bit_identical_with_one_thread_and_the_cli(baseline, tmp_path):
    r = _cli("sweep", "--activations", GRID["activations"], "--depths", "2,3",
             "--weights", W, "--weights", W2, "--biases", B,
             "--seed", 13, "--samples", N_GRID, "--backend", "cpu", "--out", tmp_path / "d",
             "--json", "--no-plots", env={"NUMBA_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["results"] == json.loads(json.dumps(baseline.rows))
    _same(baseline, gk.load_sweep(tmp_path / "d"))


def test_bit_identical_on_dask(baseline):
    pytest.importorskip("distributed")
    remote = gk.sweep(samples=N_GRID, backend="cpu", chunk_blocks=1, dask="local:2", **GRID)
    _same(baseline, remote)
    for k, h in baseline.bias_histograms.items():
        assert np.array_equal(remote.bias_histograms[k], h), k


def test_resume_refuses_other_weights(tmp_path):
    kw = dict(activations="Tanh", depths=2, samples=BLOCK, seed=1, backend="cpu",
              out=tmp_path / "d")
    first = gk.sweep(weights=[W], biases=[B], **kw)
    _same(first, gk.sweep(weights=[W], biases=[B], resume=True, **kw))
    for other in (dict(weights=["normal:0,1.4"], biases=[B]), dict(weights=[W]),
                  dict(weights=[W], biases=["normal:0,0.5"]), dict(weights=[1.5], biases=[B])):
        with pytest.raises(ManifestMismatch, match="grid"):
            gk.sweep(resume=True, **{**kw, **other})


def test_bad_settings_are_named():
    with pytest.raises(TypeError, match="weights must be real numbers or distributions"):
        gk.sweep("Tanh", 1, weights=["x"], samples=10)
    with pytest.raises(ValueError, match="normal"):
        gk.sweep("Tanh", 1, weights=["normal:0"], samples=10)
    with pytest.raises(TypeError, match="biases"):
        gk.sweep("Tanh", 1, biases=[None], samples=10)
    with pytest.raises(ValueError, match="bias 1e\\+300 overflows"):
        gk.sweep("Tanh", 1, biases=[1e300], samples=10)


def test_growth_rate_is_the_least_squares_slope():
    scipy_stats = pytest.importorskip("scipy.stats")
    y = [-3.0, -2.1, -0.9, 0.2, 0.8]
    rate, se = growth_rate(y)
    fit = scipy_stats.linregress([5 - k for k in range(1, 6)], y)
    assert rate == pytest.approx(fit.slope, rel=1e-12) and rate < 0
    assert se == pytest.approx(fit.stderr, rel=1e-12)
    assert growth_rate([1.0, None, 2.0]) == (-0.5, None)
    assert growth_rate([1.0]) == (None, None)


def test_growth_rate_in_the_table():
    """Sigmoid's gradient vanishes toward the input (slope 1/4 at most), ReLU's
    with weight 1 stays (df/dw_k = relu(x) for every k)."""
    res = gk.sweep("Sigmoid,ReLU", 6, "normal:0,1", 1.0, 20_000, seed=0, backend="cpu")
    sig, relu = res.points
    assert sig["growth_rate"] < -0.4 and sig["growth_rate_se"] > 0
    assert relu["growth_rate"] == 0.0 and relu["growth_rate_se"] == 0.0


def test_growth_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from gradkern.plots import plot_sweep, png_software

    res = gk.sweep("Tanh", 3, "normal:0,1", ["normal:0,0.5", "normal:0,1", "normal:0,2"],
                   4096, seed=0, backend="cpu")
    paths = plot_sweep(res, tmp_path / "p")
    growth = [p for p in paths if os.path.basename(p) == "growth.png"]
    assert growth and png_software(growth[0]).startswith("gradkern ")


SCRIPT = r"""
import json, numpy as np, gradkern as gk
kw = dict(activations="Tanh,RReLU", depths=[2], dists="normal:0,1",
          weights=["normal:0,1.5"], biases=["normal:0,0.25"], samples=4096 + 37, seed=99)
cpu = gk.sweep(backend="cpu", **kw)
gpu = gk.sweep(backend="cuda", **kw)
hist = all(np.array_equal(cpu.histograms[k], gpu.histograms[k]) for k in cpu.histograms)
bhist = all(np.array_equal(cpu.bias_histograms[k], gpu.bias_histograms[k])
            for k in cpu.bias_histograms)
print(json.dumps({"same_rows": cpu.rows == gpu.rows, "same_hist": hist and bhist,
                  "same_points": [p["input_grad_mean"] for p in cpu.points]
                  == [p["input_grad_mean"] for p in gpu.points]}))
"""


def test_cuda_simulator_matches_cpu():
    pytest.importorskip("numba.cuda")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"same_rows": True, "same_hist": True, "same_points": True}


def test_kernel_cache_keys_tell_the_kinds_apart():
    """One cached kernel per (weight kind, bias kind, biases or not): a key
    shared between two would serve one sweep another's machine code."""
    from gradkern.stream.dists import DIST_KINDS
    from gradkern.sweeps.cpu import _make_sample_stats_kernel

    spec = gk.ACTIVATIONS["Tanh"]
    kinds = [code for code, _, _ in DIST_KINDS.values()]
    keys = {_make_sample_stats_kernel(spec.forward, spec.backward, False, 0, w, b, biased)
            ._cache._key for w in kinds for b in kinds[:2] for biased in (False, True)}
    assert len(keys) == len(kinds) * 2 * 2
