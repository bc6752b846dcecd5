/*
 * gradkern.cuh -- every activation's forward and backward, and the per-sample
 * chain rule, as __host__ __device__ templates for float and double.
 *
 * Compiled twice: by nvcc into the CUDA kernels (chain.cu) and by g++ into the
 * OpenMP host library (chain_host.cpp), so the host library -- tested against
 * PyTorch autograd on machines without a GPU -- runs exactly this code.
 *
 * Conventions (PyTorch 2.13 CPU; ../../shared/torch-conventions.md, and the
 * Numba definitions in gradkern/activations/scalar.py, which the tests check this against):
 * - backward(g, x, y, p) is the vector-Jacobian product g * dy/dx in PyTorch's
 *   order of operations (SELU's left branch is ((g*s)*negcoef)*exp(x*s), not
 *   g*(negcoef*exp(..))), from the input x or the output y as PyTorch does
 *   (Tanh, Sigmoid and ReLU use y).  Rounding then matches: piecewise-linear
 *   activations are bit-identical to autograd.
 * - no FMA contraction (g++ -ffp-contract=off, nvcc --fmad=false) except where
 *   PyTorch's build fuses: Tanh and Tanhshrink backward, fma(-y, y, 1), and
 *   GELU('tanh'), SiLU and Mish (explicit fma_ below).
 * - float exp, expm1, log1p, tanh and erf are evaluated in double and rounded once.
 *   glibc's tanhf measured 2.6x torch's worst error against float64 in the
 *   parity suite (torch uses MKL VML_HA / Sleef u10); the double route is
 *   correctly rounded up to double rounding.  For double it is a no-op.
 * - p is the 4-slot parameter array, already rounded to T by the caller
 *   (gradkern.activations); slot meanings are in gradkern.h.
 * - the value at a NaN pre-activation is left to the chain (NaN gradient).
 */
#pragma once

#include <math.h>
#include <stdint.h>

#include <type_traits>

#include "activations.h"

#ifdef __CUDACC__
#define GK_HD __host__ __device__ __forceinline__
#else
#define GK_HD inline
#endif

namespace gk {

template <typename T>
struct Params {
    T v[4];
    GK_HD T operator[](int i) const { return v[i]; }
};

// ---------------------------------------------------------------------------
// math helpers: one overload per type, so no call silently goes through double
// ---------------------------------------------------------------------------
GK_HD float abs_(float x) { return fabsf(x); }
GK_HD double abs_(double x) { return fabs(x); }
// explicit fused multiply-add, one rounding (not affected by -ffp-contract=off)
GK_HD float fma_(float a, float b, float c) { return fmaf(a, b, c); }
GK_HD double fma_(double a, double b, double c) { return fma(a, b, c); }
// transcendentals through double, rounded once to T (see header comment)
template <typename T> GK_HD T exp_(T x) { return T(exp(double(x))); }
template <typename T> GK_HD T expm1_(T x) { return T(expm1(double(x))); }
template <typename T> GK_HD T log1p_(T x) { return T(log1p(double(x))); }
template <typename T> GK_HD T tanh_(T x) { return T(tanh(double(x))); }
template <typename T> GK_HD T erf_(T x) { return T(erf(double(x))); }
// Phi(-u) = erfc(u/sqrt 2)/2 with u/sqrt 2 formed in double (rounding it in float
// would cost u^2 half-ulps): GELU's x < -1, where 1 + erf(x/sqrt 2) cancels
template <typename T> GK_HD T ndtr_neg_(T u) { return T(0.5 * erfc(double(u) * kSqrt1_2)); }

// Linear(1, 1) is a matmul that accumulates from +0: 0 + a*b turns a -0.0
// product into +0.0 and changes nothing else.  Every product of the chain goes
// through here, which is what makes even the sign of zero match autograd.
template <typename T> GK_HD T linear(T a, T b) { return a * b + T(0); }

// ---------------------------------------------------------------------------
// ELU, CELU, SELU: PyTorch's one `elu` kernel.  p = (negcoef, poscoef,
// input_scale forward, input_scale backward)
// ---------------------------------------------------------------------------
// x < 0 ? expm1(x*s)*negcoef : x*poscoef        (2.13 uses expm1, <= 2.10 exp-1)
template <typename T> GK_HD T elu_forward(T x, const Params<T>& p) {
    if (x < T(0)) return expm1_(x * p[2]) * p[0];
    return x * p[1];
}
// x <= 0 ? ((g*s)*negcoef)*exp(x*s) : g*poscoef, from the input.  `<=`: the kink
// takes the left branch, ELU'(0) = CELU'(0) = 1, SELU'(0) = 1.7580993 (alpha*scale).
template <typename T> GK_HD T elu_backward(T g, T x, T y, const Params<T>& p) {
    if (x <= T(0)) return ((g * p[3]) * p[0]) * exp_(x * p[3]);
    return g * p[1];
}

// ---------------------------------------------------------------------------
// Hardtanh, ReLU6.  p = (min_val, max_val)
// ---------------------------------------------------------------------------
// clamp: keeps NaN and -0.0
template <typename T> GK_HD T hardtanh_forward(T x, const Params<T>& p) {
    if (x < p[0]) return p[0];
    if (x > p[1]) return p[1];
    return x;
}
// zero *at* both kinks: Hardtanh'(+-1) = 0, ReLU6'(0) = ReLU6'(6) = 0
template <typename T> GK_HD T hardtanh_backward(T g, T x, T y, const Params<T>& p) {
    if (x <= p[0] || x >= p[1]) return T(0);
    return g;
}

// ---------------------------------------------------------------------------
// LeakyReLU, PReLU, RReLU.  p = (slope)
// ---------------------------------------------------------------------------
template <typename T> GK_HD T leaky_relu_forward(T x, const Params<T>& p) {
    if (x > T(0)) return x;
    return x * p[0];
}
// x > 0 ? g : g*slope: LeakyReLU'(0) = slope (0.0099999998f)
template <typename T> GK_HD T leaky_relu_backward(T g, T x, T y, const Params<T>& p) {
    if (x > T(0)) return g;
    return g * p[0];
}
// x > 0 ? g : weight*g (PyTorch multiplies the weight first)
template <typename T> GK_HD T prelu_backward(T g, T x, T y, const Params<T>& p) {
    if (x > T(0)) return g;
    return p[0] * g;
}
// training-mode RReLU, p[0] = this sample's noise at this layer; `<=` as in
// _rrelu_with_noise_train, so zero takes the noise
template <typename T> GK_HD T rrelu_train_forward(T x, const Params<T>& p) {
    if (x <= T(0)) return x * p[0];
    return x;
}
// noise*g, with noise = r where x <= 0 and 1 elsewhere (1*g == g)
template <typename T> GK_HD T rrelu_train_backward(T g, T x, T y, const Params<T>& p) {
    if (x <= T(0)) return p[0] * g;
    return g;
}

// ---------------------------------------------------------------------------
// ReLU
// ---------------------------------------------------------------------------
// clamp_min(x, 0): ReLU(-0.0) = -0.0, NaN stays NaN
template <typename T> GK_HD T relu_forward(T x, const Params<T>& p) {
    if (x < T(0)) return T(0);
    return x;
}
// threshold_backward(g, y, 0) = y <= 0 ? 0 : g, from the output
template <typename T> GK_HD T relu_backward(T g, T x, T y, const Params<T>& p) {
    if (y <= T(0)) return T(0);
    return g;
}

// ---------------------------------------------------------------------------
// LogSigmoid, Sigmoid
// ---------------------------------------------------------------------------
// min(x, 0) - log1p(exp(-|x|)), PyTorch's overflow-free form
template <typename T> GK_HD T log_sigmoid_forward(T x, const Params<T>& p) {
    T m = x >= T(0) ? T(0) : x;  // NaN-propagating min(x, 0)
    return m - log1p_(exp_(-abs_(x)));
}
// b = exp(-|x|): x < 0 ? (1 - b/(1+b))*g : (0 + b/(1+b))*g; LogSigmoid'(0) = 0.5
template <typename T> GK_HD T log_sigmoid_backward(T g, T x, T y, const Params<T>& p) {
    T b = exp_(-abs_(x));
    T q = b / (T(1) + b);
    if (x < T(0)) return (T(1) - q) * g;
    return (T(0) + q) * g;
}
template <typename T> GK_HD T sigmoid_forward(T x, const Params<T>& p) {
    return T(1) / (T(1) + exp_(-x));
}
// (g*(1-y))*y from the output: Sigmoid'(0) = 0.25
template <typename T> GK_HD T sigmoid_backward(T g, T x, T y, const Params<T>& p) {
    return (g * (T(1) - y)) * y;
}

// ---------------------------------------------------------------------------
// Softplus.  p = (beta, threshold)
// ---------------------------------------------------------------------------
// x*beta > threshold ? x : log1p(exp(x*beta))/beta  (x itself, strictly greater)
template <typename T> GK_HD T softplus_forward(T x, const Params<T>& p) {
    T xb = x * p[0];
    if (xb > p[1]) return x;
    return log1p_(exp_(xb)) / p[0];
}
// x*beta > threshold ? g : g*sigmoid(x*beta), as scalar.py (torch's (g*z)/(z + 1),
// z = exp(x*beta), rounds z + 1 first).  At x*beta == threshold the smooth branch:
// sigmoid(20) rounds to 1 in float, exactly 1 for g = 1.
template <typename T> GK_HD T softplus_backward(T g, T x, T y, const Params<T>& p) {
    T xb = x * p[0];
    if (xb > p[1]) return g;
    return g * sigmoid_forward(xb, p);
}

// ---------------------------------------------------------------------------
// Softshrink, Hardshrink.  p = (lambd)
// ---------------------------------------------------------------------------
// +0.0 inside the band (PyTorch's SIMD body; its scalar tail gives x*0);
// NaN falls through both tests and stays NaN via x + l
template <typename T> GK_HD T softshrink_forward(T x, const Params<T>& p) {
    if (x >= -p[0] && x <= p[0]) return T(0);
    if (x > p[0]) return x - p[0];
    return x + p[0];
}
template <typename T> GK_HD T hardshrink_forward(T x, const Params<T>& p) {
    if (x >= -p[0] && x <= p[0]) return T(0);
    return x;
}
// zero on the closed band, kinks included
template <typename T> GK_HD T shrink_backward(T g, T x, T y, const Params<T>& p) {
    if (x >= -p[0] && x <= p[0]) return T(0);
    return g;
}

// ---------------------------------------------------------------------------
// Softsign, Tanh, Tanhshrink
// ---------------------------------------------------------------------------
template <typename T> GK_HD T softsign_forward(T x, const Params<T>& p) {
    return x / (abs_(x) + T(1));
}
// PyTorch differentiates the composite x/(|x|+1) op by op (Div, Add, Abs):
// g/d + ((-g)*((x/d)/d))*sgn(x), d = |x| + 1.  Algebraically g/d^2, but only
// this order matches bit for bit.  Softsign'(0) = 1.
template <typename T> GK_HD T softsign_backward(T g, T x, T y, const Params<T>& p) {
    T d = abs_(x) + T(1);
    T s = x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
    return g / d + ((-g) * ((x / d) / d)) * s;
}
template <typename T> GK_HD T tanh_forward(T x, const Params<T>& p) { return tanh_(x); }
// g*fma(-y, y, 1), from the output, fused as PyTorch's build fuses it
template <typename T> GK_HD T tanh_backward(T g, T x, T y, const Params<T>& p) {
    return g * fma_(-y, y, T(1));
}
template <typename T> GK_HD T tanhshrink_forward(T x, const Params<T>& p) {
    return x - tanh_(x);
}
// Sub then Tanh backward: g + (-g)*fma(-t, t, 1) with t = tanh(x)
template <typename T> GK_HD T tanhshrink_backward(T g, T x, T y, const Params<T>& p) {
    T t = tanh_(x);
    return g + (-g) * fma_(-t, t, T(1));
}

// ---------------------------------------------------------------------------
// GELU.  approximate="none": p = (M_SQRT1_2, kBeta, onednn, 0); "tanh":
// p = (sqrt(2/pi), kappa, 3*kappa formed in T, 1).  ATen's scalar order of
// operations, checked bit for bit against torch's scalar path: the inner
// kappa*x^3 + x, 1 - t*t and 3*kappa*x^2 + 1 are fused, the outer sums not.
// ---------------------------------------------------------------------------
// (x*0.5)*(1 + erf(x*M_SQRT1_2)) (ATen, double).  onednn (float: torch runs float32
// GELU in oneDNN): oneDNN's edges -- x*(1 + erf) overflows from 2^127 on, NaN at
// +inf -- and one rounding after erf, fma(x/2, erf, x/2), as scalar.py explains
// Below x = -1 (finite) both dtypes take x*Phi(x) from erfc: 1 + erf cancels there.
template <typename T> GK_HD T gelu_erf_forward(T x, const Params<T>& p) {
    if (x < T(-1) && x > -T(INFINITY)) return x * ndtr_neg_(-x);
    if (p[2] != T(0)) {
        T h = x * T(0.5);
        T y = fma_(h, erf_(x * p[0]), h);
        if (x + x == T(INFINITY)) y = x + x;
        return x == T(INFINITY) ? x - x : y;
    }
    return (x * T(0.5)) * (T(1) + erf_(x * p[0]));
}
// g*(cdf + x*pdf), cdf = 0.5*(1 + erf(x*M_SQRT1_2)), pdf = kBeta*exp(x*x*-0.5): GELU'(0) = 0.5.
// Below x = -1 the cdf from erfc, as scalar.py's tail.  (scalar.py's polynomial
// around GELU's zero at -0.7518 has no copy here yet: near it this form keeps
// torch's absolute error, a few 1e-8.)
template <typename T> GK_HD T gelu_erf_backward(T g, T x, T y, const Params<T>& p) {
    T cdf = x < T(-1) ? ndtr_neg_(-x) : T(0.5) * (T(1) + erf_(x * p[0]));
    T pdf = p[1] * exp_((x * x) * T(-0.5));
    return g * (cdf + x * pdf);
}
// (0.5*x)*(1 + tanh(kBeta*fma(kappa, x^3, x)))
template <typename T> GK_HD T gelu_tanh_forward(T x, const Params<T>& p) {
    T inner = p[0] * fma_(p[1], (x * x) * x, x);
    return (T(0.5) * x) * (T(1) + tanh_(inner));
}
// g*(0.5*(1 + t) + ((0.5*x)*fma(-t, t, 1))*(kBeta*fma(3*kappa, x*x, 1)))
template <typename T> GK_HD T gelu_tanh_backward(T g, T x, T y, const Params<T>& p) {
    T x_sq = x * x;
    T t = tanh_(p[0] * fma_(p[1], x_sq * x, x));
    T left = T(0.5) * x;
    T left_derivative = T(0.5) * (T(1) + t);
    T right_derivative = fma_(-t, t, T(1));
    T inner_derivative = p[0] * fma_(p[2], x_sq, T(1));
    return g * (left_derivative + (left * right_derivative) * inner_derivative);
}
// one library number for both: slot 3 says which formula (uniform across a launch)
template <typename T> GK_HD T gelu_forward(T x, const Params<T>& p) {
    return p[3] != T(0) ? gelu_tanh_forward(x, p) : gelu_erf_forward(x, p);
}
template <typename T> GK_HD T gelu_backward(T g, T x, T y, const Params<T>& p) {
    return p[3] != T(0) ? gelu_tanh_backward(g, x, y, p) : gelu_erf_backward(g, x, y, p);
}

// ---------------------------------------------------------------------------
// SiLU, Mish (the kernels a plain .backward() runs; fused as torch's build fuses)
// ---------------------------------------------------------------------------
template <typename T> GK_HD T silu_forward(T x, const Params<T>& p) {
    return x / (T(1) + exp_(-x));
}
// (g*s)*fma(x, 1 - s, 1), s = sigmoid(x): SiLU'(0) = 0.5
template <typename T> GK_HD T silu_backward(T g, T x, T y, const Params<T>& p) {
    T s = T(1) / (T(1) + exp_(-x));
    return (g * s) * fma_(x, T(1) - s, T(1));
}
// Mish from E = exp(-|x|) alone (scalar.py explains): K = 1 + 2E + 2E^2.
// x <= 0: x * n/(n + 2), n = E(E + 2); x > 0: x - x*q in one fma, q = 2E^2/K
template <typename T> GK_HD T mish_forward(T x, const Params<T>& p) {
    T E = exp_(-abs_(x));
    if (!(x > T(0))) {  // -0.0 stays -0.0, NaN stays NaN, -inf gives NaN
        T n = E * (E + T(2));
        return x * (n / (n + T(2)));
    }
    T q = T(2) * (E * E) / fma_(E + E, E + T(1), T(1));
    return q == T(0) ? x : fma_(-x, q, x);
}
// x > 0: fma(q*x, (2 - q)/(1 + E), 1 - q); x <= 0: E*P/D^2, D = E^2 + 2E + 2,
// P = 4(1 + x) + E(6 + 4x + E(4 + E)).  Mish'(0) = 0.6; NaN at +-inf.  (scalar.py's
// polynomial around Mish's zero at -1.1924 has no copy here yet: near it this form
// keeps an absolute error of a few 1e-8, as torch's.)
template <typename T> GK_HD T mish_backward(T g, T x, T y, const Params<T>& p) {
    T E = exp_(-abs_(x));
    if (x > T(0)) {
        T q = T(2) * (E * E) / fma_(E + E, E + T(1), T(1));
        return g * fma_(q * x, (T(2) - q) / (T(1) + E), T(1) - q);
    }
    T four_x = T(4) * (x > T(-1e30) ? x : T(-1e30));  // E = 0 there: no overflow of 4x
    T P = fma_(E, fma_(E, E + T(4), T(6) + four_x), four_x + T(4));
    T D = fma_(E, E + T(2), T(2));
    return g * ((E * P) / (D * D) + (x - x));  // NaN at -inf; an underflow is +0
}

// ---------------------------------------------------------------------------
// Hardswish, Hardsigmoid (p[0] = 1.0f/6.0f), Threshold (p = threshold, value)
// ---------------------------------------------------------------------------
// min(max(x + 3, 0), 6) with std::max/std::min's comparisons: NaN stays NaN
template <typename T> GK_HD T relu6_shifted(T x) {
    T c = x + T(3);
    c = c < T(0) ? T(0) : c;
    return c > T(6) ? T(6) : c;
}
// (x*min(max(x + 3, 0), 6))/6: -0.0 at x <= -3, NaN at -inf
template <typename T> GK_HD T hardswish_forward(T x, const Params<T>& p) {
    return (x * relu6_shifted(x)) / T(6);
}
// torch 2.13: x <= -3 ? 0 : x < 3 ? g*(x/3 + 0.5) : g (kinks: 0 at -3, 1 at 3)
template <typename T> GK_HD T hardswish_backward(T g, T x, T y, const Params<T>& p) {
    if (x <= T(-3)) return T(0);
    if (x < T(3)) return g * ((x / T(3)) + T(0.5));
    return g;
}
template <typename T> GK_HD T hardsigmoid_forward(T x, const Params<T>& p) {
    return relu6_shifted(x) / T(6);
}
// (x > -3 && x < 3) ? g*one_sixth : 0, zero at both kinks
template <typename T> GK_HD T hardsigmoid_backward(T g, T x, T y, const Params<T>& p) {
    if (x > T(-3) && x < T(3)) return g * p[0];
    return T(0);
}
template <typename T> GK_HD T threshold_forward(T x, const Params<T>& p) {
    if (x <= p[0]) return p[1];
    return x;
}
// x <= threshold ? 0 : g, zero at the kink
template <typename T> GK_HD T threshold_backward(T g, T x, T y, const Params<T>& p) {
    if (x <= p[0]) return T(0);
    return g;
}

// ---------------------------------------------------------------------------
// (forward, backward) pairs as types, so a kernel is instantiated per pair.
// 20 pairs cover the 23 activations (ELU/CELU/SELU, Hardtanh/ReLU6 and
// LeakyReLU/RReLU-eval share theirs, differing only in parameters); which
// activation uses which pair is the list in activations.h.
// ---------------------------------------------------------------------------
#define GK_OPS(NAME, FWD, BWD)                                                       \
    struct NAME {                                                                    \
        template <typename T> GK_HD static T forward(T x, const Params<T>& p) {      \
            return FWD(x, p);                                                        \
        }                                                                            \
        template <typename T> GK_HD static T backward(T g, T x, T y, const Params<T>& p) { \
            return BWD(g, x, y, p);                                                  \
        }                                                                            \
    };
GK_OPS(EluOps, elu_forward, elu_backward)
GK_OPS(HardtanhOps, hardtanh_forward, hardtanh_backward)
GK_OPS(LeakyReluOps, leaky_relu_forward, leaky_relu_backward)
GK_OPS(PreluOps, leaky_relu_forward, prelu_backward)
GK_OPS(RreluTrainOps, rrelu_train_forward, rrelu_train_backward)
GK_OPS(ReluOps, relu_forward, relu_backward)
GK_OPS(LogSigmoidOps, log_sigmoid_forward, log_sigmoid_backward)
GK_OPS(SigmoidOps, sigmoid_forward, sigmoid_backward)
GK_OPS(SoftplusOps, softplus_forward, softplus_backward)
GK_OPS(SoftshrinkOps, softshrink_forward, shrink_backward)
GK_OPS(HardshrinkOps, hardshrink_forward, shrink_backward)
GK_OPS(SoftsignOps, softsign_forward, softsign_backward)
GK_OPS(TanhOps, tanh_forward, tanh_backward)
GK_OPS(TanhshrinkOps, tanhshrink_forward, tanhshrink_backward)
GK_OPS(GELUOps, gelu_forward, gelu_backward)
GK_OPS(SiLUOps, silu_forward, silu_backward)
GK_OPS(MishOps, mish_forward, mish_backward)
GK_OPS(HardswishOps, hardswish_forward, hardswish_backward)
GK_OPS(HardsigmoidOps, hardsigmoid_forward, hardsigmoid_backward)
GK_OPS(ThresholdOps, threshold_forward, threshold_backward)
#undef GK_OPS

// ---------------------------------------------------------------------------
// One sample of the chain, any depth, no scratch memory:
//   forward:  a_0 = x;  z_k = w_k*a_{k-1};  a_k = act(z_k)            k = 1..L
//   backward: g = 1;  g_z = act'(z_k).g  (the VJP above)
//             df/dw_k = g_z*a_{k-1};  g = g_z*w_k                     k = L..1
// The forward parks a_{k-1} in the sample's own weight-gradient row (slot k-1);
// the backward reads it back, recomputes z_k with the same single rounding, and
// overwrites the slot with df/dw_k.  NOISE: RReLU training, p[0] = noise[k].
// ---------------------------------------------------------------------------
template <typename Ops, bool NOISE, typename T>
GK_HD void chain_sample(T x, const T* __restrict__ w, int n_layers, Params<T> p,
                        const T* __restrict__ noise, T* __restrict__ gw, T* y_out, T* gx_out) {
    T a = x;
    for (int k = 0; k < n_layers; ++k) {
        gw[k] = a;
        if (NOISE) p.v[0] = noise[k];
        a = Ops::forward(linear(w[k], a), p);
    }
    *y_out = a;
    T g = T(1);
    T y = a;
    for (int k = n_layers - 1; k >= 0; --k) {
        T a_prev = gw[k];
        T z = linear(w[k], a_prev);
        if (NOISE) p.v[0] = noise[k];
        T gz = Ops::backward(g, z, y, p);
        // NaN in, NaN out: torch's own value here depends on its SIMD vs scalar path
        if (z != z) gz = z;
        gw[k] = linear(gz, a_prev);
        g = linear(gz, w[k]);
        y = a_prev;
    }
    *gx_out = g;
}

// Calls f(Ops{}, Bool<noise>{}) with the (forward, backward) pair that serves
// activation `act` (activations.h); returns GK_ERR_ACTIVATION for an unknown
// number.  Both libraries and the benchmark dispatch through here, so they
// agree on the mapping.
template <bool B> struct Bool { static constexpr bool value = B; };

// With noise, the training pair (RReLU: per-sample slopes); without, Ops (RReLU
// eval: LeakyReLU with slope (l+u)/2).  An activation without a training pair
// ignores noise here: check_args has refused it already.
template <typename Ops, typename TrainingOps, typename F>
void call_ops(bool noise, F& f) {
    if constexpr (std::is_void<TrainingOps>::value) {
        f(Ops{}, Bool<false>{});
    } else {
        if (noise) f(TrainingOps{}, Bool<true>{});
        else f(Ops{}, Bool<false>{});
    }
}

#define GK_DISPATCH_CASE_(NUMBER, NAME, OPS, TRAINING_OPS, ...)                                    \
    case NUMBER: call_ops<OPS, TRAINING_OPS>(noise, f); return GK_OK;
template <typename F>
int dispatch(int act, bool noise, F&& f) {
    switch (act) {
        GK_ACTIVATIONS(GK_DISPATCH_CASE_)
        default: return GK_ERR_ACTIVATION;
    }
}
#undef GK_DISPATCH_CASE_

// Whether `act` takes per-sample noise (has a training pair): the C API refuses
// noise for any other activation.
#define GK_TAKES_NOISE_CASE_(NUMBER, NAME, OPS, TRAINING_OPS, ...)                                 \
    case NUMBER: return !std::is_void<TRAINING_OPS>::value;
constexpr bool takes_noise(int act) {
    switch (act) {
        GK_ACTIVATIONS(GK_TAKES_NOISE_CASE_)
        default: return false;
    }
}
#undef GK_TAKES_NOISE_CASE_

}  // namespace gk
