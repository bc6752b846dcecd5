r"""Branch-free exp, expm1, log1p, tanh and sigmoid that LLVM can vectorise.

Numba lowers ``math.exp`` & co. to one scalar libm call per element (llvmlite
ships no SVML), which keeps a loop from vectorising: a chain kernel spent ~90%
of its time in ``tanh``/``exp`` calls.  These versions are built from
arithmetic, ``fma``, comparisons (lowered to selects) and IEEE bit casts only,
so a loop over samples becomes AVX-512 code, and the same source compiles for
CUDA.  Each is written once, as a factory over a table of the dtype's
constants (``_F32``, ``_F64``: clamp bounds, coefficients, integer width,
exponent bias); Numba freezes a closure's variables as compile-time constants,
so the float32 and float64 versions compile to the code two hand-written twins
did (measured: ``benchmarks/vecmath_bits.py``), with no float64 promotion in
float32 code, and ``overload`` picks one by the argument's type.
float32 tanh and sigmoid are the exceptions: their own algorithm, correctly
rounded (below).

Method (all: Cody-Waite range reduction with FMA, Horner with FMA):

- ``exp``: x = n ln2 + r, |r| <= ln2/2; exp(r) as a pair 1 + r + r^2/2 +
  r^3/6 + r^4 Q(r) (Q by Taylor to r^9 / r^16), each of the first terms
  added by Fast2Sum with r^2's and r^3's rounding errors (fma) and r's own
  rounding r_lo (ln2 in three parts) carried, so that every rounding but the
  last is at the scale of r^4/24; then 2^n applied so that the pair rounds
  once: in two factors (overflow gives inf), and a subnormal result formed
  2^64 (2^600) larger and rounded at its quantum scaled alike.  0.5005 /
  0.5005 ulp on the dense grid (before this correction step 0.81 / 0.80;
  torch 0.54 / 0.52).
- ``expm1``: the same pair, started at 0 for n = 0 (expm1(r) itself, exact
  near 0) and at 1 otherwise; 2^n e - 1 by TwoSum, one rounding.  0.5005 /
  0.5005 (before: 1.23 / 1.58, the polynomial and 2^n*expm1(r) + (2^n - 1)
  in one fma; torch 0.99 / 0.96).
- exp, expm1 and log without their correction steps (``vexp_uncorrected``
  etc.) stay: the sweeps' random stream is defined with them
  (``gradkern.stream.dists``), bit for bit.
- ``log1p``: m = 1 + u, split m = 2^e (1 + f) with 1 + f in [sqrt(1/2), sqrt(2));
  log(1 + f) = f - (f^2/2 - s (f^2/2 + R(s^2))), s = f/(2 + f), R the atanh
  series to s^9 / s^21 (|s| <= 0.1716) -- fdlibm's arrangement, in which f is
  exact and only small corrections round; the rounding of 1 + u is corrected
  by (u - (m - 1))/m.
- ``log`` (log1p's core with m = x), float64: with a correction step, f^2/2's
  rounding carried by fma and f - f^2/2 and e ln2_hi + (f - f^2/2) by TwoSum,
  so that it rounds once: 0.53 ulp on the dense grid (before 0.75, torch
  0.69).  float32 log keeps the core without it: 0.73 (torch 0.83), and the
  sweeps' float32 statistics their bits.
- ``tanh``, float64: |x| < 0.625: x + x^3 P(x^2), P a degree-11 least-squares
  fit on Chebyshev nodes (relative error 1.6e-18 against mpmath); otherwise
  N/(N + 2) with N = expm1(2|x|) as an unrounded pair (expm1's), the sum and
  the quotient carried with their rounding errors and rounded once (1 - 2/(e
  + 2) from a rounded e was 1.21 ulp at 0.625, where 1 - q cancels); 1 beyond
  20, where tanh rounds to 1.  0.69 ulp on the dense grid, the polynomial's
  (torch 0.73).
- ``tanh``, float32: correctly rounded, in float32 arithmetic only.  With
  a = |x| (clamped at 9.125; tanh rounds to 1 from 9.0109), tanh(a) = N/D,
  N = expm1(2a), D = N + 2, each a float32 pair hi + lo (~48 bits): 2a =
  k ln2 + r exactly by one fma; expm1(r) by Horner steps on pairs down from
  1/6! (Fast2Sum, fma product errors) below a degree-4 float32 tail (2^-49);
  N, D = 2^k (1 + expm1(r)) -+ 1 by Fast2Sum, N = expm1(r) itself for k = 0;
  N times 1/D as a pair, and q + q_lo rounded once.  Checked on every float32
  input (``benchmarks/vecmath_accuracy.py``): 4 positive inputs, where tanh
  lies within 1e-7 ulp of a midpoint, came out one ulp off and are corrected
  from a table (``_TANH32_HARD``); all 2^32 are then correctly rounded.  It
  costs 2.6x the 1.33-ulp float32 version it replaced (0.42 -> 1.06 ns per
  element in a loop, AVX-512; chains: ``benchmarks/results/vecmath-accuracy.json``).
- ``sigmoid``, float64: 1/(1 + exp(-x)), torch's formula (below x = -709.78
  exp(-x) overflows and it returns 0, as torch does).
- ``sigmoid``, float32: correctly rounded, in float32 arithmetic only, from
  tanh's pairs.  1/(1 + exp(-x)) rounds 1 + e first (0.51 ulp: at x =
  0x1.12d3dp+1 it rounded the wrong way, and Sigmoid's derivative (1 - y)*y
  magnified that to 6.7 ulp).  With a = |x| clamped at 104 (e^-a < 2^-150
  rounds to 0): E = e^-a = 2^k (1 + expm1(r)), -a = k ln2 + r + r_lo with ln2
  in three parts (k reaches -150); N/D with D = 1 + E, N = 1 for x >= 0 and E
  below (no overflow), N scaled by 2^64 so no pair goes subnormal; q + q_lo
  rounded once, for a subnormal result at its quantum (2^-126 added first,
  scaled), then 2^-64 exactly.  |x| < 2^-7: 1/2 + v, v = x/4 + x^3 (-1/48 +
  x^2/480) rounded to odd: 1/2 + x/4 is a midpoint exactly for x an odd
  multiple of 2^-23, and the x^3 term, below a pair's reach there, decides.
  Checked on every float32 input (``benchmarks/vecmath_accuracy.py``): 2
  inputs, within 2e-8 ulp of a midpoint, came out one ulp off and are
  corrected from a table (``_SIGMOID32_HARD``); all 2^32 are then correctly
  rounded (the old form: 171,143,074 not).  It costs 5x the old form in a
  loop (0.24 -> 1.23 ns per element, AVX-512) and Sigmoid's float32 chain
  (depth 3) 1.80 -> 3.32 ns per sample (``vecmath-accuracy.json``).

Measured maximum errors against a higher-precision reference (float64 for
float32, long double for float64), over 1.5e6 uniform points per function in
the ranges that matter plus the special values (``tests/test_vecmath.py``
re-measures them on every run and asserts ``MAX_ULP``; CR: correctly rounded,
every input checked; against torch on a dense grid:
``benchmarks/results/vecmath-accuracy.json``):

=======  =============  =============
func     float32 (ulp)  float64 (ulp)
=======  =============  =============
exp      0.50           0.50
expm1    0.50           0.50
log1p    0.83           0.79
tanh     0.50 (CR)      0.69
sigmoid  0.50 (CR)      2.14
log      0.81           0.53
cossin   --             1.00
=======  =============  =============

(exp, expm1: 0.5005 on the dense grid, 0.51 asserted; float64 tanh and log: the grid.)

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
log1p(inf) = inf, log1p(-1) = -inf, log1p(u < -1) = NaN; tanh(+-inf) = +-1;
sigmoid(+inf) = 1, sigmoid(-inf) = 0, sigmoid(-0.0) = 0.5.
"""
import math
from fractions import Fraction
from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.core.extending import intrinsic, overload

from .intrinsics import bits_float, float_bits, fma

__all__ = ["vexp", "vexpm1", "vlog1p", "vtanh", "vsigmoid", "vlog", "vcossin_turns", "MAX_ULP",
           "vexp_uncorrected", "vexpm1_uncorrected", "vlog_uncorrected"]

#: maximum error in ulp, asserted by tests/test_vecmath.py
#: (float32 tanh and sigmoid are correctly rounded: every float32 input was checked;
#: exp and expm1 round once after a pair: 0.5005 measured; float64 sigmoid is
#: torch's 1/(1 + exp(-x)), 2.14 measured)
MAX_ULP = {"exp": 0.51, "expm1": 0.51, "log1p": 1.0, "tanh/float32": 0.5, "tanh/float64": 0.75,
           "log/float32": 1.0, "log/float64": 0.65, "cossin": 1.5, "sigmoid/float32": 0.5,
           "sigmoid/float64": 2.5}

f32, f64, i32, i64 = np.float32, np.float64, np.int32, np.int64


def _jit_only(name, doc):
    """The Python function numba code calls as ``name`` (``overload`` below
    gives it an implementation per dtype); called from Python it raises."""
    def stub(x):
        raise NotImplementedError("gradkern._numba.vecmath functions run inside numba code only")

    stub.__name__ = stub.__qualname__ = name
    stub.__doc__ = doc
    return stub


vexp = _jit_only("vexp", "exp(x) (jit-only: call from numba code).")
vexpm1 = _jit_only("vexpm1", "expm1(x) (jit-only).")
vlog1p = _jit_only("vlog1p", "log1p(x) (jit-only).")
vtanh = _jit_only("vtanh", "tanh(x) (jit-only).")
vsigmoid = _jit_only("vsigmoid", "1/(1 + exp(-x)) (jit-only).")
vlog = _jit_only("vlog", "log(x) (jit-only): the sweeps' Box-Muller draw and log10|g|.")
vexp_uncorrected = _jit_only(
    "vexp_uncorrected", "exp(x) without vexp's correction step (jit-only): the algorithm "
    "the sweeps' random stream is defined with (0.81 / 0.80 ulp).")
vexpm1_uncorrected = _jit_only(
    "vexpm1_uncorrected",
    "expm1(x) without vexpm1's correction step (jit-only), as vexp_uncorrected.")
vlog_uncorrected = _jit_only(
    "vlog_uncorrected",
    "log(x) without vlog's float64 correction step (jit-only), as vexp_uncorrected.")
vcossin_turns = _jit_only(
    "vcossin_turns", "(cos(2 pi x), sin(2 pi x)), float64 only, for |x| < 2**50 (jit-only).")


# ----------------------------------------------------------------------------- per-dtype data
class _Dtype(NamedTuple):
    """Everything a function's float32 and float64 versions differ in: data only.

    A factory below reads the fields into local variables of the closure it
    returns; Numba freezes those as compile-time constants, so each table
    compiles to its own straight-line code.
    """

    ftype: type  # constants are written ftype(c): a bare 1.0 would promote float32 code
    itype: type  # the integer of the same width: IEEE bits and exponents
    mant: int  # mantissa bits: the shift from an exponent to its place in the bits
    bias: int  # exponent bias
    ln2_hi: float  # Cody-Waite split of ln2
    ln2_lo: float
    ln2_lo2: float  # ln2 - ln2_hi - ln2_lo, rounded: the correctly rounding exp's third part
    log2e: float
    round: float  # adding and subtracting this rounds to the nearest integer
    exp_lo: float  # exp's clamp
    exp_hi: float
    exp_taylor: tuple  # exp(r): 1/k!, k = 0, 1, ...
    exp_c3: tuple  # the correction step's 1/3! as a pair (hi, lo) of the dtype
    exp_taylor4: tuple  # and its (exp(r) - 1 - r - r^2/2 - r^3/6)/r^4: 1/k!, k = 4, ...
    sub_shift: int  # below 2^-sub_shift, exp's result is scaled by 2^sub_shift to round once
    expm1_lo: float  # expm1's clamp
    expm1_hi: float
    expm1_taylor: tuple  # (expm1(r) - r)/r^2: 1/k!, k = 2, 3, ...
    log_split: int  # the bits of sqrt(1/2): where log's exponent e steps
    log_atanh: tuple  # 2/(2k + 1), k = 1, 2, ...: log(1 + f) = 2 atanh(s)
    tiny: float  # smallest normal
    subnormal_exp: float  # a subnormal is its bits times 2^-subnormal_exp
    tanh_poly: tuple  # P in tanh(x) = x + x^3 P(x^2) for |x| < 0.625
    tanh_one: float  # from here on tanh rounds to 1


def _taylor(ftype, k0, k1):
    """The exp Taylor coefficients 1/k!, k = k0..k1, rounded to ftype."""
    return tuple(ftype(1.0 / math.factorial(k)) for k in range(k0, k1 + 1))


def _atanh_series(ftype, k1):
    """2/(2k + 1), k = 1..k1, rounded to ftype."""
    return tuple(ftype(2.0 / (2 * k + 1)) for k in range(1, k1 + 1))


_F32 = _Dtype(
    ftype=f32, itype=i32, mant=23, bias=127,
    # ln2 split for Cody-Waite: the high part has trailing zero bits, so n*ln2_hi
    # is exact for the |n| that occur (<= 150 resp. 1077)
    ln2_hi=f32(0.693359375), ln2_lo=f32(-2.12194440e-4), ln2_lo2=f32(1.6465949697480609e-12),
    log2e=f32(1.4426950408889634),
    round=f32(12582912.0),  # 1.5*2^23
    # clamp keeps n in [-150, 128] (NaN -> lower bound; restored at the end)
    exp_lo=f32(-104.0), exp_hi=f32(89.0), exp_taylor=_taylor(f32, 0, 7),
    # to r^9: 0.347^9/9! = 2^-31, far below the pair's resolution
    exp_c3=(f32(0.1666666716337204), f32(-4.967053879312289e-09)),
    exp_taylor4=_taylor(f32, 4, 9), sub_shift=64,
    # below -30 expm1 rounds to -1; above 89 it overflows
    expm1_lo=f32(-30.0), expm1_hi=f32(89.0), expm1_taylor=_taylor(f32, 2, 8),
    log_split=0x3F3504F3, log_atanh=_atanh_series(f32, 4),
    tiny=f32(1.1754943508222875e-38), subnormal_exp=f32(149.0),
    # float32 tanh is correctly rounded by its own algorithm (_tanh_f32), which
    # needs neither field
    tanh_poly=(), tanh_one=None,
)

_F64 = _Dtype(
    ftype=f64, itype=i64, mant=52, bias=1023,
    ln2_hi=f64(6.93147180369123816490e-01), ln2_lo=f64(1.90821492927058770002e-10),
    ln2_lo2=f64(1.1612227229362532e-26),
    log2e=f64(1.4426950408889634),
    round=f64(6755399441055744.0),  # 1.5*2^52
    exp_lo=f64(-746.0), exp_hi=f64(710.0), exp_taylor=_taylor(f64, 0, 13),
    # to r^16: 0.347^16/16! = 2^-68
    exp_c3=(f64(0.16666666666666666), f64(9.25185853854297e-18)),
    exp_taylor4=_taylor(f64, 4, 16), sub_shift=600,
    expm1_lo=f64(-40.0), expm1_hi=f64(710.0), expm1_taylor=_taylor(f64, 2, 14),
    log_split=0x3FE6A09E667F3BCD, log_atanh=_atanh_series(f64, 10),
    tiny=f64(2.2250738585072014e-308), subnormal_exp=f64(1074.0),
    tanh_poly=tuple(f64(c) for c in (
        -0.3333333333333333, 0.1333333333333305, -0.05396825396790577, 0.02186948851935735,
        -0.00886323511036136, 0.003592121835933438, -0.0014557760415549023,
        0.000589663660532036, -0.00023759985285443604, 9.258867998788127e-05,
        -3.121994989253582e-05, 6.493921966644326e-06)),
    tanh_one=f64(20.0),
)


# IEEE division (x/0 -> inf), not Python's ZeroDivisionError: a checked
# division is a branch that stops vectorisation
# forceinline (LLVM alwaysinline): a call left in a loop keeps it scalar
_JIT = {"error_model": "numpy", "forceinline": True}


@intrinsic
def _horner(typingctx, x, c):
    """c[0] + x (c[1] + x (... + x c[n-1])) for a tuple c of n >= 2 floats of
    x's type: n - 1 fmas, fma(x, c[n-1], c[n-2]) first, in one straight line
    emitted where it is called.

    Not a loop over the tuple: even one LLVM unrolls fully reached NVVM as a
    loop, and NVVM then left the kernel's layer loop un-unrolled (SELU's
    float32 kernel: 235 PTX instructions instead of the twins' 495); nor an
    ``overload`` recursing on the tuple's length: inlined at Numba IR level it
    took 400 s to compile float64 exp.
    """
    if not (isinstance(c, types.UniTuple) and c.dtype == x and c.count >= 2):
        return None

    def codegen(context, builder, signature, args):
        xv, cv = args
        ty = context.get_value_type(x)
        fma_fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty] * 3))
        coef = [builder.extract_value(cv, i) for i in range(c.count)]
        p = builder.call(fma_fn, [xv, coef[-1], coef[-2]])
        for ci in reversed(coef[:-2]):
            p = builder.call(fma_fn, [p, xv, ci])
        return p

    return x(x, c), codegen


@numba.njit(inline="always", **_JIT)
def _horner_loop(x, c):
    """_horner's value and operations as a loop over the tuple, for tanh and
    cossin_turns, which the twins wrote so.  NVVM unrolls the kernel around a
    loop differently (Tanh's float32 chain kernel: 529 PTX instructions, 850
    with _horner); kept so the GPU code stays the code that was measured.
    Inlined at Numba IR level, as the twins' loop was written in place: as a
    function of its own (LLVM-inlined) it reordered the x86 code."""
    n = len(c)
    p = fma(x, c[n - 1], c[n - 2])
    for i in range(n - 3, -1, -1):  # unrolled by LLVM: a constant trip count
        p = fma(p, x, c[i])
    return p


# ----------------------------------------------------------------------------- the functions
def _exp_pair(d):
    """exp's and expm1's correction step for the dtype described by ``d``:
    ``pair(nf, r_hi, c)`` is (hi, lo) with hi + lo = c - 1 + exp(x - n ln2)
    (r_hi = x - n ln2_hi, exact; x - n ln2 = r + r_lo), to a few
    2^-60 of the larger of 1 and the result; c = 1 (exp) or 0 (expm1 for n = 0,
    where the pair then starts at r and keeps r's bits)."""
    ln2_lo, ln2_lo2, taylor4 = d.ln2_lo, d.ln2_lo2, d.exp_taylor4
    c3_hi, c3_lo = d.exp_c3
    half = d.ftype(0.5)

    @numba.njit(**_JIT)
    def pair(nf, r_hi, c):
        # x - n ln2 = r + r_lo: n ln2_lo as an exact product pair, its sum with
        # r_hi by TwoSum (r_hi and r can differ in sign: float32's n ln2_lo
        # reaches 0.03; r_hi - r was 0.013 ulp off at x = -67.25)
        p = nf * ln2_lo
        r = r_hi - p
        bb = r - r_hi
        r_lo = ((r_hi - (r - bb)) + (-p - bb)) - (fma(nf, ln2_lo, -p) + nf * ln2_lo2)
        # exp(r + r_lo) = 1 + r + r^2/2 + r^3/6 + r^4 Q(r) + r_lo e^r: the first
        # four terms added into a pair (Fast2Sum each: c + r exceeds the rest),
        # r^2 and r^3/6 with their rounding errors, so that every rounding left
        # is at the scale of r^4/24 (< 6e-4) or below
        r2 = r * r
        r2_lo = fma(r, r, -r2)
        r3 = r2 * r
        r3_lo = fma(r2, r, -r3) + r2_lo * r
        h2 = r2 * half
        t3 = r3 * c3_hi
        e_hi = c + r
        e_lo = (c - e_hi) + r
        e2 = e_hi + h2
        e_lo = e_lo + ((e_hi - e2) + h2)
        e3 = e2 + t3
        e_lo = e_lo + ((e2 - e3) + t3)
        small = fma(r3, fma(r, _horner(r, taylor4), c3_lo),
                    fma(r3_lo, c3_hi, fma(r3, c3_hi, -t3)))
        # r_lo e^r: e3 is e^r to 6e-4 (1 + r was 0.06 off: 0.015 ulp measured);
        # r_lo = 0 where c = 0 (n = 0)
        return e3, e_lo + (small + fma(r_lo, e3, r2_lo * half))

    return pair


def _exp(d, correct=True):
    """exp for the dtype described by ``d`` (a :class:`_Dtype`).

    ``correct=False``: the algorithm the sweeps' random stream is defined with
    (``gradkern.stream.dists``): p = exp(r) by Horner, scaled by 2^n (0.81 ulp
    float32, 0.80 float64 on the dense grid).  ``correct=True`` (``vexp``)
    adds the correction step (:func:`_exp_pair`): exp(r) as a pair whose only
    rounding at the result's scale is the last, scaled by 2^n so that it
    rounds once, a subnormal result at its own quantum (0.5005 / 0.5005 ulp).
    """
    F, I, mant, bias = d.ftype, d.itype, d.mant, d.bias
    lo, hi, log2e, rnd, ln2_hi, ln2_lo, taylor = (
        d.exp_lo, d.exp_hi, d.log2e, d.round, d.ln2_hi, d.ln2_lo, d.exp_taylor)
    one, zero = F(1.0), F(0.0)
    pair = _exp_pair(d)
    # results below 2^-shift are formed 2^shift larger and rounded at the
    # subnormal quantum scaled alike (2^(-bias+1) added first), then scaled back
    # exactly; above, 2^n is split in two halves (2^128 itself overflows float32)
    shift = I(d.sub_shift)
    sub_bias = F(2.0 ** (d.sub_shift - (d.bias - 1)))

    def exp(x):
        xc = x if x > lo else lo
        xc = xc if xc < hi else hi
        nf = (xc * log2e + rnd) - rnd
        r_hi = fma(-nf, ln2_hi, xc)  # exact: n*ln2_hi has trailing zero bits
        r = fma(-nf, ln2_lo, r_hi)
        # numba types int32 + int32 as int64: every step is cast back to I,
        # or bits_float would build a float64 and promote a float32 function
        n = I(nf)
        if not correct:
            p = _horner(r, taylor)
            n1 = I(n >> 1)
            s1 = bits_float(I((n1 + bias) << mant))
            s2 = bits_float(I((n - n1 + bias) << mant))
            res = (p * s1) * s2
            return res if x == x else x
        e_hi, e_lo = pair(nf, r_hi, one)
        low = n < -shift
        nb = -shift if low else I(n - I(n >> 1))
        sa = bits_float(I((I(n - nb) + bias) << mant))
        sb = bits_float(I((nb + bias) << mant))
        v_hi = e_hi * sa
        v_lo = e_lo * sa
        b = sub_bias if low & (v_hi < sub_bias) else zero
        t = b + v_hi
        t_lo = ((b - t) + v_hi) + v_lo
        res = ((t + t_lo) - b) * sb
        return res if x == x else x

    return exp


def _expm1_reduction(d):
    """``reduce(x)`` = (nf, r_hi, r, s, t) for expm1 in the dtype described
    by ``d``: x clamped to expm1's range, x = n ln2 + r with n = nf (r_hi
    with ln2_hi alone), and 2^n = s t: s = 2^min(n, bias), t = 2^(n - that)
    (k <= 1) for the top of the range, where 2^128 overflows although expm1
    does not yet; there the -1 is far below an ulp, so (2^127 e + 2^127 - 1)
    * 2 is the same float."""
    F, I, mant, bias = d.ftype, d.itype, d.mant, d.bias
    lo, hi, log2e, rnd, ln2_hi, ln2_lo = (
        d.expm1_lo, d.expm1_hi, d.log2e, d.round, d.ln2_hi, d.ln2_lo)

    @numba.njit(**_JIT)
    def reduce(x):
        xc = x if x > lo else lo
        xc = xc if xc < hi else hi
        nf = (xc * log2e + rnd) - rnd
        r_hi = fma(-nf, ln2_hi, xc)
        r = fma(-nf, ln2_lo, r_hi)
        n = I(nf)
        nc = I(n if n < bias else bias)
        s = bits_float(I((nc + bias) << mant))
        t = bits_float(I((n - nc + bias) << mant))
        return nf, r_hi, r, s, t

    return reduce


def _expm1_parts(d):
    """``parts(x)`` = (hi, lo, t) with expm1(x) = (hi + lo) t for the dtype
    described by ``d``, hi the rounded sum and lo its rounding error: exp's correction step
    (:func:`_exp_pair`), the pair started at 0 for n = 0 (expm1(r) itself,
    exact near 0) and at 1 otherwise, then 2^n e - 1 by TwoSum; t = 2 only at
    the top of the range (:func:`_expm1_reduction`)."""
    F = d.ftype
    one, zero = F(1.0), F(0.0)
    pair = _exp_pair(d)
    reduce = _expm1_reduction(d)

    @numba.njit(**_JIT)
    def parts(x):
        nf, r_hi, _, s, t = reduce(x)
        start = zero if nf == zero else one
        e_hi, e_lo = pair(nf, r_hi, start)
        # 2^n (e_hi + e_lo) - start: 2^n e_hi exact, its sum with -start by TwoSum
        v = s * e_hi
        w = v - start
        bb = w - v
        w_lo = ((v - (w - bb)) + (-start - bb)) + s * e_lo
        h = w + w_lo  # normalised (Fast2Sum): h is expm1 rounded, |l| <= ulp(h)/2
        return h, (w - h) + w_lo, t

    return parts


def _expm1(d, correct=True):
    """expm1 for the dtype described by ``d``.

    ``correct=False``: the stream's algorithm (``gradkern.stream.dists``):
    2^n expm1(r) + (2^n - 1) in one fma (1.23 ulp float32, 1.58 float64 on the
    dense grid).  ``correct=True`` (``vexpm1``): :func:`_expm1_parts` rounded
    once (0.5005 / 0.5005).
    """
    one = d.ftype(1.0)
    taylor = d.expm1_taylor
    parts = _expm1_parts(d)
    reduce = _expm1_reduction(d)

    def expm1(x):
        if not correct:
            _, _, r, s, t = reduce(x)
            q = _horner(r, taylor)
            e = fma(r * r, q, r)
            res = fma(s, e, s - one) * t
            return res if x == x else x
        w, w_lo, t = parts(x)
        res = (w + w_lo) * t
        return res if x == x else x

    return expm1


def _log_core(d, correct=False):
    """log(m) + c - eoff*ln2 for the dtype described by ``d``: fdlibm's
    arrangement, shared by log1p (c corrects the rounding of 1 + u) and log
    (c = 0).  ``correct=True`` adds the correction step: f^2/2's rounding
    carried by fma, f - f^2/2 and e ln2_hi + (f - f^2/2) each with their
    rounding errors, so that the result rounds once (float64 log on the dense
    grid: 0.75 -> 0.52 ulp; torch 0.69)."""
    F, I, mant, split, atanh = d.ftype, d.itype, d.mant, d.log_split, d.log_atanh
    ln2_hi, ln2_lo = d.ln2_hi, d.ln2_lo
    one, two, half = F(1.0), F(2.0), F(0.5)

    @numba.njit(**_JIT)
    def log_core(m, c, eoff):
        bits = float_bits(m)
        e = I((bits - split) >> mant)  # so that f lands in [sqrt(1/2), sqrt(2))
        f = bits_float(I(bits - (e << mant))) - one  # exact, in [-0.293, 0.414]
        # fdlibm's arrangement: log(1+f) = f - (hfsq - s*(hfsq + R)); f is exact and
        # only the small corrections round (measured 2.4 -> <= 1 ulp vs 2*atanh(s))
        s = f / (two + f)
        z = s * s
        R = _horner(z, atanh) * z
        hfsq = half * f * f
        ef = F(e) - eoff
        if not correct:
            return fma(ef, ln2_hi, f - (hfsq - fma(s, hfsq + R, fma(ef, ln2_lo, c))))
        corr = fma(s, hfsq + R, fma(ef, ln2_lo, c)) - fma(half * f, f, -hfsq)
        t = f - hfsq  # Fast2Sum: |f| >= f^2/2
        t_lo = ((f - t) - hfsq) + corr
        z = ef * ln2_hi  # exact: ln2_hi has trailing zero bits
        u = z + t  # TwoSum
        bb = u - z
        u_lo = (z - (u - bb)) + (t - bb)
        return u + (u_lo + t_lo)

    return log_core


def _log1p(d):
    """log1p for the dtype described by ``d``."""
    F = d.ftype
    core = _log_core(d)
    zero, one, minus_one, inf, nan = F(0.0), F(1.0), F(-1.0), F(np.inf), F(np.nan)

    def log1p(x):
        u = x
        m = one + u
        c = (u - (m - one)) / m  # the part of u that 1 + u rounded away
        res = core(m, c, zero)
        res = res if u < inf else u
        res = res if u != minus_one else -inf
        return res if u >= minus_one else nan + u * zero

    return log1p


def _log(d, correct=True):
    """log for the dtype described by ``d``: log1p's core with m = x (no
    rounded 1 + u to correct); ``correct``: the core's correction step."""
    F, tiny, sub_exp = d.ftype, d.tiny, d.subnormal_exp
    core = _log_core(d, correct)
    zero, inf, nan = F(0.0), F(np.inf), F(np.nan)

    def log(x):
        # a subnormal x is m * 2^-149 (2^-1074) with m its bits: converting m
        # (exact) is an integer operation, where x * 2^24 would take a microcode assist
        sub = x < tiny
        xs = F(float_bits(x)) if sub else x
        res = core(xs, zero, sub_exp if sub else zero)
        res = res if x < inf else x  # inf -> inf, NaN -> NaN
        res = res if x != zero else -inf
        return res if x >= zero else nan + x * zero

    return log


def _tanh(d):
    """tanh for the dtype described by ``d`` (float64: float32 has its own)."""
    F, P, saturated = d.ftype, d.tanh_poly, d.tanh_one
    zero, one, two, small_max = F(0.0), F(1.0), F(2.0), F(0.625)
    expm1_parts = _expm1_parts(d)

    def tanh(x):
        a = abs(x)
        x2 = x * x
        p = _horner_loop(x2, P)
        small = fma(x * x2, p, x)
        small = x if x == zero else small  # the fma would turn -0.0 into +0.0
        # N/D, N = expm1(2a) unrounded (hi + lo), D = N + 2 (Fast2Sum: N >=
        # expm1(1.25) > 2), q = N/D with its remainder: one rounding (1 - 2/(e + 2)
        # from a rounded e was 1.21 ulp at a = 0.625, where 1 - q cancels)
        n_hi, n_lo, _ = expm1_parts(two * (saturated if a > saturated else a))
        d_hi = n_hi + two
        d_lo = ((n_hi - d_hi) + two) + n_lo
        q = n_hi / d_hi
        big = q + (fma(-q, d_hi, n_hi) + fma(-q, d_lo, n_lo)) / d_hi
        big = one if a >= saturated else big
        big = big if a == a else a  # NaN stays NaN
        big = big if x >= zero else -big
        return small if a < small_max else big

    return tanh


# ----------------------------------------------------------------------------- float32 tanh
# Correctly rounded: every float32 input was checked (benchmarks/vecmath_accuracy.py).
# N/D = expm1(2a)/(expm1(2a) + 2) is carried as float32 pairs (hi + lo, ~48
# bits), so the one rounding at the end decides the result; float32 only, so
# the CUDA kernels keep no f64 instruction.
def _pair(v):
    """The Fraction ``v`` as a float32 pair: hi = v rounded, lo = v - hi rounded."""
    hi = f32(float(v))
    return hi, f32(float(v - Fraction(float(hi))))


_LN2 = Fraction("0.69314718055994530941723212145817656807550013436025525412068000949339")
#: ln2 = hi + lo; hi is a float32 in [1/2, 1), a multiple of 2^-24, so
#: fma(-k, hi, 2a) is exact (a multiple of 2^-25 below 1/2 in magnitude)
_TANH32_LN2 = _pair(_LN2)
#: 1/k!, k = 1..6, as float32 pairs (1 and 1/2 are exact: their lo is 0)
_TANH32_TAYLOR = tuple(_pair(Fraction(1, math.factorial(k))) for k in range(1, 7))
#: (expm1(r) - sum_{k<=6} r^k/k!) / r^7 on |r| <= 0.35: a degree-4 least-squares
#: fit on Chebyshev nodes weighted by r^7 (error of r^7 P(r): 2^-49 against
#: mpmath; the Taylor tail to r^12 it replaces: 2 fmas more)
_TANH32_TAIL = tuple(f32(c) for c in (
    1.9841270113829523e-04, 2.4801563995424658e-05, 2.755727564363042e-06,
    2.7601532792687067e-07, 2.5098874090190293e-08))
#: the positive inputs that the pair arithmetic rounds the wrong way, with the
#: correctly rounded result: tanh(x) lies within 1e-7 ulp of a midpoint there
#: (mpmath), closer than a float32 pair resolves.  Found by checking every
#: float32 (benchmarks/vecmath_accuracy.py); as CORE-MATH's exception lists.
_TANH32_HARD = tuple((f32(float.fromhex(x)), f32(float.fromhex(y))) for x, y in (
    ("0x1.86fbc4p-10", "0x1.86fbb2p-10"),
    ("0x1.916c0ap-8", "0x1.916ac2p-8"),
    ("0x1.9c696p-7", "0x1.9c63cep-7"),
    ("0x1.f860aap-5", "0x1.f7bdc2p-5")))


@numba.njit(inline="always", **_JIT)
def _pair_horner(ph, pl, r, c):
    """(ph + pl) * r + c as a float32 pair, for a float r and float c with
    |c| >= |(ph + pl) * r| (a Taylor series: each term is below the last):
    the product's rounding error is taken exactly by an fma and the sum's by
    Fast2Sum; pl's product and the errors are summed in float32."""
    prod = ph * r
    low = fma(pl, r, fma(ph, r, -prod))
    s = c + prod
    return s, ((c - s) + prod) + low


def _expm1_pair_f32():
    """expm1(r) for a float32 |r| <= 0.35 as a float32 pair (eh, el), ~2^-48
    relative: P in float32, the six Taylor steps as pairs."""
    (c1, _), (c2, _), (c3, c3l), (c4, c4l), (c5, c5l), (c6, c6l) = _TANH32_TAYLOR
    tail = _TANH32_TAIL

    @numba.njit(inline="always", **_JIT)
    def expm1_pair(r):
        p = _horner(r, tail)
        prod = p * r
        ph = c6 + prod
        pl = ((c6 - ph) + prod) + fma(p, r, -prod)
        ph, pl = _pair_horner(ph, pl + c6l, r, c5)
        ph, pl = _pair_horner(ph, pl + c5l, r, c4)
        ph, pl = _pair_horner(ph, pl + c4l, r, c3)
        ph, pl = _pair_horner(ph, pl + c3l, r, c2)
        ph, pl = _pair_horner(ph, pl, r, c1)
        eh = r * ph
        return eh, fma(r, pl, fma(r, ph, -eh))

    return expm1_pair


_expm1_pair = _expm1_pair_f32()


def _tanh_f32():
    """tanh for float32, correctly rounded (method: module docstring)."""
    one, zero, clamp = f32(1.0), f32(0.0), f32(9.125)
    I, log2e, rnd, bias, mant = _F32.itype, _F32.log2e, _F32.round, _F32.bias, _F32.mant
    ln2_hi, ln2_lo = _TANH32_LN2
    (x1, y1), (x2, y2), (x3, y3), (x4, y4) = _TANH32_HARD
    sign = i32(-2**31)

    def tanh(x):
        # a beyond 9.0109 rounds to 1; clamped at 9.125 (NaN too: restored at
        # the end), where 2a < 26.5 ln2 keeps 2^k and k*ln2_hi exact
        a = abs(x)
        a = a if a < clamp else clamp
        t = a + a
        kf = (t * log2e + rnd) - rnd
        r = fma(-kf, ln2_hi, t)  # exact, |r| <= 0.35; 2a = k ln2 + r + r_lo
        r_lo = -kf * ln2_lo  # |r_lo| < 2^-24
        # expm1(r) = r (1 + r (1/2 + ... r (1/6! + r P(r)))): P in float32, the
        # six Taylor steps as pairs (wrong roundings among the 1.3e8 positive
        # inputs 2^-14 .. 9.2 before the table below: 3; with pairs down to 1/5!
        # only, 10; to 1/4!, 389)
        eh, el = _expm1_pair(r)
        el = el + fma(r_lo, eh, r_lo)  # expm1(r + r_lo) = expm1(r) + r_lo e^r
        # E = e^(2a) = 2^k (1 + e); D = E + 1 and N = E - 1 by Fast2Sum (E >= 1);
        # for k = 0, N = e itself, where E - 1 would cancel the low bits
        n = I(kf)
        s2k = bits_float(I((n + bias) << mant))
        hi = one + eh
        lo = ((one - hi) + eh) + el
        e_hi = s2k * hi
        e_lo = s2k * lo
        d_hi = e_hi + one
        d_lo = ((e_hi - d_hi) + one) + e_lo
        n_hi = e_hi - one
        n_lo = ((e_hi - n_hi) - one) + e_lo
        n_hi = eh if kf == zero else n_hi
        n_lo = el if kf == zero else n_lo
        # N/D: 1/D as a pair (c + c_lo), times N; q_lo is below an ulp of q,
        # so q + q_lo is the one rounding of the quotient
        c = one / d_hi
        c_lo = fma(-c, d_lo, fma(-c, d_hi, one)) * c
        q = n_hi * c
        q_lo = fma(n_lo, c, fma(n_hi, c_lo, fma(n_hi, c, -q)))
        y = q + q_lo
        y = y1 if a == x1 else y
        y = y2 if a == x2 else y
        y = y3 if a == x3 else y
        y = y4 if a == x4 else y
        y = bits_float(I(float_bits(y) | (float_bits(x) & sign)))  # -0.0 stays -0.0
        return y if x == x else x

    return tanh


# ----------------------------------------------------------------------------- float32 sigmoid
# Correctly rounded like float32 tanh, from the same pairs.  1/(1 + exp(-x))
# rounds 1 + e first: 0.51 ulp at x = 0x1.12d3dp+1, where the exact sigmoid
# lies 0.011 ulp from a midpoint, and 1 - y in Sigmoid's derivative magnified
# that to 6.7 ulp.
#: ln2 - hi - lo, rounded: k up to 150 multiplies the pair's 2^-53 error
_SIGMOID32_LN2_LO2 = f32(float(_LN2 - Fraction(float(_TANH32_LN2[0]))
                               - Fraction(float(_TANH32_LN2[1]))))
#: the numerator is scaled by 2^64 so that no pair goes subnormal; the result
#: is rounded at 2^(64-149), float32's subnormal quantum scaled, and 2^-64 puts
#: it back exactly
_SIGMOID32_SCALE = 64
#: sigmoid(x) = 1/2 + x/4 + x^3 (S0 + S1 x^2) for |x| < 2^-7 (Taylor: -1/48,
#: 1/480; the x^7 term is below 2^-50 of the result there)
_SIGMOID32_SMALL = (f32(-1.0 / 48.0), f32(1.0 / 480.0))
#: the inputs that the pair arithmetic rounds the wrong way, with the
#: correctly rounded result: sigmoid(x) lies within 2e-8 ulp of a midpoint
#: there (mpmath: 1.7e-8, 6.1e-9).  Found by checking every float32
#: (benchmarks/vecmath_accuracy.py): the only two of 2^32.
_SIGMOID32_HARD = tuple((f32(float.fromhex(x)), f32(float.fromhex(y))) for x, y in (
    ("0x1.1bff5ep-2", "0x1.23461ep-1"),
    ("-0x1.32c9ap-1", "0x1.6b0962p-2")))


def _sigmoid_f32():
    """sigmoid for float32, correctly rounded (method: module docstring)."""
    one, zero, half, quarter = f32(1.0), f32(0.0), f32(0.5), f32(0.25)
    clamp, small_max = f32(104.0), f32(2.0**-7)
    I, log2e, rnd, bias, mant = _F32.itype, _F32.log2e, _F32.round, _F32.bias, _F32.mant
    ln2_hi, ln2_lo = _TANH32_LN2
    ln2_lo2 = _SIGMOID32_LN2_LO2
    K = _SIGMOID32_SCALE
    scale, unscale = f32(2.0**K), f32(2.0**-K)
    sub_bias = f32(2.0**(K - 126))  # 2^-126 scaled: below it the quantum is 2^(K-149)
    kd_min = I(-100)
    s3, s5 = _SIGMOID32_SMALL
    i_one, i_zero = I(1), I(0)
    (hard1, hard1_y), (hard2, hard2_y) = _SIGMOID32_HARD

    def sigmoid(x):
        # ---- |x| >= 2^-7: N/D, D = 1 + E, E = e^-a = 2^k (1 + expm1(r)), N = 1
        # for x >= 0 and E for x < 0 (no overflow: E <= 1).  a is clamped at 104
        # (NaN too: restored at the end), where e^-a < 2^-150 rounds to 0; k >= -150
        a = abs(x)
        a = a if a < clamp else clamp
        t = -a
        kf = (t * log2e + rnd) - rnd
        # -a = k ln2 + r + r_lo: k*hi exactly by the fma, k*lo as an exact
        # product pair, then TwoSum (r can be smaller than k*lo)
        rh = fma(-kf, ln2_hi, t)
        p = kf * ln2_lo
        pe = fma(kf, ln2_lo, -p)
        r = rh - p
        bb = r - rh
        r_lo = ((rh - (r - bb)) + (-p - bb)) - (pe + kf * ln2_lo2)
        eh, el = _expm1_pair(r)
        el = el + fma(r_lo, eh, r_lo)
        hi = one + eh
        lo = ((one - hi) + eh) + el
        n = I(kf)
        # D: below 2^-100, E is far below D's low part; k clamped there keeps
        # 2^k a normal float32
        kd = n if n > kd_min else kd_min
        sd = bits_float(I((kd + bias) << mant))
        e_hi = sd * hi
        e_lo = sd * lo
        d_hi = one + e_hi
        d_lo = ((one - d_hi) + e_hi) + e_lo
        sn = bits_float(I((n + K + bias) << mant))
        neg = x < zero
        n_hi = sn * hi if neg else scale
        n_lo = sn * lo if neg else zero
        c = one / d_hi
        c_lo = fma(-c, d_lo, fma(-c, d_hi, one)) * c
        q = n_hi * c
        q_lo = fma(n_lo, c, fma(n_hi, c_lo, fma(n_hi, c, -q)))
        # one rounding of q + q_lo; for a subnormal result at its quantum:
        # adding 2^-126 (scaled) first puts the rounding there
        b = sub_bias if q < sub_bias else zero
        s = b + q
        se = (b - s) + q
        big = ((s + (se + q_lo)) - b) * unscale
        # ---- |x| < 2^-7: 1/2 + v, v = x/4 + x^3 S(x^2) rounded to odd (|v| <
        # 2^-9: its ulp is at most 2^-33, 8 bits below the result's 2^-25, and
        # rounding to odd needs 2): 1/2 + x/4 is a midpoint exactly for x an
        # odd multiple of 2^-23 (2^-24 below 0), and the x^3 term, lost in a
        # pair's low part, decides it
        x4 = x * quarter
        x2 = x * x
        cub = (x * x2) * fma(x2, s5, s3)
        v = x4 + cub
        ve = (x4 - v) + cub
        vb = float_bits(v)
        step = i_one if (ve > zero) == (v > zero) else -i_one
        step = step if ((vb & i_one) == i_zero) & (ve != zero) else i_zero
        small = half + bits_float(I(vb + step))
        y = small if a < small_max else big
        y = hard1_y if x == hard1 else y
        y = hard2_y if x == hard2 else y
        return y if x == x else x

    return sigmoid


def _sigmoid(d):
    """sigmoid for the dtype described by ``d``: 1/(1 + exp(-x)), torch's
    formula (float64: 2.14 ulp measured)."""
    one = d.ftype(1.0)

    def sigmoid(x):
        return one / (one + vexp(-x))

    return sigmoid


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


def _cossin_turns(d):
    """(cos(2 pi x), sin(2 pi x)) for the dtype described by ``d``; the
    coefficients above are float64's, the only dtype that needs it."""
    F, I, rnd = d.ftype, d.itype, d.round
    four, pio2_hi, pio2_lo, sin_c, cos_c = F(4.0), F(_PIO2_HI), F(_PIO2_LO), _SIN_C, _COS_C
    zero, one, two = I(0), I(1), I(2)

    def cossin_turns(x):
        # quarter turns: v = (q + r) / 4 with q an integer and |r| <= 1/2; 4v and
        # 4v - q are exact, so the reduction adds no error at all
        v4 = x * four
        q = (v4 + rnd) - rnd
        r = v4 - q
        r2 = r * r
        ps = _horner_loop(r2, sin_c)
        s = fma(r, pio2_hi, fma(r, pio2_lo, (r * r2) * ps))
        c = _horner_loop(r2, cos_c)
        iq = I(q)
        # quadrant iq (mod 4) turns (c, s) by iq quarter turns: odd ones swap the
        # pair, quadrants 1, 2 negate the cosine and 2, 3 the sine
        odd = (iq & one) != zero
        cc = s if odd else c
        ss = c if odd else s
        cc = -cc if ((iq + one) & two) != zero else cc
        ss = -ss if (iq & two) != zero else ss
        return cc, ss

    return cossin_turns


# ----------------------------------------------------------------------------- by type
def _per_dtype(make):
    """``make``'s float32 and float64 versions, keyed by Numba type.  Where a
    dtype needs another algorithm, the dict names that function instead, e.g.
    ``{types.float32: _tanh32, types.float64: _tanh(_F64)}``."""
    return {types.float32: make(_F32), types.float64: make(_F64)}


def _implement(stub, impls):
    """Compile ``stub(x)`` to ``impls[numba type of x]`` (any other type: no match)."""

    def chooser(x):
        return impls.get(x)

    overload(stub, target="generic", jit_options=_JIT)(chooser)


_implement(vexp, _per_dtype(_exp))
_implement(vexpm1, _per_dtype(_expm1))
_implement(vlog1p, _per_dtype(_log1p))
_implement(vtanh, {types.float32: _tanh_f32(), types.float64: _tanh(_F64)})
_implement(vsigmoid, {types.float32: _sigmoid_f32(), types.float64: _sigmoid(_F64)})
# float32 log keeps the uncorrected core: 0.73 ulp, under torch's 0.83 already,
# and the sweeps' float32 log10|g| statistics stay what they were
_implement(vlog, {types.float32: _log(_F32, correct=False), types.float64: _log(_F64)})
# the algorithms before the correction steps, as the random stream of the
# sweeps was defined with them (gradkern.stream.dists binds these)
_implement(vexp_uncorrected, _per_dtype(lambda d: _exp(d, correct=False)))
_implement(vexpm1_uncorrected, _per_dtype(lambda d: _expm1(d, correct=False)))
_implement(vlog_uncorrected, _per_dtype(lambda d: _log(d, correct=False)))
_implement(vcossin_turns, {types.float64: _cossin_turns(_F64)})


# ============================================================================= erf
# erf, for GELU(approximate="none").  A section of its own (constants, table,
# function), appended here so that the functions above stay as they are.
#
# Method: |x| is split into regions, each with its own constants; every
# constant is picked per element by a chain of selects on |x| (no branch, no
# table load), so a loop still vectorises and the same code compiles for CUDA:
#
# - region 0, |x| < 0.5:  erf(x) = a*k + a*s*Q(s), s = a^2, k = 2/sqrt(pi);
# - region r >= 1, around a centre a0: erf(a0 + t) = E + c*t + t^2*Q(t),
#   t = a - a0 exact (Sterbenz: every region lies within [a0/2, 2*a0]),
#   E = erf(a0) and c = erf'(a0);
# - from ``one`` on (3.919206 / 5.921587) erf rounds to 1.
#
# The leading part is formed as a double-length number: E and c (k) are each a
# hi + lo pair, the product u*c_hi and its rounding error (an fma) and the sum
# E_hi + u*c_hi and its error (Fast2Sum: |E_hi| >= |u*c_hi| in every region)
# are kept apart; the rounding of a*a and of u*v goes into the small part too.
# Only the last addition rounds at the scale of the result: the error is 0.5
# ulp plus what the small part carries (< 0.15 ulp measured).  Q: Chebyshev
# interpolants (mpmath.chebyfit, 60 digits) of degree 8 (float32) and 17
# (float64), truncation error below 4e-9 resp. 1.5e-17 of Q, i.e. far below an
# ulp of erf after the factor t^2.
#
# Measured maximum error (``tests/test_erf.py`` re-measures and asserts
# ERF_MAX_ULP), against mpmath (float64) and scipy's float64 erf (float32),
# next to torch 2.13's own ``torch.erf`` (MKL VML) on the same points:
#
#   ======== ================================ ======== ==========
#   dtype    points                           verf     torch.erf
#   ======== ================================ ======== ==========
#   float32  5.0e6: [-6, 6] step 3e-6, and    0.637    0.729
#            1e6 log-spaced in [1e-30, 6]
#   float32  1.8e6: [-6, 6] step 2^-17, and   0.643    0.715
#            2e5 log-spaced in [1e-30, 1]
#            (tests/test_erf.py)
#   float64  2.6e5 random in [-6.5, 6.5],     0.623    0.718
#            [0.4, 1.6], [-1, 1], 1e-300..1
#   ======== ================================ ======== ==========
#
# ERF_MAX_ULP (0.7) leaves room for other points; the tests also hold verf to
# torch.erf's worst error on their points.
#
# (an ulp of the correctly rounded result; correct rounding is 0.5).  The
# vectorised erf inside torch's own float32 GELU kernel is a 1.5e-7-absolute
# Abramowitz-Stegun formula, and oneDNN's, which computes float32 GELU, is of
# the same kind; scipy's float64 erf measured 2.8 ulp on the float64 points.
# Special values: erf(+-0) = +-0, erf(+-inf) = +-1, erf(NaN) = NaN.

__all__ += ["verf", "ERF_MAX_ULP"]

#: maximum error of verf in ulp, asserted by tests/test_erf.py
ERF_MAX_ULP = {"float32": 0.7, "float64": 0.7}


verf = _jit_only("verf", "erf(x) (jit-only).")


class _ErfTable(NamedTuple):
    """verf's constants for one dtype; region r covers bounds[r-1] <= |x| < bounds[r]."""

    ftype: type
    itype: type
    bounds: tuple  # ascending region limits (region 0 starts at 0)
    center: tuple  # a0 per region (region 0: 0, unused)
    erf_hi: tuple  # erf(a0) = erf_hi + erf_lo
    erf_lo: tuple
    slope_hi: tuple  # erf'(a0) = slope_hi + slope_lo (region 0: 2/sqrt(pi))
    slope_lo: tuple
    q: tuple  # Q's coefficients, lowest order first, each a tuple over the regions
    one: float  # from here on erf rounds to 1


def _typed(ftype, values):
    return tuple(ftype(v) for v in values)


# Generated (mpmath, 60 digits) by the recipe above: region 0 fits
# Q(s) = (erf(sqrt s)/sqrt s - k)/s on [0, 0.25]; region r fits
# Q(t) = (erf(a0 + t) - erf(a0) - erf'(a0) t)/t^2 on its interval.
_ERF_F32 = _ErfTable(
    ftype=f32, itype=i32,
    bounds=_typed(f32, (5e-01, 1.125e+00, 2.375e+00)),
    center=_typed(f32, (0.0, 8.125e-01, 1.75e+00, 3.125e+00)),
    erf_hi=_typed(f32, (0e+00, 7.4946404e-01, 9.866717e-01, 9.999901e-01)),
    erf_lo=_typed(f32, (0e+00, -9.447818e-09, -1.4953303e-08, -2.3635924e-09)),
    slope_hi=_typed(f32, (1.1283792e+00, 5.8311313e-01, 5.2774996e-02, 6.4758686e-05)),
    slope_lo=_typed(f32, (-5.8635383e-08, 2.5868964e-08, 3.6473594e-10, -2.5320063e-12)),
    q=(
        _typed(f32, (-3.7612638e-01, -4.7377944e-01, -9.235624e-02, -2.0237149e-04)),
        _typed(f32, (1.1283792e-01, 6.2259477e-02, 9.01573e-02, 4.0004708e-04)),
        _typed(f32, (-2.6866172e-02, 1.3263357e-01, -4.8102263e-02, -5.5754324e-04)),
        _typed(f32, (5.223978e-03, -6.178353e-02, 6.623831e-03, 5.7633943e-04)),
        _typed(f32, (-8.548327e-04, -1.863592e-02, 8.964852e-03, -4.5249413e-04)),
        _typed(f32, (1.20553064e-04, 1.902834e-02, -6.054174e-03, 2.7030575e-04)),
        _typed(f32, (-1.4923829e-05, 1.2906647e-04, 7.133016e-04, -1.1141469e-04)),
        _typed(f32, (1.6389446e-06, -3.6111395e-03, 8.8106573e-04, 1.6778737e-05)),
        _typed(f32, (-1.4787386e-07, 5.4860394e-04, -3.848126e-04, 5.991718e-06)),
    ),
    one=f32(3.919206e+00),
)
_ERF_F64 = _ErfTable(
    ftype=f64, itype=i64,
    bounds=_typed(f64, (0.5, 1.125, 2.375, 3.9)),
    center=_typed(f64, (0.0, 0.8125, 1.75, 3.125, 4.9)),
    erf_hi=_typed(f64, (0.0, 0.749464025586362, 0.9866716712191824, 0.9999901032653747, 0.999999999995781)),
    erf_lo=_typed(f64, (0.0, 1.9451069995767674e-17, 2.1431190289565338e-17, 1.3132336543493276e-17, 2.1991872290922734e-17)),
    slope_hi=_typed(f64, (1.1283791670955126, 0.5831131597762814, 0.05277499593015037, 6.475868323471298e-05, 4.2173976219858005e-11)),
    slope_lo=_typed(f64, (1.533545961316588e-17, -2.0137548873885582e-17, 3.1148026092514157e-18, -5.292778574637282e-22, 1.0632550186707504e-27)),
    q=(
        _typed(f64, (-0.37612638903183754, -0.47377944231822866, -0.09235624287776317, -0.00020237088510848393, -2.066524799282412e-10)),
        _typed(f64, (0.11283791670955126, 0.06225947799694671, 0.09015728471400689, 0.0004000197828977217, 6.610067987589403e-10)),
        _typed(f64, (-0.026866170645131252, 0.13263356783648328, -0.0481022098321621, -0.000557573949073242, -1.5505830333541093e-09)),
        _typed(f64, (0.005223977625442188, -0.06178375294594108, 0.006624361468315757, 0.0005769615014766295, 2.8408390897785916e-09)),
        _typed(f64, (-0.0008548327023450853, -0.018635851666869922, 0.008963045098303143, -0.00045231517769451157, -4.226534516233896e-09)),
        _typed(f64, (0.00012055332981789664, 0.01903659721931886, -0.006058751470391642, 0.00026648105106141687, 5.240784954876044e-09)),
        _typed(f64, (-1.492565035840625e-05, 0.00012658797559327736, 0.0007300512583127492, -0.00011126363882967953, -5.514414648994551e-09)),
        _typed(f64, (1.6462114365889248e-06, -0.0037244167326826415, 0.0008941817453618718, 2.545065682537386e-05, 4.985351149294744e-09)),
        _typed(f64, (-1.6365844691234924e-07, 0.000582713189562261, -0.0004427506468359067, 3.873529392754189e-06, -3.9046020558862914e-09)),
        _typed(f64, (1.4807192815879198e-08, 0.0005233673805235276, -5.445490403144113e-06, -6.365525165551319e-06, 2.66358429708541e-09)),
        _typed(f64, (-1.2290555301715929e-09, -0.0001591625284064784, 6.867277411481811e-05, 2.7285435666520088e-06, -1.5856473149094789e-09)),
        _typed(f64, (9.422759064495175e-11, -5.391290453354353e-05, -1.7720575406612867e-05, -4.140977508863538e-07, 8.181323803354988e-10)),
        _typed(f64, (-6.71136684601196e-12, 2.724595409180611e-05, -4.630267834980108e-06, -1.7513625286808159e-07, -3.602661465493486e-10)),
        _typed(f64, (4.4632238566896996e-13, 3.7232947328965695e-06, 3.2732598755562396e-06, 1.2428001721351777e-07, 1.3609392828899665e-10)),
        _typed(f64, (-2.7835028183231686e-14, -3.554219184177471e-06, -1.6404324021152298e-07, -2.7775180831970432e-08, -4.4572365865117735e-11)),
        _typed(f64, (1.633944409597456e-15, -7.103762329862091e-08, -3.247571844406328e-07, -3.610187501785129e-09, 9.186211656600223e-12)),
        _typed(f64, (-9.012860582184577e-17, 3.6377746962994864e-07, 6.423329560920942e-08, 3.837380200969267e-09, 1.367162638643319e-12)),
        _typed(f64, (4.2580176891962864e-18, -2.3242354129211754e-08, 1.7402731465529613e-08, -7.588296212273682e-10, -1.0285202039975715e-12)),
    ),
    one=f64(5.921587195794507),
)


def _regions(builder, a, bounds, n):
    """i1 values ``a >= bounds[j]``, j < n (false for NaN)."""
    return [builder.fcmp_ordered(">=", a, builder.extract_value(bounds, j)) for j in range(n)]


def _choose(builder, above, values):
    """values[r], r = the last region whose lower bound ``a`` reached: a select chain."""
    v = builder.extract_value(values, 0)
    for j, cond in enumerate(above):
        v = builder.select(cond, builder.extract_value(values, j + 1), v)
    return v


def _region_types_ok(a, bounds, values):
    return (isinstance(bounds, types.UniTuple) and bounds.dtype == a
            and isinstance(values, types.UniTuple) and values.dtype == a
            and values.count == bounds.count + 1)


@intrinsic
def _pick(typingctx, a, bounds, values):
    """``values[r]`` for the region r of ``a`` (how many of the ascending
    ``bounds`` are <= a), emitted as selects: no branch, no table load."""
    if not _region_types_ok(a, bounds, values):
        return None

    def codegen(context, builder, signature, args):
        av, bv, vv = args
        return _choose(builder, _regions(builder, av, bv, bounds.count), vv)

    return a(a, bounds, values), codegen


@intrinsic
def _horner_pick(typingctx, v, a, bounds, table):
    """Horner in ``v`` with coefficient k = ``_pick(a, bounds, table[k])``
    (table: a tuple of per-region tuples, lowest order first), in one straight
    line as :func:`_horner`."""
    if not (isinstance(table, types.UniTuple) and table.count >= 2 and v == a
            and _region_types_ok(a, bounds, table.dtype)):
        return None

    def codegen(context, builder, signature, args):
        vv, av, bv, tv = args
        ty = context.get_value_type(v)
        fma_fn = builder.module.declare_intrinsic("llvm.fma", [ty], ir.FunctionType(ty, [ty] * 3))
        above = _regions(builder, av, bv, bounds.count)
        coef = [_choose(builder, above, builder.extract_value(tv, k)) for k in range(table.count)]
        p = builder.call(fma_fn, [vv, coef[-1], coef[-2]])
        for ck in reversed(coef[:-2]):
            p = builder.call(fma_fn, [p, vv, ck])
        return p

    return v(v, a, bounds, table), codegen


def _erf(d):
    """erf for the dtype described by ``d`` (an :class:`_ErfTable`)."""
    F, I = d.ftype, d.itype
    bounds, center, e_hi, e_lo, c_hi, c_lo, q, one_at = (
        d.bounds, d.center, d.erf_hi, d.erf_lo, d.slope_hi, d.slope_lo, d.q, d.one)
    zero, one = F(0.0), F(1.0)
    sign = I(np.iinfo(I).min)  # the sign bit alone
    first = bounds[0]

    def erf(x):
        a = abs(x)
        small = a < first
        t = a - _pick(a, bounds, center)
        s = a * a
        u = a if small else t
        v = s if small else t
        v_lo = fma(a, a, -s) if small else zero  # what rounding a*a dropped
        qv = _horner_pick(v, a, bounds, q)
        ch = _pick(a, bounds, c_hi)
        ph = u * ch
        pl = fma(u, _pick(a, bounds, c_lo), fma(u, ch, -ph))
        eh = _pick(a, bounds, e_hi)
        s1 = eh + ph
        e1 = (eh - s1) + ph  # Fast2Sum: |eh| >= |ph|, or eh = 0
        uv = u * v
        uv_lo = fma(u, v, -uv) + u * v_lo
        rest = fma(uv, qv, fma(uv_lo, qv, pl + e1 + _pick(a, bounds, e_lo)))
        y = s1 + rest
        y = one if a >= one_at else y  # +-inf -> 1; NaN stays NaN
        return bits_float(I(float_bits(y) | (float_bits(x) & sign)))  # erf(-0) = -0

    return erf


_implement(verf, {types.float32: _erf(_ERF_F32), types.float64: _erf(_ERF_F64)})


# ============================================================================= normal tail
# Phi(-u) = erfc(u/sqrt 2)/2 for u >= 1, for GELU(approximate="none") below
# x = -1, where 1 + erf(x/sqrt 2) cancels (5.6 ulp at x = -1.48, and nothing
# left of the result below x = -5.9).  Written as erfc of u/sqrt 2 without
# rounding u/sqrt 2 (which alone would cost 2 u^2 / 2 = u^2 half-ulps):
#
#   Phi(-u) = e * m / u,  e = exp(-u^2/2),  m = u e^(u^2/2) Phi(-u)
#
# m, u/sqrt(2 pi) times the Mills ratio, falls smoothly from 0.2616 (u = 1) to
# 1/sqrt(2 pi) = 0.3989 (u -> inf); it is a polynomial in t = w - w0 per
# region of w = 1/u (selects, as erf's regions: no branch, no table load),
# fitted by mpmath.chebyfit (60 digits) to 1e-9 (float32: 3 regions, degree 8)
# resp. 2e-17 (float64: 5 regions, degree 15) of m.  u^2 = s + s_lo exactly
# (fma), e = exp(-s/2) (1 - s_lo/2): the rounding of u^2 would cost u^2/2
# ulps of e (100 at u = 14).  u is clamped at 16 (float32) resp. 40, where e
# is 0 already, so that u^2 cannot overflow.
#
# Measured against mpmath, 25,000 points in [1, 13] (float32) resp. [1, 40]
# (float64), normal results: e*m (u Phi(-u), GELU's forward) 2.05 resp. 2.00
# ulp, e*m/u (Phi(-u)) 2.65 resp. 2.63, e*r (GELU's derivative) 2.54 resp.
# 2.6 (7.5 where e*r is subnormal and e's own rounding is multiplied by r);
# exp's 0.81 ulp is most of it.  tests/test_vecmath.py re-measures and
# asserts NDTR_TAIL_MAX_ULP.

__all__ += ["vndtr_tail", "NDTR_TAIL_MAX_ULP"]

#: maximum error in ulp of e*m (u Phi(-u)), e*m/u (Phi(-u)) and e*r (Phi(-u) -
#: u phi(u)) for u >= 1 and a normal result (tests/test_vecmath.py)
NDTR_TAIL_MAX_ULP = {"float32": 3.0, "float64": 3.0}


vndtr_tail = _jit_only("vndtr_tail", "(e, m, r) for x >= 1 with Phi(-x) = e*m/x and Phi(-x) "
                      "- x phi(x) = e*r, phi the normal density (jit-only).")


class _NdtrTable(NamedTuple):
    """vndtr_tail's constants for one dtype; region r covers bounds[r-1] <= w < bounds[r]."""

    ftype: type
    bounds: tuple  # ascending region limits in w = 1/u
    center: tuple  # w0 per region
    q: tuple  # m's coefficients in w - w0, lowest order first, each a tuple over the regions
    q0_lo: tuple  # the rounding of q[0]: m(w0) = q[0] + q0_lo per region
    u_max: float
    k_hi: float  # 1/sqrt(2 pi) = k_hi + k_lo
    k_lo: float  # e = exp(-u^2/2) is 0 from here on


# Generated (mpmath.chebyfit, 60 digits): m(w0 + t) on each region
_NDTR_F32 = _NdtrTable(
    ftype=f32,
    bounds=_typed(f32, (0.25, 0.5)),
    center=_typed(f32, (0.15625, 0.375, 0.75)),
    q=(
        _typed(f32, (0.3898410499095917, 0.3575763702392578, 0.29581931233406067)),
        _typed(f32, (-0.10914888978004456, -0.16911683976650238, -0.1499861627817154)),
        _typed(f32, (-0.2644209861755371, -0.03733069449663162, 0.0518234483897686)),
        _typed(f32, (0.4405534863471985, 0.21235643327236176, 0.008493763394653797)),
        _typed(f32, (0.04736592620611191, -0.28805699944496155, -0.039845190942287445)),
        _typed(f32, (-1.3830339908599854, 0.19269448518753052, 0.05012382194399834)),
        _typed(f32, (2.3245248794555664, 0.12074210494756699, -0.04618557542562485)),
        _typed(f32, (1.3888810873031616, -0.6631729602813721, 0.033110491931438446)),
        _typed(f32, (-12.56953239440918, 1.1439950466156006, -0.014477002434432507)),
    ),
    q0_lo=_typed(f32, (-3.2363829394199684e-09, 3.347853105850618e-09, 1.110298519790831e-08)),
    u_max=f32(16.0), k_hi=f32(0.3989422917366028), k_lo=f32(-1.1335170135851058e-08),
)
_NDTR_F64 = _NdtrTable(
    ftype=f64,
    bounds=_typed(f64, (0.125, 0.25, 0.5, 0.75)),
    center=_typed(f64, (0.075, 0.1875, 0.375, 0.625, 0.875)),
    q=(
        _typed(f64, (0.39673507331183666, 0.3861853710358318, 0.3575763735871109, 0.3153492951355028, 0.2778890247110847)),
        _typed(f64, (-0.05790269104130808, -0.12438491361697898, -0.1691168373829356, -0.16216200456755586, -0.13688988563640525)),
        _typed(f64, (-0.3611963342672362, -0.2232298794909593, -0.03733069539075764, 0.04373200442364573, 0.0521026180504243)),
        _typed(f64, (0.31358084556049504, 0.4344209067689626, 0.2123586065190593, 0.03835940197520289, -0.00514281943509144)),
        _typed(f64, (0.7723937894441893, -0.1339680363880888, -0.2880575336523893, -0.08451771281791993, -0.01732329771481271)),
        _typed(f64, (-1.891688335674872, -0.9438357038413149, 0.19219170259778087, 0.09731466966779001, 0.02475991045791652)),
        _typed(f64, (-1.3418569050687932, 2.2433376194625834, 0.12087181324489298, -0.08153700761172415, -0.023706032590417522)),
        _typed(f64, (11.92009916611167, -1.3761815877293138, -0.6197112216834704, 0.044069849526032434, 0.018524024797170878)),
        _typed(f64, (-9.569186983311244, -5.85821866317768, 1.1312647224203825, 0.006415109736742237, -0.011986838612312459)),
        _typed(f64, (-66.9812382305354, 20.875676598084652, -1.284154852257778, -0.059987060942387475, 0.0057334447329313995)),
        _typed(f64, (196.6949769505008, -28.173092227305556, 0.5094705782097223, 0.10620199114463257, -0.0006172699558860674)),
        _typed(f64, (175.36373342468545, -26.431365299785355, 1.8189794296646935, -0.13507273707804676, -0.003030900205387773)),
        _typed(f64, (-2187.0215639620974, 232.36246907614168, -6.0288842884067195, 0.13846191215926784, 0.005203076528202583)),
        _typed(f64, (3262.787576904686, -573.5063591394536, 11.326480838050154, -0.11038161835490612, -0.006101449373711019)),
        _typed(f64, (15235.449067950854, 318.76157401816107, -13.093274458783123, 0.03825216096529708, 0.00624664889258707)),
        _typed(f64, (-67837.47208834783, 2289.1474463479017, 4.236056814618813, 0.059790163408892705, -0.005344878068094541)),
    ),
    q0_lo=_typed(f64, (-1.244700225125348e-17, -1.698854288192234e-17, 2.447741253035998e-17,
                       2.200553811154199e-17, -1.6233154270126797e-17)),
    u_max=f64(40.0), k_hi=f64(0.3989422804014327), k_lo=f64(-2.49232720227773e-17),
)


def _ndtr_tail(d):
    """vndtr_tail for the dtype described by ``d`` (an :class:`_NdtrTable`)."""
    F = d.ftype
    bounds, center, q, q0_lo, u_max, k_hi, k_lo = (
        d.bounds, d.center, d.q, d.q0_lo, d.u_max, d.k_hi, d.k_lo)
    q_rest = q[1:]
    one, half = F(1.0), F(0.5)

    def ndtr_tail(x):
        u = x if x < u_max else u_max  # NaN: u_max; the caller keeps its NaN
        w = one / u
        t = w - _pick(w, bounds, center)
        m0 = _pick(w, bounds, q[0])
        small = fma(t, _horner_pick(t, w, bounds, q_rest), _pick(w, bounds, q0_lo))
        s = u * u
        # exp(-(s + s_lo)/2) = exp(-s/2) (1 - c), c = s_lo/2 < 2^-25 s (2^-17 at
        # u = 16): m takes the factor (1 - c), in the one rounding of m0 + small
        # (c*m with m rounded: c's error times m's, below 2^-40)
        c = fma(u, u, -s) * half
        m = m0 + fma(-c, m0 + small, small)
        # r = m/u - u k, which cancels near u = 1 (0.26 - 0.40): mu = m/u and
        # P = u k each carried with their rounding errors (Fast2Sum: |P| > |mu|),
        # so that only the last sum rounds at r's scale.  Unused outputs
        # cost nothing: inlined, LLVM drops them.
        mu = m / u
        mu_lo = fma(-mu, u, m) / u
        P = u * k_hi
        P_lo = fma(u, k_hi, -P) + fma(u, k_lo, -c * P)  # P's share of (1 - c)
        r = mu - P
        r = r + ((((-P) - r) + mu) + (mu_lo - P_lo))
        return vexp(-(s * half)), m, r

    return ndtr_tail


_implement(vndtr_tail, {types.float32: _ndtr_tail(_NDTR_F32), types.float64: _ndtr_tail(_NDTR_F64)})


# ============================================================================= near a zero
# A function f that passes through zero at x0 has, near x0, an absolute error
# of a few ulps of its terms whatever way it is summed, which is any number of
# ulps of f itself.  There f(x) = (x - x0) R(x - xc): x - x0_hi is exact
# (Sterbenz: the interval lies within [x0/2, 2 x0]), x0_lo takes x0's
# rounding, and R, smooth and away from zero, is a polynomial (fitted by
# mpmath.chebyfit to the interval); the relative error is R's plus two
# roundings, at every x, the zero included.  Used by GELU's and Mish's
# derivatives (gradkern.activations.scalar), which keep their tables.

__all__ += ["RootTable", "implement_near_root"]


class RootTable(NamedTuple):
    """f(x) = ((x - root_hi) - root_lo) * R(x - center) near f's zero
    root_hi + root_lo; R's coefficients lowest order first, in the dtype."""

    root_hi: float
    root_lo: float
    center: float
    coef: tuple


def _near_root(d):
    """f near its zero for the dtype of the table ``d`` (a :class:`RootTable`)."""
    root_hi, root_lo, center, coef = d.root_hi, d.root_lo, d.center, d.coef

    def near_root(x):
        return ((x - root_hi) - root_lo) * _horner(x - center, coef)

    return near_root


def implement_near_root(stub, float32_table, float64_table):
    """Compile ``stub(x)`` (a jit-only function of gradkern) to f near its zero
    by the table of x's dtype."""
    _implement(stub, {types.float32: _near_root(float32_table),
                      types.float64: _near_root(float64_table)})
