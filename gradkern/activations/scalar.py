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
from .._numba.vecmath import vexp, vexpm1, vlog1p, vsigmoid, vtanh

# error_model="numpy": IEEE division (x/0 -> inf/NaN) as in PyTorch, and no
# ZeroDivisionError check, whose branch would keep loops from vectorising.
# forceinline: LLVM alwaysinline.  LLVM's own inliner declined e.g. Softplus's
# forward (log1p(exp) + a select) and so left a call in the kernel's loop:
# scalar code, 9.5 ns/element instead of 1.6 measured.
jit = numba.njit(error_model="numpy", forceinline=True)


# Transcendentals (vexp, vexpm1, vlog1p, vtanh, vsigmoid): gradkern._numba.vecmath's branch-free
# float32/float64 implementations (0.8-1.8 ulp, measured), so a loop over
# samples becomes SIMD code with no libm call and no float64 in float32 code.


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
def log_sigmoid_forward(x, p):
    r"""``min(x, 0) - log1p(exp(-|x|))``, PyTorch's overflow-free form."""
    T = type(x)
    m = T(0.0) if x >= T(0.0) else x  # NaN-propagating min(x, 0)
    return m - vlog1p(vexp(-abs(x)))


@jit
def log_sigmoid_backward(g, x, y, p):
    r"""With b = exp(-|x|): ``x < 0 ? (1 - b/(1+b))*g : (0 + b/(1+b))*g``.

    LogSigmoid'(0) = 0.5; +inf -> 0, -inf -> 1.
    """
    T = type(x)
    b = vexp(-abs(x))
    q = b / (T(1.0) + b)
    if x < T(0.0):
        return (T(1.0) - q) * g
    return (T(0.0) + q) * g


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
    LLVM kept the loop scalar (8.8 ns/element vs 1.4 measured).
    """
    xb = x * p[0]
    smooth = vlog1p(vexp(xb)) / p[0]
    return x if xb > p[1] else smooth


@jit
def softplus_backward(g, x, y, p):
    r"""``z = exp(x*beta); x*beta > threshold ? g : (g*z)/(z+1)``.

    At x*beta == threshold the smooth branch is taken; in float32 z + 1 == z
    there (z = 4.85e8 at the default threshold 20), so it gives exactly 1.0
    for g = 1.
    """
    T = type(x)
    xb = x * p[0]
    if xb > p[1]:
        return g
    z = vexp(xb)
    return (g * z) / (z + T(1.0))


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
def tanhshrink_forward(x, p):
    r"""``x - tanh(x)``."""
    return x - vtanh(x)


@jit
def tanhshrink_backward(g, x, y, p):
    r"""``g + (-g)*fma(-t, t, 1)`` with t = tanh(x) (Sub then Tanh backward)."""
    T = type(x)
    t = vtanh(x)
    return g + (-g) * fma(-t, t, T(1.0))
