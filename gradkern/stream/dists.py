r"""Input distributions of a sweep, drawn from the counter-based stream.

A :class:`Dist` is a kind and its float64 parameters, all given (no
defaults, one name per kind); ``Dist.parse`` reads the CLI's ``kind:p1,p2``
strings.  :func:`sample_x` turns (seed, sample index) into one input, in
float64, and is what every sweep kernel (CPU and CUDA) calls; :func:`draw` runs the same function over a range of indices, so
a user or a test can materialise exactly the inputs a sweep saw.

How each draw is made.  Samples come in pairs (2j, 2j+1); with
(r0, r1, r2, r3) = ``rng.sample_words(seed, j, 0)``, u = ``uniform_a`` (words
r0, r1) and v = ``uniform_b`` (words r2, r3):

===================  ===================================================
normal(mu, sigma)    mu + sigma * z, with Box-Muller's two outputs
                     z_2j = sqrt(-2 log u) cos(2 pi v),
                     z_2j+1 = sqrt(-2 log u) sin(2 pi v)
uniform(a, b)        x_2j = a + (b - a) u,  x_2j+1 = a + (b - a) v
laplace(mu, b)       inverse CDF, mu - b sign(w - 1/2) log(1 - 2|w - 1/2|),
                     w = u for 2j, w = v for 2j+1
lognormal(mu, sigma) exp(mu + sigma * z), z as for normal
student-t(nu)        one counter per sample i (not per pair): with u, v
                     from ``sample_words(seed, i, 0)``,
                     cos(2 pi v) * sqrt(nu * (u**(-2/nu) - 1)),
                     the power as expm1(-2/nu * log u)
                     (Bailey's polar method, 1994, in its rejection-free
                     form: (u, 2 pi v) is a uniform point of the unit disc
                     in polar coordinates with W = u)
constant(c)          c
grid(a, b)           a + (b - a) * i / (N - 1), N the point's sample count
                     (a for N = 1); no random numbers
===================  ===================================================

Pairs halve the Philox calls and Box-Muller's log and sqrt.
Each value is computed in float64 and rounded once to the kernel's dtype.
log, cos/sin (of 2 pi v, in turns), exp and expm1 are gradkern's own
(:mod:`gradkern._numba.vecmath`: arithmetic, FMA and bit casts, no libm), and IEEE
+, *, /, sqrt are exact-rounded everywhere, so every draw is the same bits on
any CPU and GPU (GPU kernels compile with FMA contraction off), and a loop of
draws is a SIMD loop (:func:`filler`): 22 -> 3.3 ns per normal sample on one
core of this machine against libm.  Student-t's ``u**(-2/nu) - 1`` is
``expm1(-2/nu * log u)``.

RReLU slopes (training mode) use stream ``1 + k`` for layer k: slope =
``lower + (upper - lower) * u`` in float64 with lower/upper already rounded to
the kernel dtype, then rounded to it (:func:`rrelu_slopes`).

A sweep's random weights and biases are drawn like the inputs, by the same
distributions and the same pairs, from counter family 1 (weights) and 2
(biases) with ``stream`` = k for layer k + 1 (:mod:`.philox`): the value of
sample i at layer k + 1 is half ``i & 1`` of the pair drawn from
``family_words(seed, i >> 1, k, family)`` (student-t: its own counter i; grid:
``a + (b - a) i / (N - 1)``, the same at every layer).  A plain number w is
``constant:w``.  :func:`draw_weights` and :func:`draw_biases` materialise
them.
"""
import math
import numbers
from dataclasses import dataclass

import numba
import numpy as np

from .._numba.vecmath import vcossin_turns, vexp_uncorrected, vexpm1_uncorrected, vlog_uncorrected

# Part of the stream's definition ("philox4x32-10/gradkern-2"): exp, expm1 and
# log as they were when it was published -- vecmath's algorithms without the
# correction steps vexp, vexpm1 and float64 vlog took later -- so that every
# draw keeps its bits (tests/test_sweep_rng.py pins them)
stream_exp = vexp_uncorrected
stream_expm1 = vexpm1_uncorrected
stream_log = vlog_uncorrected
from .philox import (BIAS_FAMILY, WEIGHT_FAMILY, family_words, sample_words, split_seed,
                     uniform_a, uniform_b)

__all__ = ["Dist", "DIST_KINDS", "MAX_SAMPLES", "sample_x", "sample_pair", "draw", "filler",
           "rrelu_slopes", "rrelu_slope", "layer_pair", "layer_filler", "layer_dist",
           "draw_weights", "draw_biases"]

#: kind name -> (code used in kernels, parameter names, example parameters)
DIST_KINDS = {
    "normal": (0, ("mu", "sigma"), (0, 1)),
    "uniform": (1, ("a", "b"), (-3, 3)),
    "laplace": (2, ("mu", "b"), (0, 1)),
    "lognormal": (3, ("mu", "sigma"), (0, 1)),
    "student-t": (4, ("nu",), (3,)),
    "constant": (5, ("c",), (2,)),
    "grid": (6, ("a", "b"), (-5, 5)),
}

#: Most samples per grid point and highest sample index + 1 of a draw: 2**62.
#: Sample indices are int64 in the kernels (and the Philox counter 64-bit);
#: 2**62 leaves room for rounding N up to whole blocks and for index sums
#: without overflow.  At 1e9 samples/s it is 146 years of work.
MAX_SAMPLES = 2**62


def _form(kind):
    _, names, example = DIST_KINDS[kind]
    n = len(names)
    return (f"{kind} takes {n} parameter{'s' if n > 1 else ''} ({', '.join(names)}), "
            f"e.g. {kind}:{','.join(map(str, example))}")


def _forms():
    return "; ".join(f"{k}:{','.join(DIST_KINDS[k][1])}" for k in DIST_KINDS)


@dataclass(frozen=True)
class Dist:
    """An input distribution: ``kind`` (a key of :data:`DIST_KINDS`, any
    case) and all its parameters, e.g. ``Dist("normal", (0.0, 1.0))``."""

    kind: str
    params: tuple

    def __post_init__(self):
        if not isinstance(self.kind, str):
            raise TypeError(f"distribution kind must be a str, got {type(self.kind).__name__}")
        kind = self.kind.strip().lower()
        if kind not in DIST_KINDS:
            raise ValueError(
                f"unknown distribution {self.kind!r}; valid: {_forms()}"
            )
        values = _dist_params(kind, self.params)
        names = DIST_KINDS[kind][1]
        if kind in ("normal", "lognormal", "laplace") and not values[1] > 0:
            raise ValueError(f"{kind}: {names[1]} must be > 0, got {values[1]}")
        if kind in ("uniform", "grid") and not values[1] >= values[0]:
            raise ValueError(f"{kind}: b must be >= a, got a={values[0]}, b={values[1]}")
        if kind in ("uniform", "grid") and not math.isfinite(values[1] - values[0]):
            raise ValueError(f"{kind}: b - a overflows float64 (a={values[0]}, b={values[1]})")
        if kind == "student-t" and not values[0] > 0:
            raise ValueError(f"student-t: nu must be > 0, got {values[0]}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", values)

    @classmethod
    def parse(cls, text):
        """A Dist from ``"kind:p1,p2"``: ``"normal:0,1"``, ``"uniform:-3,3"``,
        ``"laplace:0,1"``, ``"lognormal:0,1"``, ``"student-t:3"``,
        ``"constant:2"``, ``"grid:-5,5"``; every parameter given.  A Dist is
        returned as it is."""
        if isinstance(text, Dist):
            return text
        if not isinstance(text, str):
            raise TypeError(f"a distribution must be a str such as 'normal:0,1' or a Dist, "
                            f"got {type(text).__name__}")
        kind, colon, rest = text.strip().partition(":")
        if kind.strip().lower() not in DIST_KINDS:
            raise ValueError(f"unknown distribution {kind.strip()!r} in {text!r}; valid: "
                             f"{_forms()}")
        kind = kind.strip().lower()
        pieces = rest.split(",") if colon else []
        try:
            params = tuple(float(v) for v in pieces)
        except ValueError:
            raise ValueError(f"bad distribution {text!r}: parameters must be numbers; "
                             f"{_form(kind)}") from None
        return cls(kind, params)

    @property
    def code(self):
        return DIST_KINDS[self.kind][0]

    def kernel_params(self):
        """(code, 4 float64 parameters) as the kernels take them."""
        p = self.params + (0.0,) * (4 - len(self.params))
        return self.code, np.array(p, dtype=np.float64)

    def __str__(self):
        # repr round-trips every float; "1.0" is shown as "1" (normal:0,1)
        text = (repr(v)[:-2] if repr(v).endswith(".0") else repr(v) for v in self.params)
        return f"{self.kind}:{','.join(text)}"


def _dist_params(kind, params):
    """The checked float64 parameters of a ``kind`` distribution."""
    _, names, _ = DIST_KINDS[kind]
    if isinstance(params, (str, bytes)) or not hasattr(params, "__len__"):
        raise TypeError(f"{kind} parameters must be a tuple of numbers, got "
                        f"{type(params).__name__}")
    if len(params) != len(names):
        raise ValueError(f"{_form(kind)}; got {len(params)}")
    values = []
    for name, v in zip(names, params):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{kind}: {name} must be a real number, got {type(v).__name__}")
        try:
            values.append(float(v))
        except OverflowError:
            values.append(math.inf)  # an int beyond float64: reported as not finite
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"{kind}: parameters must be finite, got {tuple(params)!r}")
    return tuple(values)


def _count(value, what, low=0):
    """An int in [low, MAX_SAMPLES] (``what`` names it in the error)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    value = int(value)
    if not low <= value <= MAX_SAMPLES:
        raise ValueError(f"{what} must be in [{low}, 2**62], got {value}")
    return value


def float_dtype(dtype):
    """``dtype`` as a NumPy float32/float64 dtype; TypeError or ValueError naming it."""
    try:
        if dtype is None:  # np.dtype(None) would be float64
            raise TypeError
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


@numba.njit(inline="always")
def _box_muller(u, v):
    rad = math.sqrt(-2.0 * stream_log(u))
    c, s = vcossin_turns(v)
    return rad * c, rad * s


@numba.njit(inline="always")
def _laplace(mu, b, u):
    d = u - 0.5  # exact, as are 2|d| and 1 - 2|d|
    m = stream_log(1.0 - 2.0 * abs(d))
    return mu - b * m if d > 0.0 else mu + b * m


@numba.njit(inline="always")
def _student_t(nu, r):
    # u**(-2/nu) - 1 as expm1(-2/nu * log u): no cancellation when u is near 1
    c, _ = vcossin_turns(uniform_b(r))
    return c * math.sqrt(nu * stream_expm1((-2.0 / nu) * stream_log(uniform_a(r))))


@numba.njit(inline="always")
def _grid(p, i, n):
    if n <= 1:
        return p[0]
    return p[0] + (p[1] - p[0]) * (np.float64(i) / np.float64(n - 1))


@numba.njit(inline="always")
def _normal_pair(p, r):
    z0, z1 = _box_muller(uniform_a(r), uniform_b(r))
    return p[0] + p[1] * z0, p[0] + p[1] * z1


@numba.njit(inline="always")
def _uniform_pair(p, r):
    return p[0] + (p[1] - p[0]) * uniform_a(r), p[0] + (p[1] - p[0]) * uniform_b(r)


@numba.njit(inline="always")
def _laplace_pair(p, r):
    return _laplace(p[0], p[1], uniform_a(r)), _laplace(p[0], p[1], uniform_b(r))


@numba.njit(inline="always")
def _lognormal_pair(p, r):
    z0, z1 = _box_muller(uniform_a(r), uniform_b(r))
    return stream_exp(p[0] + p[1] * z0), stream_exp(p[0] + p[1] * z1)


@numba.njit
def sample_pair(code, p, seed, j, n):
    """Samples ``2j`` and ``2j+1`` of ``n`` of distribution ``code`` with
    parameters ``p`` (float64 array of 4), as two float64 values.

    Pairs share one Philox call (counter ``j``) where that keeps the two
    independent: both Box-Muller outputs for normal and lognormal, u and v
    for uniform and laplace.  Student-t uses its own counter per sample
    (Bailey's pair would share a radius), grid and constant none.
    """
    i = 2 * j
    if code == 5:  # constant
        return p[0], p[0]
    if code == 6:
        return _grid(p, i, n), _grid(p, i + 1, n)
    if code == 4:
        return _student_t(p[0], sample_words(seed, i, 0)), \
            _student_t(p[0], sample_words(seed, i + 1, 0))
    return _pair_of_words(code, p, sample_words(seed, j, 0))


@numba.njit(inline="always")
def _pair_of_words(code, p, r):
    """The pair of kinds 0-3 (normal, uniform, laplace, lognormal) from words ``r``."""
    if code == 0:
        return _normal_pair(p, r)
    if code == 1:
        return _uniform_pair(p, r)
    if code == 2:
        return _laplace_pair(p, r)
    return _lognormal_pair(p, r)


@numba.njit
def layer_pair(code, p, seed, j, n, k, family):
    """Samples ``2j`` and ``2j+1``'s values at layer ``k + 1`` in counter
    ``family`` (weights or biases; see the module docstring), as
    :func:`sample_pair` draws inputs."""
    i = 2 * j
    if code == 5:
        return p[0], p[0]
    if code == 6:
        return _grid(p, i, n), _grid(p, i + 1, n)
    if code == 4:
        return _student_t(p[0], family_words(seed, i, k, family)), \
            _student_t(p[0], family_words(seed, i + 1, k, family))
    return _pair_of_words(code, p, family_words(seed, j, k, family))


@numba.njit
def sample_x(code, p, seed, i, n):
    """Sample ``i`` of ``n`` alone (``sample_pair`` of its pair, one half)."""
    a, b = sample_pair(code, p, seed, i >> 1, n)
    return a if (i & 1) == 0 else b


@numba.njit(forceinline=True)  # a call left in the slope loop keeps it scalar
def rrelu_slope(seed, i, k, lo, hi):
    """RReLU training slope of sample ``i`` at layer ``k`` (0-based), float64."""
    return lo + (hi - lo) * uniform_a(sample_words(seed, i, 1 + k))


@numba.njit
def _draw_into(code, p, seed, start, n_total, out):
    for j in range(out.shape[0]):
        out[j] = sample_x(code, p, seed, start + j, n_total)


# fill_x for one kind each: ``fill(p, seed, start, m, n_total, out)`` sets
# ``out[:m]`` = samples ``start .. start+m-1`` (start even; ``out`` may be
# written up to the even length above m), the same values as :func:`sample_x`
# from the same inline functions, as a SIMD loop over samples (Philox
# included).  A kernel is built for one kind (``filler``): all seven in one
# kernel cost 2.5 s more compile time per activation.

def _pairs_filler(pair):
    @numba.njit(inline="always")
    def fill(p, seed, start, m, n_total, out):
        _fill_pairs(pair, p, seed, start, m, out)

    return fill


_fill_normal = _pairs_filler(_normal_pair)
_fill_uniform = _pairs_filler(_uniform_pair)
_fill_laplace = _pairs_filler(_laplace_pair)
_fill_lognormal = _pairs_filler(_lognormal_pair)


@numba.njit(inline="always")
def _fill_student_t(p, seed, start, m, n_total, out):
    for j in range(m):
        out[j] = _student_t(p[0], sample_words(seed, start + j, 0))


@numba.njit(inline="always")
def _fill_constant(p, seed, start, m, n_total, out):
    for j in range(m):
        out[j] = p[0]


@numba.njit(inline="always")
def _fill_grid(p, seed, start, m, n_total, out):
    for j in range(m):
        out[j] = _grid(p, start + j, n_total)


_FILLS = (_fill_normal, _fill_uniform, _fill_laplace, _fill_lognormal, _fill_student_t,
          _fill_constant, _fill_grid)


def filler(code):
    """The inline fill function of distribution kind ``code`` (``Dist.code``)."""
    return _FILLS[code]


@numba.njit(inline="always")
def _fill_pairs(pair, p, seed, start, m, out):
    # one kind per loop: a branch on the kind inside the loop kept it scalar
    # (8.9 vs 4.7 ns per normal sample)
    j0 = start >> 1
    for jp in range((m + 1) >> 1):
        a, b = pair(p, sample_words(seed, j0 + jp, 0))
        out[2 * jp] = a
        out[2 * jp + 1] = b


# Layer fillers, one per kind as for the inputs: ``fill(p, seed, start, m,
# n_total, family, out, k)`` sets ``out[k, :m]`` (``out[k]`` may be written up
# to the even length above m) to the values of samples start .. start+m-1 at
# layer k + 1, the same as :func:`layer_pair`, as a SIMD loop.  The whole 2-D
# array and a row index, not a row view: a view made per call costs atomic
# reference counting in the kernel's inner loop.

def _layer_pairs_filler(pair):
    @numba.njit(inline="always")
    def fill(p, seed, start, m, n_total, family, out, k):
        j0 = start >> 1
        for jp in range((m + 1) >> 1):
            a, b = pair(p, family_words(seed, j0 + jp, k, family))
            out[k, 2 * jp] = a
            out[k, 2 * jp + 1] = b

    return fill


@numba.njit(inline="always")
def _layer_student_t(p, seed, start, m, n_total, family, out, k):
    for j in range(m):
        out[k, j] = _student_t(p[0], family_words(seed, start + j, k, family))


@numba.njit(inline="always")
def _layer_constant(p, seed, start, m, n_total, family, out, k):
    for j in range(m):
        out[k, j] = p[0]


@numba.njit(inline="always")
def _layer_grid(p, seed, start, m, n_total, family, out, k):
    for j in range(m):
        out[k, j] = _grid(p, start + j, n_total)


_LAYER_FILLS = (_layer_pairs_filler(_normal_pair), _layer_pairs_filler(_uniform_pair),
                _layer_pairs_filler(_laplace_pair), _layer_pairs_filler(_lognormal_pair),
                _layer_student_t, _layer_constant, _layer_grid)


def layer_filler(code):
    """The inline layer fill function of distribution kind ``code``."""
    return _LAYER_FILLS[code]


@numba.njit
def _layers_into(code, p, seed, start, n_total, family, out):
    # out is (n, L); the draw of sample start + j at layer k
    for j in range(out.shape[0]):
        i = start + j
        for k in range(out.shape[1]):
            a, b = layer_pair(code, p, seed, i >> 1, n_total, k, family)
            out[j, k] = a if (i & 1) == 0 else b


def layer_dist(value, what="weights"):
    """A layer setting as a Dist: a plain number w is ``constant:w`` (the
    fixed value), a str such as ``"normal:0,1.5"`` or a Dist is parsed."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be numbers or distributions such as 'normal:0,1.5', "
                        "got a bool")
    if isinstance(value, numbers.Real):
        return Dist("constant", (value,))
    if isinstance(value, (str, Dist)):
        return Dist.parse(value)
    raise TypeError(f"{what} must be numbers or distributions such as 'normal:0,1.5', got "
                    f"{type(value).__name__}")


def _draw_layers(setting, n, n_layers, seed, family, start, total, dtype, what):
    dist = layer_dist(setting, what)
    seed = split_seed(seed)
    n, start = _count(n, "n"), _count(start, "start")
    total = start + n if total is None else _count(total, "total")
    if start + n > total:
        raise ValueError(f"start + n ({start} + {n}) must be <= total ({total}): a point's "
                         "samples are 0 .. total-1")
    if isinstance(n_layers, (bool, np.bool_)) or not isinstance(n_layers, numbers.Integral):
        raise TypeError(f"n_layers must be an integer, got {type(n_layers).__name__}")
    if not 1 <= n_layers < 2**32:  # the stream word k is 32 bits
        raise ValueError(f"n_layers must be in [1, 2**32 - 1], got {n_layers}")
    code, p = dist.kernel_params()
    out = np.empty((n, int(n_layers)), dtype=float_dtype(dtype))
    _layers_into(code, p, np.uint64(seed), np.int64(start), np.int64(total), np.uint64(family),
                 out)
    return out


def draw_weights(weights, n, n_layers, seed, *, start=0, total=None, dtype=np.float32):
    """The weights a sweep draws: w_1 .. w_L of samples ``start .. start+n-1``.

    Parameters
    ----------
    weights : float, str or Dist
        The sweep's weight setting: ``"normal:0,1.5"`` (any kind of
        :data:`DIST_KINDS`), or a plain number (every sample and layer).
    n, n_layers : int
        Samples and layers L.
    seed : int
        The sweep's seed (0 <= seed < 2**64).
    start : int
        Index of the first sample.
    total : int, optional
        The point's sample count N, needed by ``grid`` only (default
        ``start + n``).
    dtype : numpy dtype
        float32 (default) or float64; each value is computed in float64 and
        rounded once.

    Returns
    -------
    numpy.ndarray, shape (n, n_layers)
        Column k is w_{k+1}, from Philox counter family 1, stream k.  Row j
        with ``gradkern.chain_grad(x[j:j+1], act, row)`` gives exactly the
        sweep's sample ``start + j``.
    """
    return _draw_layers(weights, n, n_layers, seed, WEIGHT_FAMILY, start, total, dtype,
                        "weights")


def draw_biases(biases, n, n_layers, seed, *, start=0, total=None, dtype=np.float32):
    """The biases a sweep draws: b_1 .. b_L of samples ``start .. start+n-1``.

    As :func:`draw_weights`, from counter family 2 (column k is b_{k+1},
    stream k): the same distribution draws different numbers for the biases.
    """
    return _draw_layers(biases, n, n_layers, seed, BIAS_FAMILY, start, total, dtype, "biases")


@numba.njit
def _slopes_into(seed, start, lo, hi, out):
    for j in range(out.shape[0]):
        for k in range(out.shape[1]):
            out[j, k] = rrelu_slope(seed, start + j, k, lo, hi)


def draw(dist, n, seed, *, start=0, total=None, dtype=np.float32):
    """The inputs a sweep draws: samples ``start .. start+n-1`` of ``dist``.

    Parameters
    ----------
    dist : Dist or str
        ``Dist("normal", (0, 1))`` or a string such as ``"normal:0,1"``.
    n : int
        How many samples.
    seed : int
        The sweep's seed (0 <= seed < 2**64).
    start : int
        Index of the first sample (a sweep's samples are 0 .. N-1).
    total : int, optional
        The point's sample count N, needed by ``grid`` only (default
        ``start + n``).
    dtype : numpy dtype
        float32 (default, the sweep's default) or float64; each value is
        computed in float64 and rounded once.

    Returns
    -------
    numpy.ndarray, shape (n,)
    """
    dist = Dist.parse(dist)
    seed = split_seed(seed)
    n, start = _count(n, "n"), _count(start, "start")
    total = start + n if total is None else _count(total, "total")
    if start + n > total:
        raise ValueError(f"start + n ({start} + {n}) must be <= total ({total}): a point's "
                         "samples are 0 .. total-1")
    code, p = dist.kernel_params()
    out = np.empty(n, dtype=float_dtype(dtype))
    _draw_into(code, p, np.uint64(seed), np.int64(start), np.int64(total), out)
    return out


def slope_bounds(lower, upper, dtype):
    """RReLU's training-slope bounds rounded to ``dtype`` as torch rounds them,
    as float64 values; ValueError naming the bound that is not finite there."""
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):
        lo, hi = float(dtype.type(lower)), float(dtype.type(upper))
    for key, given, value in (("lower", lower, lo), ("upper", upper, hi)):
        if not math.isfinite(value):
            raise ValueError(f"RReLU: {key}={given!r} overflows {dtype} (torch: 'value cannot "
                             "be converted to type float without overflow')")
    if not lo <= hi:
        raise ValueError(f"RReLU: lower ({lower}) must be <= upper ({upper})")
    if not math.isfinite(hi - lo):
        raise ValueError(f"RReLU: upper - lower ({upper} - {lower}) overflows float64")
    return lo, hi


def rrelu_slopes(n, n_layers, seed, lower, upper, *, start=0, dtype=np.float32):
    """The RReLU training slopes of samples ``start .. start+n-1``.

    Parameters
    ----------
    n, n_layers : int
        Samples and layers (L >= 1).
    seed : int
        The sweep's seed (0 <= seed < 2**64).
    lower, upper : float
        RReLU's bounds; rounded to ``dtype`` as torch rounds them.
    start : int
        Index of the first sample.
    dtype : numpy dtype
        float32 (default) or float64.

    Returns
    -------
    numpy.ndarray, shape (n, n_layers)
        ``lower + (upper - lower) * u`` in float64, rounded to ``dtype``, u from
        stream ``1 + k`` for layer k: what a sweep with this seed uses, and what
        ``chain_grad(..., seed=seed)`` draws for samples 0..N-1 (pass them as
        ``noise=`` to reproduce any range).
    """
    seed = split_seed(seed)
    n, start = _count(n, "n"), _count(start, "start")
    if start + n > MAX_SAMPLES:
        raise ValueError(f"start + n must be <= 2**62, got {start} + {n}")
    if isinstance(n_layers, (bool, np.bool_)) or not isinstance(n_layers, numbers.Integral):
        raise TypeError(f"n_layers must be an integer, got {type(n_layers).__name__}")
    # the stream word 1 + k is 32 bits
    if not 1 <= n_layers < 2**32 - 1:
        raise ValueError(f"n_layers must be in [1, 2**32 - 2], got {n_layers}")
    dtype = float_dtype(dtype)
    for key, v in (("lower", lower), ("upper", upper)):
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"RReLU: {key} must be a real number, got {type(v).__name__}")
    try:
        lower, upper = float(lower), float(upper)
    except OverflowError:
        raise ValueError("RReLU: lower and upper must be finite") from None
    if not (math.isfinite(lower) and math.isfinite(upper)):
        raise ValueError(f"RReLU: lower and upper must be finite, got {lower}, {upper}")
    lo, hi = slope_bounds(lower, upper, dtype)
    out = np.empty((n, int(n_layers)), dtype=dtype)
    _slopes_into(np.uint64(seed), np.int64(start), lo, hi, out)
    return out
