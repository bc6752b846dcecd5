"""The counter-based stream: Philox known answers, the uniform map, each
distribution's moments and KS test, and that any range is reproducible."""
import math

import numpy as np
import pytest

import gradkern as gk
from gradkern.dists import DIST_KINDS, Dist
from gradkern.rng import philox4x32, sample_words, uniform_a, uniform_b

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
                                  "normal:a,b", "constant", "normal:0,1,2", "grid:0"])
def test_bad_distributions_are_rejected(text):
    with pytest.raises(ValueError):
        Dist.parse(text)


def test_parse_defaults_and_names():
    assert Dist.parse("normal") == Dist("normal", (0.0, 1.0))
    assert str(Dist.parse("t:3")) == "student-t:3"
    assert str(Dist.parse("uniform:-3,3")) == "uniform:-3,3"
    assert set(DIST_KINDS) == {"normal", "uniform", "laplace", "lognormal", "student-t",
                               "constant", "grid"}
