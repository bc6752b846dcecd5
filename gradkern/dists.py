r"""Input distributions of a sweep, drawn from the counter-based stream.

A :class:`Dist` is a kind and up to 4 float64 parameters; ``Dist.parse``
reads the CLI's ``kind:p1,p2`` strings.  :func:`sample_x` turns (seed, sample
index) into one input, in float64, and is what every sweep kernel (CPU and
CUDA) calls; :func:`draw` runs the same function over a range of indices, so
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
(:mod:`gradkern._vecmath`: arithmetic, FMA and bit casts, no libm), and IEEE
+, *, /, sqrt are exact-rounded everywhere, so every draw is the same bits on
any CPU and GPU (GPU kernels compile with FMA contraction off), and a loop of
draws is a SIMD loop (:func:`filler`): 22 -> 3.3 ns per normal sample on one
core of this machine against libm.  Student-t's ``u**(-2/nu) - 1`` is
``expm1(-2/nu * log u)``.

RReLU slopes (training mode) use stream ``1 + k`` for layer k: slope =
``lower + (upper - lower) * u`` in float64 with lower/upper already rounded to
the kernel dtype, then rounded to it (:func:`rrelu_slopes`).
"""
import math
from dataclasses import dataclass

import numba
import numpy as np

from ._vecmath import vcossin_turns, vexp, vexpm1, vlog
from .rng import sample_words, split_seed, uniform_a, uniform_b

__all__ = ["Dist", "DIST_KINDS", "sample_x", "sample_pair", "draw", "filler", "rrelu_slopes",
           "rrelu_slope"]

#: kind name -> (code used in kernels, parameter names, default parameters)
DIST_KINDS = {
    "normal": (0, ("mu", "sigma"), (0.0, 1.0)),
    "uniform": (1, ("a", "b"), (0.0, 1.0)),
    "laplace": (2, ("mu", "b"), (0.0, 1.0)),
    "lognormal": (3, ("mu", "sigma"), (0.0, 1.0)),
    "student-t": (4, ("nu",), (None,)),
    "constant": (5, ("c",), (None,)),
    "grid": (6, ("a", "b"), (None, None)),
}
_ALIASES = {"t": "student-t", "studentt": "student-t", "student_t": "student-t",
            "gaussian": "normal", "const": "constant"}

@dataclass(frozen=True)
class Dist:
    """An input distribution: ``kind`` (a key of :data:`DIST_KINDS`) and its
    parameters, e.g. ``Dist("normal", (0.0, 1.0))``."""

    kind: str
    params: tuple

    def __post_init__(self):
        kind = _ALIASES.get(self.kind.lower(), self.kind.lower())
        if kind not in DIST_KINDS:
            raise ValueError(
                f"unknown distribution {self.kind!r}; valid: {', '.join(DIST_KINDS)}"
            )
        _, names, defaults = DIST_KINDS[kind]
        values = tuple(float(v) for v in self.params)
        if len(values) > len(names):
            raise ValueError(f"{kind} takes {len(names)} parameter(s) ({', '.join(names)}), "
                             f"got {len(values)}")
        values += tuple(defaults[len(values):])
        if any(v is None for v in values):
            raise ValueError(f"{kind} needs parameter(s) {', '.join(names)}")
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{kind}: parameters must be finite, got {values}")
        if kind in ("normal", "lognormal", "laplace") and not values[1] > 0:
            raise ValueError(f"{kind}: {names[1]} must be > 0, got {values[1]}")
        if kind in ("uniform", "grid") and not values[1] >= values[0]:
            raise ValueError(f"{kind}: b must be >= a, got a={values[0]}, b={values[1]}")
        if kind == "student-t" and not values[0] > 0:
            raise ValueError(f"student-t: nu must be > 0, got {values[0]}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "params", values)

    @classmethod
    def parse(cls, text):
        """``"normal:0,1"``, ``"uniform:-3,3"``, ``"t:3"``, ``"grid:-5,5"``, ``"normal"``."""
        if isinstance(text, Dist):
            return text
        kind, _, rest = str(text).strip().partition(":")
        try:
            params = tuple(float(v) for v in rest.split(",") if v.strip())
        except ValueError:
            raise ValueError(f"bad distribution {text!r}: parameters must be numbers, "
                             "as in normal:0,1") from None
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


@numba.njit(inline="always")
def _box_muller(u, v):
    rad = math.sqrt(-2.0 * vlog(u))
    c, s = vcossin_turns(v)
    return rad * c, rad * s


@numba.njit(inline="always")
def _laplace(mu, b, u):
    d = u - 0.5  # exact, as are 2|d| and 1 - 2|d|
    m = vlog(1.0 - 2.0 * abs(d))
    return mu - b * m if d > 0.0 else mu + b * m


@numba.njit(inline="always")
def _student_t(nu, r):
    # u**(-2/nu) - 1 as expm1(-2/nu * log u): no cancellation when u is near 1
    c, _ = vcossin_turns(uniform_b(r))
    return c * math.sqrt(nu * vexpm1((-2.0 / nu) * vlog(uniform_a(r))))


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
    return vexp(p[0] + p[1] * z0), vexp(p[0] + p[1] * z1)


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
    r = sample_words(seed, j, 0)
    if code == 0:
        return _normal_pair(p, r)
    if code == 1:
        return _uniform_pair(p, r)
    if code == 2:
        return _laplace_pair(p, r)
    return _lognormal_pair(p, r)


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
    if n < 0 or start < 0:
        raise ValueError("n and start must be >= 0")
    total = start + n if total is None else int(total)
    code, p = dist.kernel_params()
    out = np.empty(n, dtype=np.dtype(dtype))
    _draw_into(code, p, np.uint64(seed), np.int64(start), np.int64(total), out)
    return out


def rrelu_slopes(n, n_layers, seed, lower, upper, *, start=0, dtype=np.float32):
    """The (n, n_layers) RReLU training slopes a sweep uses for samples
    ``start ..``; pass them as ``chain_grad(..., noise=...)`` to reproduce it."""
    dtype = np.dtype(dtype)
    lo, hi = (float(dtype.type(v)) for v in (lower, upper))
    out = np.empty((n, n_layers), dtype=dtype)
    _slopes_into(np.uint64(split_seed(seed)), np.int64(start), lo, hi, out)
    return out
