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

from .._numba.intrinsics import fma
from .._numba.vecmath import verf, vexp, vexpm1, vlog1p, vsigmoid, vtanh

# error_model="numpy": IEEE division (x/0 -> inf/NaN) as in PyTorch, and no
# ZeroDivisionError check, whose branch would keep loops from vectorising.
# forceinline: LLVM alwaysinline.  LLVM's own inliner declined e.g. Softplus's
# forward (log1p(exp) + a select) and so left a call in the kernel's loop:
# scalar code, 9.5 ns/element instead of 1.6 measured.
jit = numba.njit(error_model="numpy", forceinline=True)


# Transcendentals (vexp, vexpm1, vlog1p, vtanh, vsigmoid, verf): gradkern._numba.vecmath's
# branch-free float32/float64 implementations (float32 tanh and sigmoid correctly rounded,
# the others 0.6-1.8 ulp, measured), so a loop over samples becomes SIMD code with no libm
# call and no float64 in float32 code.

INF = float("inf")


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
def softplus_forward_saving(x, p):
    r"""``(y, z)``: y = ``x*beta > threshold ? x : log1p(z) / beta`` with
    z = exp(x*beta), and z, which the backward needs again.

    The linear branch returns x itself, and only when x*beta > threshold
    strictly.  Written as a select of both branches: with an early ``return x``
    LLVM kept the loop scalar (8.8 ns/element vs 1.4 measured).
    """
    xb = x * p[0]
    z = vexp(xb)
    smooth = vlog1p(z) / p[0]
    return (x if xb > p[1] else smooth), z


@jit
def softplus_forward(x, p):
    r"""``x*beta > threshold ? x : log1p(exp(x*beta)) / beta``."""
    return softplus_forward_saving(x, p)[0]


@jit
def softplus_backward_saved(g, x, z, p):
    r"""``x*beta > threshold ? g : (g*z)/(z+1)`` with the forward's z = exp(x*beta):
    torch's backward computes the same exp from the input."""
    T = type(x)
    if x * p[0] > p[1]:
        return g
    return (g * z) / (z + T(1.0))


@jit
def softplus_backward(g, x, y, p):
    r"""``z = exp(x*beta); x*beta > threshold ? g : (g*z)/(z+1)``.

    At x*beta == threshold the smooth branch is taken; in float32 z + 1 == z
    there (z = 4.85e8 at the default threshold 20), so it gives exactly 1.0
    for g = 1.
    """
    return softplus_backward_saved(g, x, vexp(x * p[0]), p)


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


# Saved values: a forward that computes what its backward needs again (torch
# saves it: LogSigmoid's buffer, Tanhshrink's tanh; Softplus's exp is the same
# value recomputed) names the pair that passes it along.  The CPU chain kernel
# keeps it for the block (chain.core.make_block_chain) instead of computing the
# exp or tanh twice; both pairs give the same bits, by construction.
log_sigmoid_forward.saving = (log_sigmoid_forward_saving, log_sigmoid_backward_saved)
softplus_forward.saving = (softplus_forward_saving, softplus_backward_saved)
tanhshrink_forward.saving = (tanhshrink_forward_saving, tanhshrink_backward_saved)


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
def gelu_forward(x, p):
    r"""GELU(approximate="none"): :math:`x \Phi(x) = \frac{x}{2}(1 + \mathrm{erf}(x/\sqrt 2))`.

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
    """
    T = type(x)
    if p[2] != T(0.0):
        h = x * T(0.5)
        y = fma(h, verf(x * p[0]), h)
        # a zero result (x = +-0, the smallest subnormals, or erf = -1 from
        # x < -5.9) has x's sign in oneDNN's x*(1 + erf)*0.5; fma's exact
        # h - h would be +0
        y = x * T(0.0) if y == T(0.0) else y
        y = x + x if x + x == T(INF) else y  # x*(1 + erf) overflows, as oneDNN's
        return x - x if x == T(INF) else y  # NaN at +inf, as oneDNN's
    return (x * T(0.5)) * (T(1.0) + verf(x * p[0]))


@jit
def gelu_backward(g, x, y, p):
    r"""``g * (cdf + x*pdf)`` with cdf = 0.5*(1 + erf(x*M_SQRT1_2)) and
    pdf = kBeta*exp(x*x*-0.5), not fused.  GELU'(0) = 0.5; NaN at +-inf
    (inf*0), as torch's ATen and oneDNN kernels both give."""
    T = type(x)
    cdf = T(0.5) * (T(1.0) + verf(x * p[0]))
    pdf = p[1] * vexp((x * x) * T(-0.5))
    return g * (cdf + x * pdf)


@jit
def gelu_tanh_forward(x, p):
    r"""GELU(approximate="tanh"):
    :math:`\frac{x}{2}\left(1 + \tanh\left(\sqrt{2/\pi}\,(x + \kappa x^3)\right)\right)`.

    ``(0.5*x)*(1 + tanh(kBeta*fma(kKappa, (x*x)*x, x)))``; p = (kBeta =
    sqrt(2/pi), kKappa = 0.044715, 3*kKappa formed in the dtype, 1).
    """
    T = type(x)
    inner = p[0] * fma(p[1], (x * x) * x, x)
    return (T(0.5) * x) * (T(1.0) + vtanh(inner))


@jit
def gelu_tanh_backward(g, x, y, p):
    r"""``g*(0.5*(1 + t) + ((0.5*x)*fma(-t, t, 1))*(kBeta*fma(3*kKappa, x*x, 1)))``,
    t = tanh(inner).  ``3*kKappa`` is formed in the dtype: float32(3)*
    float32(0.044715) = 0x3E095D4E, one ulp below float32(0.134145).
    GELU'(0) = 0.5; NaN where x*x overflows (|x| >= 1.9e19 in float32:
    0 * inf), as torch gives."""
    T = type(x)
    x_sq = x * x
    t = vtanh(p[0] * fma(p[1], x_sq * x, x))
    left = T(0.5) * x
    left_derivative = T(0.5) * (T(1.0) + t)
    right_derivative = fma(-t, t, T(1.0))
    inner_derivative = p[0] * fma(p[2], x_sq, T(1.0))
    return g * (left_derivative + (left * right_derivative) * inner_derivative)


# ----------------------------------------------------------------------------
# SiLU, Mish (no parameters).  A plain ``.backward()`` runs the kernels
# ``silu_backward`` / ``mish_backward`` (with create_graph, as torch.func does,
# torch composes the same formula from separate ops instead).  Both checked bit
# for bit against torch's scalar path as the GELU formulas above (100%).
# ----------------------------------------------------------------------------
@jit
def silu_forward(x, p):
    r""":math:`x\,\sigma(x)`: ``x / (1 + exp(-x))``."""
    T = type(x)
    return x / (T(1.0) + vexp(-x))


@jit
def silu_backward(g, x, y, p):
    r"""``(g*s)*fma(x, 1 - s, 1)``, s = 1/(1 + exp(-x)) (fused as torch's build
    fuses it).  SiLU'(0) = 0.5; NaN at +-inf."""
    T = type(x)
    s = T(1.0) / (T(1.0) + vexp(-x))
    return (g * s) * fma(x, T(1.0) - s, T(1.0))


@jit
def mish_forward(x, p):
    r""":math:`x \tanh(\mathrm{softplus}(x))`.

    torch: ``x * tanh(log1p(exp(x)))``, kept for x <= 0.  For x > 0 the
    same value as ``x - x*q`` with q = 1 - tanh(softplus(x)) = 2/(n + 2),
    n = e^x (e^x + 2), in one fma: tanh rounded to float32 and then the
    product rounded again was up to 2.75 ulp off on [0, 1) and 0.95 on
    [4, 8) (torch 2.1 and 0.95); this is 1.8 and 0.50 (the last correctly
    rounded).  A 30-layer chain of Mish repeats that product 30 times (x =
    8.86: torch's tanh rounds up to 1, a correctly rounded one down, and the
    product then rounds down every layer: 3x torch's error in the chain).
    Overflow of n (x > 44 in float32) gives q = 0 and Mish(x) = x.
    """
    T = type(x)
    e = vexp(x)
    n = e * (e + T(2.0))
    q = T(2.0) / (n + T(2.0))
    positive = x if q == T(0.0) else fma(-x, q, x)  # +inf: x, not inf*0
    return positive if x > T(0.0) else x * vtanh(vlog1p(e))  # -0.0 stays -0.0


@jit
def mish_backward(g, x, y, p):
    r"""``g * fma(x*s, fma(-tsp, tsp, 1), tsp)``, s = 1/(1 + exp(-x)),
    tsp = tanh(log1p(exp(x))).  Mish'(0) = tanh(log 2) = 0.6; NaN at +-inf."""
    T = type(x)
    s = T(1.0) / (T(1.0) + vexp(-x))
    tsp = vtanh(vlog1p(vexp(x)))
    return g * fma(x * s, fma(-tsp, tsp, T(1.0)), tsp)


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
