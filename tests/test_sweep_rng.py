"""The counter-based stream: Philox known answers, the uniform map, each
distribution's moments and KS test, and that any range is reproducible."""
import math

import numpy as np
import pytest

import gradkern as gk
from gradkern.stream.dists import DIST_KINDS, Dist
from gradkern.stream.philox import philox4x32, sample_words, uniform_a, uniform_b

scipy_stats = pytest.importorskip("scipy.stats")

# Random123 tests/kat_vectors, the three "philox4x32 10" lines: ctr[4] key[2] -> out[4]
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


@pytest.mark.parametrize("ctr,key,expected", KAT)
def test_philox_known_answers(ctr, key, expected):
    assert tuple(int(v) for v in philox4x32(*ctr, *key)) == expected


def test_counter_layout():
    """counter = (i mod 2**32, i >> 32, stream, 0), key = (seed mod 2**32, seed >> 32)."""
    i, seed = (7 << 32) + 5, (3 << 32) + 11
    assert sample_words(seed, i, 2) == philox4x32(5, 7, 2, 0, 11, 3)


def test_uniform_is_open_and_exact():
    lo = np.array([0, 0, 0, 0], dtype=np.uint64)
    hi = np.array([0xFFFFFFFF] * 4, dtype=np.uint64)
    assert uniform_a(lo) == 0.5 * 2.0**-52
    assert uniform_b(hi) == 1.0 - 0.5 * 2.0**-52 and uniform_b(hi) < 1.0
    assert 1.0 - uniform_b(hi) == 0.5 * 2.0**-52  # 1 - u exact: log(1-u) finite


def test_draw_any_range_is_the_same_stream():
    d = "normal:0,1"
    full = gk.draw(d, 10_000, seed=3, dtype=np.float64)
    assert np.array_equal(gk.draw(d, 100, seed=3, start=4321, dtype=np.float64),
                          full[4321:4421])
    assert not np.array_equal(full, gk.draw(d, 10_000, seed=4, dtype=np.float64))
    # float32 is the float64 draw rounded once
    assert np.array_equal(gk.draw(d, 10_000, seed=3), full.astype(np.float32))


def test_grid_is_evenly_spaced_whatever_the_range():
    x = gk.draw("grid:-3,3", 7, seed=0, dtype=np.float64)
    assert np.array_equal(x, -3 + 6 * (np.arange(7) / 6))
    assert x[0] == -3 and x[-1] == 3
    assert np.array_equal(gk.draw("grid:-3,3", 3, seed=0, start=2, total=7, dtype=np.float64),
                          x[2:5])
    assert gk.draw("grid:2,5", 1, seed=0)[0] == 2
    assert np.all(gk.draw("constant:1.5", 5, seed=9) == 1.5)


N = 100_000
# (dist, scipy frozen distribution): moments are checked against the frozen one
CASES = [
    ("normal:0.5,2", scipy_stats.norm(0.5, 2)),
    ("uniform:-3,3", scipy_stats.uniform(-3, 6)),
    ("laplace:1,0.5", scipy_stats.laplace(1, 0.5)),
    ("lognormal:0,0.5", scipy_stats.lognorm(0.5, scale=1.0)),
    ("student-t:3", scipy_stats.t(3)),
    ("student-t:0.7", scipy_stats.t(0.7)),  # infinite mean: KS only
    ("student-t:30", scipy_stats.t(30)),
]


@pytest.mark.parametrize("text,ref", CASES, ids=[c[0] for c in CASES])
def test_distribution_ks_and_moments(text, ref):
    x = gk.draw(text, N, seed=12345, dtype=np.float64)
    assert np.all(np.isfinite(x))
    assert scipy_stats.kstest(x, ref.cdf).pvalue > 1e-3  # fixed seed: not flaky
    mean, var = ref.stats("mv")
    if np.isfinite(mean):
        sd = math.sqrt(var) if np.isfinite(var) else 1.0
        assert abs(x.mean() - mean) < 5 * sd / math.sqrt(N) + (0.05 if not np.isfinite(var)
                                                               else 0)
    if np.isfinite(var) and text != "student-t:3":  # t(3) has no 4th moment: var too noisy
        assert abs(x.var() / var - 1) < 0.03


def test_box_muller_pairs():
    """Samples 2j and 2j+1 are the cosine and sine outputs of counter j
    (gradkern's own log and cos/sin: within a few ulp of libm's)."""
    r = sample_words(0, 8, 0)
    rad = math.sqrt(-2 * math.log(uniform_a(r)))
    x = gk.draw("normal:0,1", 2, seed=0, start=16, dtype=np.float64)
    assert x[0] == pytest.approx(rad * math.cos(2 * math.pi * uniform_b(r)), rel=1e-15)
    assert x[1] == pytest.approx(rad * math.sin(2 * math.pi * uniform_b(r)), rel=1e-15)
    assert gk.draw("uniform:0,1", 2, seed=0, start=16, dtype=np.float64).tolist() == \
        [uniform_a(r), uniform_b(r)]
    # odd starts and lengths give the same values as the pairs
    full = gk.draw("lognormal:0,1", 101, seed=2)
    assert np.array_equal(gk.draw("lognormal:0,1", 7, seed=2, start=33), full[33:40])


def test_rrelu_slopes_are_uniform_on_the_bounds():
    s = gk.rrelu_slopes(20_000, 3, seed=1, lower=0.125, upper=1 / 3)
    assert s.dtype == np.float32 and s.shape == (20_000, 3)
    assert s.min() >= np.float32(0.125) and s.max() <= np.float32(1 / 3)
    assert scipy_stats.kstest(s[:, 1].astype(float), scipy_stats.uniform(0.125, 1 / 3 - 0.125).cdf
                              ).pvalue > 1e-3
    # layers use different streams; a later range equals a slice
    assert not np.array_equal(s[:, 0], s[:, 1])
    assert np.array_equal(gk.rrelu_slopes(10, 3, 1, 0.125, 1 / 3, start=500), s[500:510])


@pytest.mark.parametrize("text", ["normal:0,0", "uniform:3,1", "student-t:0", "bogus:1",
                                  "normal:a,b", "constant", "normal:0,1,2", "grid:0",
                                  "uniform:-1e308,1e308", "normal:0,", "normal:nan,1"])
def test_bad_distributions_are_rejected(text):
    with pytest.raises(ValueError):
        Dist.parse(text)


@pytest.mark.parametrize("text, match", [
    # no parameter is filled in with a default ...
    ("normal", r"normal takes 2 parameters \(mu, sigma\), e.g. normal:0,1; got 0"),
    ("normal:0", r"normal takes 2 parameters \(mu, sigma\), e.g. normal:0,1; got 1"),
    ("uniform", r"uniform takes 2 parameters \(a, b\), e.g. uniform:-3,3"),
    ("student-t", r"student-t takes 1 parameter \(nu\), e.g. student-t:3"),
    # ... and no kind has a second name
    ("gaussian:0,1", "unknown distribution 'gaussian'.*valid: normal:mu,sigma; uniform:a,b"),
    ("t:3", "unknown distribution 't'"),
    ("const:2", "unknown distribution 'const'"),
    ("studentt:3", "unknown distribution 'studentt'"),
])
def test_parse_needs_every_parameter_and_the_one_name(text, match):
    with pytest.raises(ValueError, match=match):
        Dist.parse(text)


def test_parse_names_and_forms():
    assert Dist.parse("normal:0,1") == Dist("normal", (0.0, 1.0))
    assert str(Dist.parse("student-t:3")) == "student-t:3"
    assert str(Dist.parse("Uniform:-3,3")) == "uniform:-3,3"  # any case, as activations
    assert set(DIST_KINDS) == {"normal", "uniform", "laplace", "lognormal", "student-t",
                               "constant", "grid"}
    for kind, (_, names, example) in DIST_KINDS.items():  # each example parses
        assert len(Dist.parse(f"{kind}:{','.join(map(str, example))}").params) == len(names)
    with pytest.raises(TypeError, match="distribution must be a str"):
        Dist.parse(3)
    with pytest.raises(ValueError, match="normal takes 2 parameters"):
        Dist("normal", (0.0,))


@pytest.mark.parametrize("call", [
    lambda s: gk.draw("normal:0,1", 3, s),
    lambda s: gk.rrelu_slopes(3, 2, s, 0.125, 1 / 3),
    lambda s: gk.chain_grad(np.ones(3), "RReLU", [1.0], seed=s),
    lambda s: gk.sweep("Tanh", samples=10, seed=s, backend="cpu"),
])
@pytest.mark.parametrize("seed, exc", [(-1, ValueError), (2**64, ValueError), (1.5, TypeError),
                                       ("1", TypeError), (True, TypeError)])
def test_every_seed_error_says_seed_and_its_range(call, seed, exc):
    with pytest.raises(exc, match=r"seed must be an integer in \[0, 2\*\*64\)"):
        call(seed)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"n": -1}, ValueError, r"n must be in \[0, 2\*\*62\]"),
    ({"n": 2.0}, TypeError, "n must be an integer"),
    ({"start": 2**63}, ValueError, "start must be in"),
    ({"total": 4}, ValueError, r"start \+ n \(0 \+ 5\) must be <= total \(4\)"),
    ({"dtype": "int8"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "nonsense"}, TypeError, "dtype must be float32 or float64"),
])
def test_draw_arguments_are_checked(kwargs, exc, match):
    args = {"n": 5, **kwargs}
    with pytest.raises(exc, match=match):
        gk.draw("normal:0,1", args.pop("n"), 0, **args)


@pytest.mark.parametrize("kwargs, exc, match", [
    ({"lower": -1e300}, ValueError, "RReLU: lower=-1e\\+300 overflows float32"),
    ({"lower": -1e308, "upper": 1e308, "dtype": np.float64}, ValueError,
     "upper - lower .* overflows float64"),
    ({"lower": 0.5, "upper": 0.1}, ValueError, "lower .* must be <= upper"),
    ({"lower": float("nan")}, ValueError, "must be finite"),
    ({"lower": 10**400}, ValueError, "must be finite"),
    ({"upper": "1"}, TypeError, "upper must be a real number"),
    ({"n_layers": 0}, ValueError, "n_layers must be in"),
])
def test_rrelu_slopes_arguments_are_checked(kwargs, exc, match):
    args = {"lower": 0.125, "upper": 1 / 3, "n_layers": 2, **kwargs}
    with pytest.raises(exc, match=match):
        gk.rrelu_slopes(4, args.pop("n_layers"), 0, args.pop("lower"), args.pop("upper"), **args)


# --- chain_grad(seed=s) draws the sweep's slopes ------------------------------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_grad_seed_is_the_sweep_slope_stream(dtype):
    """seed=s gives exactly ``gk.rrelu_slopes(N, L, s, ...)`` as noise (samples 0..N-1)."""
    act = gk.activation("RReLU", lower=0.1, upper=0.7)
    x = gk.draw("normal:0,2", 501, seed=9, dtype=dtype)
    w = [1.0, -0.5, 2.0]
    seeded = gk.chain_grad(x, act, w, seed=2**40 + 9)
    noise = gk.rrelu_slopes(501, 3, 2**40 + 9, 0.1, 0.7, dtype=dtype)
    given = gk.chain_grad(x, act, w, noise=noise)
    for a, b in zip(seeded, given):
        assert a.dtype == dtype and a.tobytes() == b.tobytes()
    # no seed: a fresh one each call, not a fixed stream
    assert gk.chain_grad(x, act, w).weight_grads.tobytes() != seeded.weight_grads.tobytes()


def test_chain_grad_seed_reproduces_a_sweep():
    """The sweep's order-free statistics (min, max, zero fraction) of every df/dw_k and
    df/dx equal those of chain_grad(seed=s) on the sweep's own inputs: any sample of a
    sweep is reproduced by chain_grad with the sweep's seed."""
    n, seed = 3000, 5
    res = gk.sweep("RReLU", depths=3, dists="normal:0,1", weights=1.0, samples=n, seed=seed,
                   backend="cpu")
    x = gk.draw("normal:0,1", n, seed)
    one = gk.chain_grad(x, "RReLU", [1.0] * 3, seed=seed)
    for row in res.rows:
        g = one.weight_grads[:, row["layer"] - 1]
        assert (row["min_grad"], row["max_grad"]) == (float(g.min()), float(g.max()))
        assert row["zero_fraction"] == float(np.mean(g == 0))
    (point,) = res.points
    assert (point["input_grad_min"], point["input_grad_max"]) == (
        float(one.input_grad.min()), float(one.input_grad.max()))
    # and another seed is not the same sweep
    other = gk.chain_grad(x, "RReLU", [1.0] * 3, seed=seed + 1)
    assert float(other.weight_grads[:, 0].min()) != res.rows[0]["min_grad"]


# --- sweep arguments ----------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, exc, match", [
    ({"samples": "1e30"}, ValueError, r"samples must be in \[1, 2\*\*62\]"),
    ({"samples": 1e30}, ValueError, r"samples must be in \[1, 2\*\*62\]"),
    ({"samples": 2**62 + 1}, ValueError, r"samples must be in \[1, 2\*\*62\]"),
    ({"samples": "lots"}, ValueError, "samples must be a whole number"),
    ({"samples": 10.5}, ValueError, "samples must be a whole number"),
    ({"samples": True}, TypeError, "samples must be a whole number"),
    ({"depths": "1-1000000000000"}, ValueError, r"depths must be in \[1, 10000\]"),
    ({"depths": 0}, ValueError, r"depths must be in \[1, 10000\]"),
    ({"depths": [2.5]}, TypeError, "depths must be whole numbers"),
    ({"depths": True}, TypeError, "depths must be"),
    ({"weights": [10**400]}, ValueError, "weights must be finite"),
    ({"weights": "1,2"}, TypeError, "weights must be real numbers"),
    ({"weights": 3.5e38}, ValueError, "weight 3.5e\\+38 overflows float32"),
    ({"dists": "normal"}, ValueError, "normal takes 2 parameters"),
    ({"dists": 3}, TypeError, "dists must be"),
    ({"activations": 3}, TypeError, "activations must be"),
    ({"chunk_blocks": 0}, ValueError, "chunk_blocks must be >= 1"),
    ({"chunk_blocks": float("inf")}, TypeError, "chunk_blocks must be an integer"),
    ({"threads": 0}, ValueError, "threads must be >= 1"),
    ({"dtype": "float16"}, ValueError, "dtype must be float32 or float64"),
    ({"dtype": "nonsense"}, TypeError, "dtype must be float32 or float64"),
    ({"on_point": 3}, TypeError, "on_point must be callable"),
    # a parameter beyond the chain's dtype is refused before any work
    ({"activations": [gk.activation("LeakyReLU", negative_slope=1e300)]}, ValueError,
     "negative_slope = 1e\\+300 overflows float32"),
    ({"activations": [gk.activation("RReLU", lower=-1e300)]}, ValueError,
     "lower=-1e\\+300 overflows float32"),
])
def test_sweep_arguments_are_checked(kwargs, exc, match):
    args = {"activations": "Tanh", "samples": 100, "backend": "cpu", **kwargs}
    with pytest.raises(exc, match=match):
        gk.sweep(**args)
