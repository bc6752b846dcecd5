r"""Closed-form forward and backward of every activation, as plain scalar functions.

Each activation has two ``numba.njit`` functions with no eager signature, so the
same definition compiles for float32 and float64, inside the CPU chain kernel
and inside a ``numba.cuda`` kernel:

- ``<name>_forward(x, p) -> y``
- ``<name>_backward(g, x, y, p) -> g * dy/dx``: the vector-Jacobian product for
  upstream gradient ``g``, given the input ``x`` and the output ``y`` of the
  forward.  Functions use whichever of ``x`` and ``y`` PyTorch's backward uses
  (Tanh, Sigmoid and ReLU use ``y``), in PyTorch's order of operations, so that
  rounding matches: e.g. SELU's left branch is ``((g*1)*negcoef)*exp(x)``, not
  ``g*(negcoef*exp(x))``.

``p`` is a 4-tuple of parameters already rounded to the kernel's dtype (PyTorch
rounds every Scalar parameter with ``.to<scalar_t>()``); the meaning of each
slot is documented per function and filled by :mod:`gradkern.activations.table`.
Constants are written ``T(c)`` with ``T = type(x)``: a bare ``1.0`` would
promote a float32 kernel to float64.

The value at NaN is not defined here: the chain kernels turn the gradient at a
NaN pre-activation into NaN (PyTorch's own answer there depends on whether
the element hit its scalar or its SIMD path; ``../shared/torch-conventions.md``).
"""
import numba

import numpy as np

from .._numba.intrinsics import fma
from .._numba.vecmath import (RootTable, implement_near_root, verf, vexp, vexp_uncorrected, vexpm1, vlog1p,
                              vndtr_tail, vsigmoid, vtanh)

# error_model="numpy": IEEE division (x/0 -> inf/NaN) as in PyTorch, and no
# ZeroDivisionError check, whose branch would keep loops from vectorising.
# forceinline: LLVM alwaysinline.  LLVM's own inliner declined e.g. Softplus's
# forward (log1p(exp) + a select) and so left a call in the kernel's loop:
# scalar code, 9.5 ns/element instead of 1.6 measured.
jit = numba.njit(error_model="numpy", forceinline=True)


# Transcendentals (vexp, vexpm1, vlog1p, vtanh, vsigmoid, verf, vndtr_tail):
# gradkern._numba.vecmath's branch-free float32/float64 implementations (float32 tanh and
# sigmoid correctly rounded, exp and expm1 0.50 ulp, the others 0.6-0.8, measured), so a
# loop over samples becomes SIMD code with no libm call and no float64 in float32 code.

INF = float("inf")


def _root_table(dtype, root, center, coef):
    """A :class:`RootTable` in ``dtype``: root = (hi, lo) as the dtype splits it."""
    t = dtype.type
    return RootTable(t(root[0]), t(root[1]), t(center), tuple(t(c) for c in coef))


# GELU'(x) = Phi(x) + x phi(x) and Mish'(x) each pass through zero (x = -0.7518,
# -1.1924), where their two terms cancel: any rounding of a term is hundreds of
# ulps of the result there (GELU: 16 inputs above max(2x torch, 4 ulp), up to
# 235 ulp; Mish: 18, up to 698).  On [-1, -0.5] resp. [-1.5, -0.9] they are
# (x - x0) R(x - xc) instead (vecmath.implement_near_root), R fitted by
# mpmath.chebyfit (60 digits) to 3e-10 (float32, degree 7) resp. 2e-19
# (float64, degree 14) of R.
_GELU_NEAR_ROOT = (-1.0, -0.5)
_MISH_NEAR_ROOT = (-1.5, -0.9)


def _gelu_grad_near_root(x):
    """GELU'(x) on _GELU_NEAR_ROOT (jit-only)."""
    raise NotImplementedError


def _mish_grad_near_root(x):
    """Mish'(x) on _MISH_NEAR_ROOT (jit-only)."""
    raise NotImplementedError


implement_near_root(
    _gelu_grad_near_root,
    _root_table(np.dtype(np.float32), (-0.7517915368080139, 1.211444988769017e-08), -0.75, (
        0.43218955397605896, 0.3882186710834503, -0.018812749534845352, -0.114113450050354,
        -0.014593756757676601, 0.019469410181045532, 0.004419267177581787,
        -0.002226828131824732)),
    _root_table(np.dtype(np.float64), (-0.7517915246935645, 1.4956759177009883e-17), -0.75, (
        0.43218955538054815, 0.38821867456339654, -0.01881270543747169, -0.11411346361216972,
        -0.014597331970448341, 0.019470321490379285, 0.004511076219168484,
        -0.0022501914835004796, -0.0007418099140684072, 0.0001878813221024849,
        8.59368019080211e-05, -1.1380786345246387e-05, -7.737441584877836e-06,
        4.4648979858134897e-07, 5.619616252387396e-07)))
implement_near_root(
    _mish_grad_near_root,
    _root_table(np.dtype(np.float32), (-1.1924312114715576, -3.0439375464652585e-09), -1.2, (
        0.265400767326355, 0.20409342646598816, 0.04236274212598801, -0.019794777035713196,
        -0.01569553278386593, -0.003408698830753565, 0.0010853951098397374,
        0.0009671642328612506)),
    _root_table(np.dtype(np.float64), (-1.1924312145154952, -4.8484829848031044e-17), -1.2, (
        0.26540075652051437, 0.2040934249429325, 0.04236269687790654, -0.019794770443410704,
        -0.01569302130628943, -0.0034091094459053283, 0.0010403726136762302,
        0.000974346842450769, 0.0002568450755916041, -3.779043423137711e-05,
        -5.4385852182956934e-05, -1.7373315158664836e-05, 6.682487988257025e-07,
        2.806037014351753e-06, 1.0222928808714459e-06)))


# ----------------------------------------------------------------------------
# ELU family: ELU, CELU and SELU share PyTorch's ``elu`` kernel.
# p = (negcoef, poscoef, input_scale_forward, input_scale_backward)
# ----------------------------------------------------------------------------
@jit
def elu_forward(x, p):
    r"""PyTorch 2.13 ``elu``: ``x < 0 ? expm1(x*s) * negcoef : x * poscoef``.

    .. math:: y = \begin{cases} \text{negcoef}\,(e^{x s} - 1) & x < 0 \\
              \text{poscoef}\; x & x \ge 0 \end{cases}

    ELU: negcoef = alpha, poscoef = 1, s = 1.  CELU: negcoef = alpha,
    s = 1/alpha.  SELU: negcoef = f32(alpha)*f32(scale) = 1.7580993,
    poscoef = scale.  (PyTorch <= 2.10 used ``exp(x) - 1``; 2.13 uses expm1.)
    """
    T = type(x)
    if x < T(0.0):
        return vexpm1(x * p[2]) * p[0]
    return x * p[1]


@jit
def elu_backward(g, x, y, p):
    r"""``x <= 0 ? ((g*s)*negcoef)*exp(x*s) : g*poscoef`` (from the input).

    The test is ``<=``, so the kink takes the left branch: ELU'(0) = CELU'(0) = 1
    (= alpha), SELU'(0) = 1.7580993 (alpha*scale, not scale).
    CELU's backward scale is f32(1/f32(alpha)), computed separately (slot 3).
    """
    T = type(x)
    if x <= T(0.0):
        return ((g * p[3]) * p[0]) * vexp(x * p[3])
    return g * p[1]


# ----------------------------------------------------------------------------
# Hardtanh, ReLU6.  p = (min_val, max_val, -, -)
# ----------------------------------------------------------------------------
@jit
def hardtanh_forward(x, p):
    r"""``clamp(x, min_val, max_val)``; keeps NaN and the sign of -0.0."""
    if x < p[0]:
        return p[0]
    if x > p[1]:
        return p[1]
    return x


@jit
def hardtanh_backward(g, x, y, p):
    r"""``(x <= min_val || x >= max_val) ? 0 : g``: zero *at* both kinks."""
    T = type(x)
    if x <= p[0] or x >= p[1]:
        return T(0.0)
    return g


# ----------------------------------------------------------------------------
# LeakyReLU, PReLU, RReLU (eval).  p = (negative_slope, -, -, -)
# RReLU in training mode uses the same functions with p[0] = the sample's noise.
# ----------------------------------------------------------------------------
@jit
def leaky_relu_forward(x, p):
    r"""``x > 0 ? x : x * slope``."""
    T = type(x)
    if x > T(0.0):
        return x
    return x * p[0]


@jit
def leaky_relu_backward(g, x, y, p):
    r"""``x > 0 ? g : g * slope``: LeakyReLU'(0) = slope (0.0099999998 in f32)."""
    T = type(x)
    if x > T(0.0):
        return g
    return g * p[0]


# ----------------------------------------------------------------------------
# ReLU (no parameters)
# ----------------------------------------------------------------------------
@jit
def relu_forward(x, p):
    r"""``clamp_min(x, 0)``: ReLU(-0.0) = -0.0, NaN stays NaN."""
    T = type(x)
    if x < T(0.0):
        return T(0.0)
    return x


@jit
def relu_backward(g, x, y, p):
    r"""``threshold_backward(g, y, 0)``: ``y <= 0 ? 0 : g``, from the output."""
    T = type(x)
    if y <= T(0.0):
        return T(0.0)
    return g


# ----------------------------------------------------------------------------
# Sigmoid family (no parameters)
# ----------------------------------------------------------------------------
@jit
def log_sigmoid_forward_saving(x, p):
    r"""``(y, b)``: y = ``min(x, 0) - log1p(b)`` with b = exp(-|x|), PyTorch's
    overflow-free form, and the buffer b its forward saves for the backward."""
    T = type(x)
    m = T(0.0) if x >= T(0.0) else x  # NaN-propagating min(x, 0)
    b = vexp(-abs(x))
    return m - vlog1p(b), b


@jit
def log_sigmoid_forward(x, p):
    r"""``min(x, 0) - log1p(exp(-|x|))``, PyTorch's overflow-free form."""
    return log_sigmoid_forward_saving(x, p)[0]


@jit
def log_sigmoid_backward_saved(g, x, b, p):
    r"""``x < 0 ? (1 - b/(1+b))*g : (0 + b/(1+b))*g`` from the forward's buffer
    b = exp(-|x|), as torch's ``log_sigmoid_backward(grad, self, buffer)``."""
    T = type(x)
    q = b / (T(1.0) + b)
    if x < T(0.0):
        return (T(1.0) - q) * g
    return (T(0.0) + q) * g


@jit
def log_sigmoid_backward(g, x, y, p):
    r"""With b = exp(-|x|): ``x < 0 ? (1 - b/(1+b))*g : (0 + b/(1+b))*g``.

    LogSigmoid'(0) = 0.5; +inf -> 0, -inf -> 1.
    """
    return log_sigmoid_backward_saved(g, x, vexp(-abs(x)), p)


@jit
def sigmoid_forward(x, p):
    r"""``1 / (1 + exp(-x))``: correctly rounded in float32 (``vsigmoid``; torch's
    rounds 1 + exp(-x) first, up to 0.51 ulp off, which its derivative
    ``(1 - y)*y`` magnifies), torch's formula in float64."""
    return vsigmoid(x)


@jit
def sigmoid_backward(g, x, y, p):
    r"""``(g*(1 - y))*y``, from the output: Sigmoid'(0) = 0.25."""
    T = type(x)
    return (g * (T(1.0) - y)) * y


# ----------------------------------------------------------------------------
# Softplus.  p = (beta, threshold, -, -)
# ----------------------------------------------------------------------------
@jit
def softplus_forward(x, p):
    r"""``x*beta > threshold ? x : log1p(exp(x*beta)) / beta``.

    The linear branch returns x itself, and only when x*beta > threshold
    strictly.  Written as a select of both branches: with an early ``return x``
    LLVM kept the loop scalar (8.8 ns/element vs 1.4 measured).  Its exp is not
    handed to the backward (as LogSigmoid's is): the backward's correctly
    rounded sigmoid does not start from a rounded exp(x*beta).
    """
    xb = x * p[0]
    smooth = vlog1p(vexp(xb)) / p[0]
    return x if xb > p[1] else smooth


@jit
def softplus_backward(g, x, y, p):
    r"""``x*beta > threshold ? g : g*sigmoid(x*beta)``.

    torch computes sigmoid as (g*z)/(z + 1), z = exp(x*beta), rounding z + 1
    first (1.8 ulp at worst on the accuracy table's inputs); this is the
    correctly rounded float32 sigmoid (0.5 ulp), times g.  With exp rounding
    once, torch's order put the depth-3 chain's df/dx 4.61 ulp off where
    torch's worst is 3.62 (x = -2.34); now 2.82.  At x*beta == threshold
    the smooth branch is taken; sigmoid(20) rounds to 1 in float32, so it
    gives exactly 1.0 for g = 1.
    """
    xb = x * p[0]
    if xb > p[1]:
        return g
    return g * vsigmoid(xb)


# ----------------------------------------------------------------------------
# Shrinks.  p = (lambd, -, -, -)
# ----------------------------------------------------------------------------
@jit
def softshrink_forward(x, p):
    r"""``x > l ? x - l : (x < -l ? x + l : 0)``.

    Inside the band PyTorch's SIMD path gives +0.0 and its scalar tail ``x*0``
    (-0.0 for negative x); gradkern gives +0.0, as for most elements of a
    tensor.  NaN falls through both tests and stays NaN via ``x + l``.
    """
    T = type(x)
    if x >= -p[0] and x <= p[0]:
        return T(0.0)
    if x > p[0]:
        return x - p[0]
    return x + p[0]


@jit
def hardshrink_forward(x, p):
    r"""``(x >= -l && x <= l) ? 0 : x``."""
    T = type(x)
    if x >= -p[0] and x <= p[0]:
        return T(0.0)
    return x


@jit
def shrink_backward(g, x, y, p):
    r"""``(x >= -l && x <= l) ? 0 : g``: zero on the closed band, kinks included."""
    T = type(x)
    if x >= -p[0] and x <= p[0]:
        return T(0.0)
    return g


# ----------------------------------------------------------------------------
# Softsign, Tanh, Tanhshrink (no parameters)
# ----------------------------------------------------------------------------
@jit
def softsign_forward(x, p):
    r"""``x / (|x| + 1)``."""
    T = type(x)
    return x / (abs(x) + T(1.0))


@jit
def softsign_backward(g, x, y, p):
    r"""PyTorch differentiates the composite ``x/(|x|+1)`` op by op:
    ``g/d + ((-g)*((x/d)/d))*sgn(x)`` with d = |x| + 1.  Softsign'(0) = 1.

    Algebraically g/d^2, but evaluated this way it matches PyTorch bit for bit.
    """
    T = type(x)
    d = abs(x) + T(1.0)
    if x > T(0.0):
        s = T(1.0)
    elif x < T(0.0):
        s = T(-1.0)
    else:
        s = T(0.0)
    return g / d + ((-g) * ((x / d) / d)) * s


@jit
def tanh_forward(x, p):
    r"""``tanh(x)``."""
    return vtanh(x)


@jit
def tanh_backward(g, x, y, p):
    r"""``g*fma(-y, y, 1)``, from the output, fused as PyTorch's build fuses it."""
    T = type(x)
    return g * fma(-y, y, T(1.0))


@jit
def tanhshrink_forward_saving(x, p):
    r"""``(x - t, t)`` with t = tanh(x): torch's composite saves t (the Tanh
    node's output) for its backward."""
    t = vtanh(x)
    return x - t, t


@jit
def tanhshrink_forward(x, p):
    r"""``x - tanh(x)``."""
    return tanhshrink_forward_saving(x, p)[0]


@jit
def tanhshrink_backward_saved(g, x, t, p):
    r"""``g + (-g)*fma(-t, t, 1)`` from the forward's t = tanh(x)."""
    T = type(x)
    return g + (-g) * fma(-t, t, T(1.0))


@jit
def tanhshrink_backward(g, x, y, p):
    r"""``g + (-g)*fma(-t, t, 1)`` with t = tanh(x) (Sub then Tanh backward)."""
    return tanhshrink_backward_saved(g, x, vtanh(x), p)


# ----------------------------------------------------------------------------
# GELU.  Two kernel pairs, chosen by ``approximate`` (table.py's ``ops``).
# The order of operations below is ATen's scalar lambdas, checked bit for bit
# against torch 2.13's scalar path (strided float32 input, glibc's erff/expf/
# tanhf in a C copy of these formulas, 2e6 inputs): GCC fuses the inner
# ``kKappa*x^3 + x``, ``1 - t*t`` and ``3*kKappa*x^2 + 1`` but not the outer
# ``cdf + x*pdf`` nor ``left_derivative + left*right_derivative*inner_derivative``
# (fusing those matched 90% resp. 77% of the elements, not 100%).
# ----------------------------------------------------------------------------
@jit
def _gelu_tail(x):
    r"""``(use, forward, derivative)`` of GELU('none') from the normal tail, for
    finite x < -1: with u = -x, x Phi(x) = -u Phi(-u) = -e m and Phi(x) + x phi(x)
    = e r (``vndtr_tail``).  ``1 + erf(x/sqrt 2)`` cancels there: 5.6 ulp at
    x = -1.48 where torch's oneDNN is 0.36, and nothing left below x = -5.9;
    this is 2.0 ulp at worst (forward) resp. 2.5 (derivative)."""
    T = type(x)
    e, m, r = vndtr_tail(-x)
    # + 0: an underflowed derivative is +0, torch's 0 + x*0 (e*r would be -0)
    return (x < T(-1.0)) & (x > T(-INF)), -(e * m), e * r + T(0.0)


@jit
def gelu_forward_saving(x, p):
    r"""``(y, d)``: GELU(approximate="none") and its derivative d = GELU'(x),
    from one erf and one normal tail for both (the backward's own erf, tail and
    exp cost 2.2x the forward's; the chain kernel keeps d for the block).

    y = :math:`x \Phi(x) = \frac{x}{2}(1 + \mathrm{erf}(x/\sqrt 2))`;
    p = (M_SQRT1_2, 1/sqrt(2 pi) as ATen forms it, onednn, 0), in the dtype.

    ATen (float64): ``(x*0.5)*(1 + erf(x*M_SQRT1_2))``.  torch computes
    float32 GELU('none') with oneDNN instead (contiguous input of more than one
    element: every batch), whose own erf is a 1e-7-absolute polynomial and
    whose order cannot be matched bit for bit.  onednn = 1 (float32) takes
    oneDNN's conventions at the edges -- it forms ``x*(1 + erf)`` first, so
    GELU(x) = inf from x = 2^127 on, and GELU(+inf) = NaN -- and computes the
    rest as accurately as float32 allows: ``fma(h, erf, h)``, h = x/2 (exact
    but for subnormal x),
    rounds once after erf (max 0.97 ulp, mean 0.27, on [0, 6]; ATen's order
    2.9 / 0.71, oneDNN 5.1 / 1.05).  Chains of GELU amplify a layer's
    rounding (weights 1, depth 30: up to ~200x), so the parity suite's
    "no less accurate than torch" needs this, not ATen's two roundings.
    Both dtypes: below x = -1, where 1 + erf cancels, ``-e*m`` from the normal
    tail (``_gelu_tail``); -inf stays NaN (inf*0), as in both of torch's kernels.

    d = ``cdf + x*pdf`` with cdf = 0.5*(1 + erf(x*M_SQRT1_2)) and pdf =
    kBeta*exp(x*x*-0.5), not fused; below x = -1 ``e*r`` from the normal tail
    (the cdf cancelled there, up to 5e5 ulp), and on [-1, -0.5], around
    GELU's zero at -0.7518, ``(x - x0) R(x)``.  GELU'(0) = 0.5; NaN at +-inf
    (inf*0), as torch's ATen and oneDNN kernels both give.
    """
    T = type(x)
    tail, y_tail, d_tail = _gelu_tail(x)
    erf = verf(x * p[0])
    cdf = T(0.5) * (T(1.0) + erf)
    # exp without its correction step (0.81 ulp, not 0.50): with the corrected
    # one, `gradkern verify`'s float32 depth-30 chain (weights 1) had df/dx 1.97
    # tolerance units from float64 autograd where torch has 1.47; 1.47 or less
    # with this one, and the accuracy test's per-input rules hold either way
    pdf = p[1] * vexp_uncorrected((x * x) * T(-0.5))
    d = d_tail if tail else cdf + x * pdf
    lo, hi = _GELU_NEAR_ROOT
    d = _gelu_grad_near_root(x) if (x >= T(lo)) & (x <= T(hi)) else d
    if p[2] != T(0.0):
        h = x * T(0.5)
        y = fma(h, erf, h)
        # a zero result (x = +-0, the smallest subnormals, or erf = -1 from
        # x < -5.9) has x's sign in oneDNN's x*(1 + erf)*0.5; fma's exact
        # h - h would be +0
        y = x * T(0.0) if y == T(0.0) else y
        y = x + x if x + x == T(INF) else y  # x*(1 + erf) overflows, as oneDNN's
        y = x - x if x == T(INF) else y  # NaN at +inf, as oneDNN's
        return (y_tail if tail else y), d
    y = (x * T(0.5)) * (T(1.0) + erf)
    return (y_tail if tail else y), d


@jit
def gelu_forward(x, p):
    r"""GELU(approximate="none"): :math:`x \Phi(x)` (``gelu_forward_saving``)."""
    return gelu_forward_saving(x, p)[0]


@jit
def gelu_backward_saved(g, x, d, p):
    r"""``g * d``, d = GELU'(x) from the forward (``gelu_forward_saving``)."""
    return g * d


@jit
def gelu_backward(g, x, y, p):
    r"""``g * GELU'(x)`` (``gelu_forward_saving`` says how GELU' is formed)."""
    return gelu_backward_saved(g, x, gelu_forward_saving(x, p)[1], p)


@jit
def _gelu_tanh_inner(x, p):
    r"""``tanh(kBeta*fma(kKappa, x^3, x))`` for GELU(approximate="tanh")."""
    return vtanh(p[0] * fma(p[1], (x * x) * x, x))


@jit
def gelu_tanh_forward_saving(x, p):
    r"""``(y, t)``: GELU(approximate="tanh") and the tanh t its backward uses
    again (torch's kernel computes t twice; the chain kernel keeps it)."""
    T = type(x)
    t = _gelu_tanh_inner(x, p)
    return (T(0.5) * x) * (T(1.0) + t), t


@jit
def gelu_tanh_forward(x, p):
    r"""GELU(approximate="tanh"):
    :math:`\frac{x}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,(x + \kappa x^3)\right)\right)`.

    ``(0.5*x)*(1 + tanh(kBeta*fma(kKappa, (x*x)*x, x)))``; p = (kBeta =
    sqrt(2/pi), kKappa = 0.044715, 3*kKappa formed in the dtype, 1).
    """
    return gelu_tanh_forward_saving(x, p)[0]


@jit
def gelu_tanh_backward_saved(g, x, t, p):
    r"""``g*(0.5*(1 + t) + ((0.5*x)*fma(-t, t, 1))*(kBeta*fma(3*kKappa, x*x, 1)))``,
    t = tanh(inner) from the forward.  ``3*kKappa`` is formed in the dtype:
    float32(3)*float32(0.044715) = 0x3E095D4E, one ulp below
    float32(0.134145).  GELU'(0) = 0.5; NaN where x*x overflows (|x| >=
    1.9e19 in float32: 0 * inf), as torch gives."""
    T = type(x)
    left = T(0.5) * x
    left_derivative = T(0.5) * (T(1.0) + t)
    right_derivative = fma(-t, t, T(1.0))
    inner_derivative = p[0] * fma(p[2], x * x, T(1.0))
    return g * (left_derivative + (left * right_derivative) * inner_derivative)


@jit
def gelu_tanh_backward(g, x, y, p):
    r"""GELU(approximate="tanh")'s backward (``gelu_tanh_backward_saved``),
    t = tanh(inner) computed again, as torch's kernel does."""
    return gelu_tanh_backward_saved(g, x, _gelu_tanh_inner(x, p), p)


# ----------------------------------------------------------------------------
# SiLU, Mish (no parameters).  A plain ``.backward()`` runs the kernels
# ``silu_backward`` / ``mish_backward`` (with create_graph, as torch.func does,
# torch composes the same formula from separate ops instead).  Both checked bit
# for bit against torch's scalar path as the GELU formulas above (100%).
# ----------------------------------------------------------------------------
@jit
def silu_forward_saving(x, p):
    r"""``(y, s)``: SiLU and the sigmoid s = 1/(1 + exp(-x)) its backward
    uses, from one exp (torch's backward computes it again; the chain kernel
    keeps s)."""
    T = type(x)
    e = vexp(-x)
    return x / (T(1.0) + e), T(1.0) / (T(1.0) + e)


@jit
def silu_forward(x, p):
    r""":math:`x\,\sigma(x)`: ``x / (1 + exp(-x))``."""
    return silu_forward_saving(x, p)[0]


@jit
def silu_backward_saved(g, x, s, p):
    r"""``(g*s)*fma(x, 1 - s, 1)``, s = 1/(1 + exp(-x)) (fused as torch's build
    fuses it).  SiLU'(0) = 0.5; NaN at +-inf."""
    T = type(x)
    return (g * s) * fma(x, T(1.0) - s, T(1.0))


@jit
def silu_backward(g, x, y, p):
    r"""SiLU's backward (``silu_backward_saved``), s computed again."""
    return silu_backward_saved(g, x, silu_forward_saving(x, p)[1], p)


@jit
def _mish_terms(x):
    r"""``(E, K)`` for Mish: E = exp(-|x|), one exp for both signs (e^x = E
    for x <= 0, 1/E above); K = 1 + 2E + 2E^2, which is (1 + e^x)^2 + 1 over
    e^(2x) for x > 0 and its numerator for x <= 0 (no overflow: K in [1, 5])."""
    T = type(x)
    E = vexp(-abs(x))
    return E, fma(E + E, E + T(1.0), T(1.0))


@jit
def _mish_derivative(x, E, q):
    """Mish'(x) from E = exp(-|x|) and, for x > 0, q = 2E^2/K (``mish_backward``)."""
    T = type(x)
    d_pos = fma(q * x, (T(2.0) - q) / (T(1.0) + E), T(1.0) - q)
    # x clamped where E = 0 already, so 4x cannot overflow; x - x puts back
    # NaN at -inf (and turns an underflowed -0 into torch's +0)
    four_x = T(4.0) * (x if x > T(-1e30) else T(-1e30))
    P = fma(E, fma(E, E + T(4.0), T(6.0) + four_x), four_x + T(4.0))
    D = fma(E, E + T(2.0), T(2.0))
    d_neg = (E * P) / (D * D) + (x - x)
    lo, hi = _MISH_NEAR_ROOT
    d_neg = _mish_grad_near_root(x) if (x >= T(lo)) & (x <= T(hi)) else d_neg
    return d_pos if x > T(0.0) else d_neg


@jit
def mish_forward_saving(x, p):
    r"""``(y, d)``: Mish and its derivative d = Mish'(x) (``mish_backward``),
    from one exp for both (the chain kernel keeps d for the block)."""
    T = type(x)
    E, K = _mish_terms(x)
    n = E * (E + T(2.0))
    positive = x > T(0.0)
    # for x > 0 this is q = 2E^2/K, which Mish' uses too
    ratio = (T(2.0) * (E * E) if positive else n) / (K if positive else n + T(2.0))
    y_pos = x if ratio == T(0.0) else fma(-x, ratio, x)  # +inf: x, not inf*0
    return (y_pos if positive else x * ratio), _mish_derivative(x, E, ratio)


@jit
def mish_forward(x, p):
    r""":math:`x \tanh(\mathrm{softplus}(x))`, from E = exp(-|x|) alone.

    tanh(log1p(e)) = n/(n + 2), n = e (e + 2) = (1 + e)^2 - 1, e = e^x: for
    x <= 0 (e = E <= 1, no cancellation) ``x * (n/(n + 2))``; for x > 0 the
    same value as ``x - x*q`` in one fma, q = 1 - tanh(softplus(x)) = 2E^2/K:
    torch's tanh rounded to float32 and then the product rounded again was up
    to 2.75 ulp off on [0, 1) and 0.95 on [4, 8) (torch 2.1 and 0.95).  A
    30-layer chain of Mish repeats that product 30 times (x = 8.86: torch's
    tanh rounds up to 1, a correctly rounded one down, and the product then
    rounds down every layer: 3x torch's error in the chain).  One exp and one
    division, where torch's formula takes exp, log1p and tanh.  q = 0 (x > 44
    in float32, and +inf) gives Mish(x) = x; -inf gives NaN (-inf * 0), -0.0
    stays -0.0.
    """
    return mish_forward_saving(x, p)[0]


@jit
def mish_backward_saved(g, x, d, p):
    r"""``g * d``, d = Mish'(x) from the forward (``mish_forward_saving``)."""
    return g * d


@jit
def mish_backward(g, x, y, p):
    r"""``g * Mish'(x)``, Mish' = tsp + x s (1 - tsp^2), s = sigmoid(x), tsp =
    tanh(softplus(x)), in closed form from E = exp(-|x|) alone.

    x > 0: tsp = 1 - q, 1 - tsp^2 = q (2 - q), s = 1/(1 + E), so Mish' =
    ``fma(q*x, (2 - q)/(1 + E), 1 - q)``.  x <= 0 (e = E): Mish' = e P/D^2 with
    D = e^2 + 2e + 2 and P = 4(1 + x) + e(6 + 4x + e(4 + e)), whose first
    term is exact (1 + x: Sterbenz) and carries torch's cancellation
    tsp - |x| s (1 - tsp^2) (3.3x at x = -2).  On [-1.5, -0.9], around Mish's
    zero at -1.1924, ``(x - x0) R(x)`` (_mish_grad_near_root): torch's form is
    off by up to 98 ulp there, any sum of the terms by as much.  One exp,
    where torch's backward takes two exps, log1p and tanh.  Mish'(0) = 0.6;
    NaN at +-inf.
    """
    return mish_backward_saved(g, x, mish_forward_saving(x, p)[1], p)


# ----------------------------------------------------------------------------
# Hardswish, Hardsigmoid (no parameters; Hardsigmoid: p = (float32(1/6), -, -, -))
# ----------------------------------------------------------------------------
@jit
def _relu6_shifted(x):
    """``min(max(x + 3, 0), 6)`` as std::max/std::min compare: NaN stays NaN."""
    T = type(x)
    c = x + T(3.0)
    c = T(0.0) if c < T(0.0) else c
    return T(6.0) if c > T(6.0) else c


@jit
def hardswish_forward(x, p):
    r""":math:`x \cdot \mathrm{ReLU6}(x + 3)/6`: ``(x*min(max(x + 3, 0), 6))/6``.

    -0.0 at x <= -3 (x*0), NaN at -inf (-inf*0), as torch gives.
    """
    T = type(x)
    return (x * _relu6_shifted(x)) / T(6.0)


@jit
def hardswish_backward(g, x, y, p):
    r"""``x <= -3 ? 0 : (x < 3 ? g*(x/3 + 0.5) : g)`` (torch 2.13).

    Kinks: Hardswish'(-3) = 0, Hardswish'(3) = 1.  torch <= 2.6 gave -0.5
    and 1.5 there (``x < -3 ? 0 : x <= 3 ? ...``).
    """
    T = type(x)
    if x <= T(-3.0):
        return T(0.0)
    if x < T(3.0):
        return g * ((x / T(3.0)) + T(0.5))
    return g


@jit
def hardsigmoid_forward(x, p):
    r""":math:`\mathrm{ReLU6}(x + 3)/6`: ``min(max(x + 3, 0), 6)/6``."""
    T = type(x)
    return _relu6_shifted(x) / T(6.0)


@jit
def hardsigmoid_backward(g, x, y, p):
    r"""``(x > -3 && x < 3) ? g*one_sixth : 0``: zero at both kinks.

    one_sixth is ATen's ``1.0f/6.0f`` (0.16666667163372040), in float64 too.
    """
    T = type(x)
    if x > T(-3.0) and x < T(3.0):
        return g * p[0]
    return T(0.0)


# ----------------------------------------------------------------------------
# Threshold.  p = (threshold, value, -, -)
# ----------------------------------------------------------------------------
@jit
def threshold_forward(x, p):
    r"""``x <= threshold ? value : x``; NaN stays NaN."""
    if x <= p[0]:
        return p[1]
    return x


@jit
def threshold_backward(g, x, y, p):
    r"""``threshold_backward(g, x, threshold)``: ``x <= threshold ? 0 : g``,
    zero at the kink."""
    T = type(x)
    if x <= p[0]:
        return T(0.0)
    return g


# Saved values: a forward that computes what its backward needs again names the
# pair that passes it along -- torch's saved tensors (LogSigmoid's buffer,
# Tanhshrink's tanh) and values torch's backward computes again (GELU's
# derivative, from the erf and normal tail the forward already evaluated;
# GELU(tanh)'s tanh; SiLU's sigmoid, from the forward's exp; Mish's
# derivative, from its exp).  The CPU chain kernel keeps it for the block
# (chain.core.make_block_chain) instead of computing it twice; both pairs give
# the same bits, by construction (tests/test_saved_values.py).
log_sigmoid_forward.saving = (log_sigmoid_forward_saving, log_sigmoid_backward_saved)
tanhshrink_forward.saving = (tanhshrink_forward_saving, tanhshrink_backward_saved)
gelu_forward.saving = (gelu_forward_saving, gelu_backward_saved)
gelu_tanh_forward.saving = (gelu_tanh_forward_saving, gelu_tanh_backward_saved)
silu_forward.saving = (silu_forward_saving, silu_backward_saved)
mish_forward.saving = (mish_forward_saving, mish_backward_saved)
