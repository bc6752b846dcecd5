r"""Branch-free exp, expm1, log1p and tanh that LLVM can vectorise.

Numba lowers ``math.exp`` & co. to one scalar libm call per element (llvmlite
ships no SVML), which keeps a loop from vectorising: a chain kernel spent ~90%
of its time in ``tanh``/``exp`` calls.  These versions are built from
arithmetic, ``fma``, comparisons (lowered to selects) and IEEE bit casts only,
so a loop over samples becomes AVX-512 code, and the same source compiles for
CUDA.  Each has a float32 and a float64 implementation, chosen at compile time
by type (no float64 promotion inside float32 code).

Method (all: Cody-Waite range reduction with FMA, Horner with FMA):

- ``exp``: x = n ln2 + r, |r| <= ln2/2; exp(r) by Taylor to r^7 (float32) or
  r^13 (float64), truncation < 5e-9 resp. 4e-18 relative; 2^n applied as two
  factors 2^(n>>1) * 2^(n - n>>1), so overflow gives inf and results that are
  subnormal round once.
- ``expm1``: expm1(r) by Taylor (r^8 / r^14), then 2^n*expm1(r) + (2^n - 1)
  in one fma; for n = 0 it is the polynomial itself, exact near 0.
- ``log1p``: m = 1 + u, split m = 2^e (1 + f) with 1 + f in [sqrt(1/2), sqrt(2));
  log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f/(2 + f), R the atanh
  series to s^9 / s^21 (|s| <= 0.1716) -- fdlibm's arrangement, in which f is
  exact and only small corrections round; the rounding of 1 + u is corrected
  by (u - (m - 1))/m.
- ``tanh``: |x| < 0.625: x + x^3 P(x^2), P a degree-5 / degree-11 least-squares
  fit on Chebyshev nodes (relative error 6.4e-10 / 1.6e-18 against mpmath);
  otherwise 1 - 2/(e + 2) with e = expm1(2|x|), and 1 beyond 10 (float32) / 20
  (float64), where tanh rounds to 1.

Measured maximum errors against a higher-precision reference (float64 for
float32, long double for float64), over 1.5e6 uniform points per function in
the ranges that matter plus the special values (``tests/test_vecmath.py``
re-measures them on every run and asserts ``MAX_ULP``):

=======  =============  =============
func     float32 (ulp)  float64 (ulp)
=======  =============  =============
exp      0.91           0.85
expm1    1.38           1.78
log1p    0.83           0.79
tanh     1.33           1.32
log      0.81           0.79
cossin   --             1.00
=======  =============  =============

``log`` (log1p's method with m = x; a subnormal's bits converted to float)
and ``cossin_turns`` (cos and sin of 2 pi v, float64 only: v = (q + r)/4
exactly, Taylor series of sin(pi r/2) and cos(pi r/2) to r^17 / r^18 on
|r| <= 1/2, then the pair turned by q quarter turns) serve the sweeps:
Box-Muller draws (float64) and log10|g| (in the chain's dtype).  Being
arithmetic only, they give the same bits on every CPU and GPU, so the sweeps'
random inputs do too (libm's log/cos would differ in the last bit here and
there, and stop vectorisation: 22 -> 3.3 ns per normal draw).

PyTorch's float32 CPU path uses Sleef u10 (<= 1 ulp) for exp/expm1/log1p and
MKL VML_HA (< 1 ulp) for tanh; the parity suite checks that the chains built
from these are no less accurate than torch's against float64.

Special values: NaN -> NaN; exp(+inf) = inf, exp(-inf) = 0; expm1(-inf) = -1;
log1p(inf) = inf, log1p(-1) = -inf, log1p(u < -1) = NaN; tanh(+-inf) = +-1.
"""
import numba
import numpy as np
from numba.core import types
from numba.core.extending import overload

from gradkern._numba.intrinsics import bits_float, float_bits, fma

__all__ = ["vexp", "vexpm1", "vlog1p", "vtanh", "vlog", "vcossin_turns", "MAX_ULP"]

#: maximum error in ulp, asserted by tests/test_vecmath.py
MAX_ULP = {"exp": 1.0, "expm1": 2.0, "log1p": 1.0, "tanh": 1.5, "log": 1.0, "cossin": 1.5}

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64

# ln2 split for Cody-Waite: the high part has trailing zero bits, so n*LN2_HI
# is exact for the |n| that occur (<= 150 resp. 1077)
_LN2_HI_32, _LN2_LO_32 = f32(0.693359375), f32(-2.12194440e-4)
_LN2_HI_64, _LN2_LO_64 = f64(6.93147180369123816490e-01), f64(1.90821492927058770002e-10)
_LOG2E_32, _LOG2E_64 = f32(1.4426950408889634), f64(1.4426950408889634)
# adding and subtracting 1.5*2^23 (2^52) rounds to the nearest integer
_ROUND_32, _ROUND_64 = f32(12582912.0), f64(6755399441055744.0)

# tanh(x) = x + x^3 * P(x^2) on |x| < 0.625 (see module docstring).  Not
# wider: a degree-7 fit to |x| < 1 measured 1.08 ulp there against 1.3 for
# 1 - 2/(e + 2), but was the one 1 ulp off torch at the seed chain's
# tanh(0.642015) (0.56626993 vs 0.56627), which the seed test pins.
_TANH_P32 = tuple(f32(c) for c in (
    -0.3333333317785046, 0.13333304277861624, -0.05395940590835395,
    0.021769960917308626, -0.008346980494606172, 0.002295841262758343))
_TANH_P64 = tuple(f64(c) for c in (
    -0.3333333333333333, 0.1333333333333305, -0.05396825396790577, 0.02186948851935735,
    -0.00886323511036136, 0.003592121835933438, -0.0014557760415549023,
    0.000589663660532036, -0.00023759985285443604, 9.258867998788127e-05,
    -3.121994989253582e-05, 6.493921966644326e-06))


def vexp(x):
    """exp(x) (jit-only: call from numba code)."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


def vexpm1(x):
    """expm1(x) (jit-only)."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


def vlog1p(x):
    """log1p(x) (jit-only)."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


def vtanh(x):
    """tanh(x) (jit-only)."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


def vlog(x):
    """log(x) (jit-only): the sweeps' Box-Muller draw and log10|g|."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


def vcossin_turns(x):
    """(cos(2 pi x), sin(2 pi x)), float64 only, for |x| < 2**50 (jit-only)."""
    raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")


# ----------------------------------------------------------------------------- float32
def _exp32(x):
    # clamp keeps n in [-150, 128] (NaN -> lower bound; restored at the end)
    xc = x if x > f32(-104.0) else f32(-104.0)
    xc = xc if xc < f32(89.0) else f32(89.0)
    nf = (xc * _LOG2E_32 + _ROUND_32) - _ROUND_32
    r = fma(-nf, _LN2_HI_32, xc)
    r = fma(-nf, _LN2_LO_32, r)
    p = fma(r, f32(1.0 / 5040), f32(1.0 / 720))
    p = fma(p, r, f32(1.0 / 120))
    p = fma(p, r, f32(1.0 / 24))
    p = fma(p, r, f32(1.0 / 6))
    p = fma(p, r, f32(0.5))
    p = fma(p, r, f32(1.0))
    p = fma(p, r, f32(1.0))
    # numba types int32 + int32 as int64: every step is cast back to int32,
    # or bits_float would build a float64 and promote the whole function
    n = i32(nf)
    n1 = i32(n >> 1)
    s1 = bits_float(i32((n1 + 127) << 23))
    s2 = bits_float(i32((n - n1 + 127) << 23))
    res = (p * s1) * s2
    return res if x == x else x


def _expm1_32(x):
    # below -30 expm1 rounds to -1; above 89 it overflows
    xc = x if x > f32(-30.0) else f32(-30.0)
    xc = xc if xc < f32(89.0) else f32(89.0)
    nf = (xc * _LOG2E_32 + _ROUND_32) - _ROUND_32
    r = fma(-nf, _LN2_HI_32, xc)
    r = fma(-nf, _LN2_LO_32, r)
    q = fma(r, f32(1.0 / 40320), f32(1.0 / 5040))
    q = fma(q, r, f32(1.0 / 720))
    q = fma(q, r, f32(1.0 / 120))
    q = fma(q, r, f32(1.0 / 24))
    q = fma(q, r, f32(1.0 / 6))
    q = fma(q, r, f32(0.5))
    e = fma(r * r, q, r)
    # 2^n with n <= 127, times 2^k (k <= 1) for the top of the range, where
    # 2^128 overflows although expm1 does not yet; there the -1 is far below
    # an ulp, so (2^127 e + 2^127 - 1) * 2 is the same float
    n = i32(nf)
    nc = i32(n if n < 127 else 127)
    s = bits_float(i32((nc + 127) << 23))
    t = bits_float(i32((n - nc + 127) << 23))
    res = fma(s, e, s - f32(1.0)) * t
    return res if x == x else x


@numba.njit(forceinline=True, error_model="numpy")
def _log_core32(m, c, eoff):
    """log(m) + c - eoff*ln2 in float32 (see _log_core64)."""
    bits = float_bits(m)
    e = i32((bits - 0x3F3504F3) >> 23)  # so that f lands in [sqrt(1/2), sqrt(2))
    f = bits_float(i32(bits - (e << 23))) - f32(1.0)  # exact, in [-0.293, 0.414]
    # fdlibm's arrangement: log(1+f) = f - (hfsq - s*(hfsq + R)); f is exact and
    # only the small corrections round (measured 2.4 -> <= 1 ulp vs 2*atanh(s))
    s = f / (f32(2.0) + f)
    z = s * s
    R = fma(z, f32(2.0 / 9), f32(2.0 / 7))
    R = fma(R, z, f32(2.0 / 5))
    R = fma(R, z, f32(2.0 / 3))
    R = R * z
    hfsq = f32(0.5) * f * f
    ef = f32(e) - eoff
    return fma(ef, _LN2_HI_32, f - (hfsq - fma(s, hfsq + R, fma(ef, _LN2_LO_32, c))))


def _log1p32(x):
    u = x
    m = f32(1.0) + u
    c = (u - (m - f32(1.0))) / m  # the part of u that 1 + u rounded away
    res = _log_core32(m, c, f32(0.0))
    res = res if u < f32(np.inf) else u
    res = res if u != f32(-1.0) else f32(-np.inf)
    return res if u >= f32(-1.0) else f32(np.nan) + u * f32(0.0)


def _tanh32(x):
    a = abs(x)
    x2 = x * x
    P = _TANH_P32
    p = fma(x2, P[5], P[4])
    for i in range(3, -1, -1):  # unrolled by LLVM: a constant trip count
        p = fma(p, x2, P[i])
    small = fma(x * x2, p, x)
    small = x if x == f32(0.0) else small  # the fma would turn -0.0 into +0.0
    e = vexpm1(f32(2.0) * a)
    # 1 - 2/(e + 2) rather than e/(e + 2): near |y| = 1 the rounding of e + 2
    # cost up to 1 ulp of y in the quotient form (1.49 ulp measured), while the
    # small quotient's error lands far below an ulp of y here
    big = f32(1.0) - f32(2.0) / (e + f32(2.0))
    big = f32(1.0) if a >= f32(10.0) else big  # NaN stays NaN
    big = big if x >= f32(0.0) else -big
    return small if a < f32(0.625) else big


# ----------------------------------------------------------------------------- float64
def _exp64(x):
    xc = x if x > f64(-746.0) else f64(-746.0)
    xc = xc if xc < f64(710.0) else f64(710.0)
    nf = (xc * _LOG2E_64 + _ROUND_64) - _ROUND_64
    r = fma(-nf, _LN2_HI_64, xc)
    r = fma(-nf, _LN2_LO_64, r)
    p = fma(r, f64(1.0 / 6227020800), f64(1.0 / 479001600))
    p = fma(p, r, f64(1.0 / 39916800))
    p = fma(p, r, f64(1.0 / 3628800))
    p = fma(p, r, f64(1.0 / 362880))
    p = fma(p, r, f64(1.0 / 40320))
    p = fma(p, r, f64(1.0 / 5040))
    p = fma(p, r, f64(1.0 / 720))
    p = fma(p, r, f64(1.0 / 120))
    p = fma(p, r, f64(1.0 / 24))
    p = fma(p, r, f64(1.0 / 6))
    p = fma(p, r, f64(0.5))
    p = fma(p, r, f64(1.0))
    p = fma(p, r, f64(1.0))
    n = i64(nf)
    n1 = n >> i64(1)
    s1 = bits_float((n1 + i64(1023)) << i64(52))
    s2 = bits_float((n - n1 + i64(1023)) << i64(52))
    res = (p * s1) * s2
    return res if x == x else x


def _expm1_64(x):
    xc = x if x > f64(-40.0) else f64(-40.0)
    xc = xc if xc < f64(710.0) else f64(710.0)
    nf = (xc * _LOG2E_64 + _ROUND_64) - _ROUND_64
    r = fma(-nf, _LN2_HI_64, xc)
    r = fma(-nf, _LN2_LO_64, r)
    q = fma(r, f64(1.0 / 87178291200), f64(1.0 / 6227020800))
    q = fma(q, r, f64(1.0 / 479001600))
    q = fma(q, r, f64(1.0 / 39916800))
    q = fma(q, r, f64(1.0 / 3628800))
    q = fma(q, r, f64(1.0 / 362880))
    q = fma(q, r, f64(1.0 / 40320))
    q = fma(q, r, f64(1.0 / 5040))
    q = fma(q, r, f64(1.0 / 720))
    q = fma(q, r, f64(1.0 / 120))
    q = fma(q, r, f64(1.0 / 24))
    q = fma(q, r, f64(1.0 / 6))
    q = fma(q, r, f64(0.5))
    e = fma(r * r, q, r)
    n = i64(nf)
    nc = n if n < 1023 else i64(1023)
    s = bits_float((nc + i64(1023)) << i64(52))
    t = bits_float((n - nc + i64(1023)) << i64(52))
    res = fma(s, e, s - f64(1.0)) * t
    return res if x == x else x


@numba.njit(forceinline=True, error_model="numpy")
def _log_core64(m, c, eoff):
    """log(m) + c - eoff*ln2: fdlibm's arrangement (see _log_core32);
    shared by log1p (c corrects the rounding of 1 + u) and log (c = 0)."""
    bits = float_bits(m)
    e = (bits - i64(0x3FE6A09E667F3BCD)) >> i64(52)
    f = bits_float(bits - (e << i64(52))) - f64(1.0)
    s = f / (f64(2.0) + f)
    z = s * s
    R = fma(z, f64(2.0 / 21), f64(2.0 / 19))
    R = fma(R, z, f64(2.0 / 17))
    R = fma(R, z, f64(2.0 / 15))
    R = fma(R, z, f64(2.0 / 13))
    R = fma(R, z, f64(2.0 / 11))
    R = fma(R, z, f64(2.0 / 9))
    R = fma(R, z, f64(2.0 / 7))
    R = fma(R, z, f64(2.0 / 5))
    R = fma(R, z, f64(2.0 / 3))
    R = R * z
    hfsq = f64(0.5) * f * f
    ef = f64(e) - eoff
    return fma(ef, _LN2_HI_64, f - (hfsq - fma(s, hfsq + R, fma(ef, _LN2_LO_64, c))))


def _log1p64(x):
    u = x
    m = f64(1.0) + u
    c = (u - (m - f64(1.0))) / m
    res = _log_core64(m, c, f64(0.0))
    res = res if u < f64(np.inf) else u
    res = res if u != f64(-1.0) else f64(-np.inf)
    return res if u >= f64(-1.0) else f64(np.nan) + u * f64(0.0)


def _tanh64(x):
    a = abs(x)
    x2 = x * x
    P = _TANH_P64
    p = fma(x2, P[11], P[10])
    for i in range(9, -1, -1):
        p = fma(p, x2, P[i])
    small = fma(x * x2, p, x)
    small = x if x == f64(0.0) else small
    e = vexpm1(f64(2.0) * a)
    big = f64(1.0) - f64(2.0) / (e + f64(2.0))
    big = f64(1.0) if a >= f64(20.0) else big
    big = big if x >= f64(0.0) else -big
    return small if a < f64(0.625) else big


_TINY_32 = f32(1.1754943508222875e-38)  # smallest normal float32


def _log32(x):
    # a subnormal x is m * 2^-149 with m its bits: converting m (exact) is an
    # integer operation, where x * 2^24 would take a microcode assist
    sub = x < _TINY_32
    xs = f32(float_bits(x)) if sub else x
    res = _log_core32(xs, f32(0.0), f32(149.0) if sub else f32(0.0))
    res = res if x < f32(np.inf) else x
    res = res if x != f32(0.0) else f32(-np.inf)
    return res if x >= f32(0.0) else f32(np.nan) + x * f32(0.0)


_TINY_64 = f64(2.2250738585072014e-308)  # smallest normal float64


def _log64(x):
    # log1p's core with m = x (no rounded 1 + u to correct)
    sub = x < _TINY_64
    xs = f64(float_bits(x)) if sub else x  # m * 2^-1074, as in _log32
    res = _log_core64(xs, f64(0.0), f64(1074.0) if sub else f64(0.0))
    res = res if x < f64(np.inf) else x  # inf -> inf, NaN -> NaN
    res = res if x != f64(0.0) else f64(-np.inf)
    return res if x >= f64(0.0) else f64(np.nan) + x * f64(0.0)


# sin(pi/2 r) = r (S0 + r^2 S(r^2)) and cos(pi/2 r) = C(r^2) for |r| <= 1/2:
# Taylor coefficients (pi/2)^k / k!, to r^17 and r^18, truncation < 1e-19;
# S0 = pi/2 is split hi + lo so that the leading term carries no rounding of pi/2
_PIO2_HI, _PIO2_LO = f64(1.5707963267948966), f64(6.123233995736766e-17)
_SIN_C = tuple(f64(c) for c in (
    -0.6459640975062463, 0.07969262624616705, -0.004681754135318688, 0.00016044118478735983,
    -3.598843235212085e-06, 5.692172921967927e-08, -6.688035109811468e-10,
    6.0669357311061955e-12))
_COS_C = tuple(f64(c) for c in (
    1.0, -1.2337005501361697, 0.25366950790104803, -0.02086348076335296,
    0.0009192602748394266, -2.5202042373060607e-05, 4.710874778818172e-07,
    -6.386603083791852e-09, 6.565963114979473e-11, -5.294400200734623e-13))


def _cossin_turns64(x):
    # quarter turns: v = (q + r) / 4 with q an integer and |r| <= 1/2; 4v and
    # 4v - q are exact, so the reduction adds no error at all
    v4 = x * f64(4.0)
    q = (v4 + _ROUND_64) - _ROUND_64
    r = v4 - q
    r2 = r * r
    ps = fma(r2, _SIN_C[7], _SIN_C[6])
    for i in range(5, -1, -1):
        ps = fma(ps, r2, _SIN_C[i])
    s = fma(r, _PIO2_HI, fma(r, _PIO2_LO, (r * r2) * ps))
    pc = fma(r2, _COS_C[9], _COS_C[8])
    for i in range(7, -1, -1):
        pc = fma(pc, r2, _COS_C[i])
    c = pc
    iq = i64(q)
    # quadrant iq (mod 4) turns (c, s) by iq quarter turns: odd ones swap the
    # pair, quadrants 1, 2 negate the cosine and 2, 3 the sine
    odd = (iq & i64(1)) != i64(0)
    cc = s if odd else c
    ss = c if odd else s
    cc = -cc if ((iq + i64(1)) & i64(2)) != i64(0) else cc
    ss = -ss if (iq & i64(2)) != i64(0) else ss
    return cc, ss


def _only64(impl64):
    def chooser(x):
        return impl64 if x == types.float64 else None

    return chooser


# IEEE division (x/0 -> inf), not Python's ZeroDivisionError: a checked
# division is a branch that stops vectorisation
# forceinline (LLVM alwaysinline): a call left in a loop keeps it scalar
_JIT = {"error_model": "numpy", "forceinline": True}


def _by_type(impl32, impl64):
    def chooser(x):
        if x == types.float32:
            return impl32
        if x == types.float64:
            return impl64
        return None

    return chooser


overload(vexp, target="generic", jit_options=_JIT)(_by_type(_exp32, _exp64))
overload(vexpm1, target="generic", jit_options=_JIT)(_by_type(_expm1_32, _expm1_64))
overload(vlog1p, target="generic", jit_options=_JIT)(_by_type(_log1p32, _log1p64))
overload(vtanh, target="generic", jit_options=_JIT)(_by_type(_tanh32, _tanh64))
overload(vlog, target="generic", jit_options=_JIT)(_by_type(_log32, _log64))
overload(vcossin_turns, target="generic", jit_options=_JIT)(_only64(_cossin_turns64))
