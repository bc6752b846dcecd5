/*
 * activations.h -- the one list of the activations the native libraries carry.
 *
 * One line per activation:
 *
 *   X(number, name, Ops, TrainingOps, defaults)
 *
 *   number       its gk_activation in gradkern.h (written out there: ABI)
 *   name         the torch.nn class name gk_activation_name returns; gradkern
 *                reads the (number, name) pairs on load and maps its own names
 *                through them, so an activation without a line here is "not in
 *                this library" to gradkern, never a wrong function
 *   Ops          the (forward, backward) pair of gradkern.cuh that serves it
 *   TrainingOps  the pair used when per-sample noise is passed (RReLU in
 *                training mode), or void where noise is refused (GK_ERR_ARGUMENT)
 *   defaults     torch.nn's default parameters, (p0, p1, p2, p3) as expressions
 *                in the element type T, rounded as PyTorch rounds them
 *                (gk_default_params_*; slot meanings in gradkern.h)
 *
 * Expanded into the name table and the defaults (common.cpp), the noise check
 * and the dispatch switch (gradkern.cuh), so adding an activation to the
 * libraries is: its number in gradkern.h, its templates in gradkern.cuh, one
 * line here.  The static_asserts below and the switches' duplicate-case errors
 * make the list and the enum agree one to one at compile time.
 */
#pragma once

#include "gradkern.h"

namespace gk {

// ATen's SELU constants (double), as in torch/nn and gradkern.activations
constexpr double kSeluAlpha = 1.6732632423543772848170429916717;
constexpr double kSeluScale = 1.0507009873554804934193349852946;
// <math.h>'s M_SQRT1_2, M_SQRT2, M_2_SQRTPI, and ATen's GELU constants formed
// from them in double, as ATen's kernels form them
constexpr double kSqrt1_2 = 0.70710678118654752440;
constexpr double kSqrt2 = 1.41421356237309504880;
constexpr double k2SqrtPi = 1.12837916709551257390;
constexpr double kGeluBeta = k2SqrtPi * kSqrt1_2 * 0.5;      // 1/sqrt(2 pi), the erf form's pdf
constexpr double kGeluTanhBeta = kSqrt2 * k2SqrtPi * 0.5;   // sqrt(2/pi)
constexpr double kGeluKappa = 0.044715;

}  // namespace gk

// ELU, CELU: alpha = 1, so CELU's 1/alpha slots are 1 as well.
// SELU: T(alpha)*T(scale) = 1.7580993f = 0x3FE10966, not f32(alpha*scale in double).
// RReLU: the eval-mode slope (lower + upper)/2 in double, then rounded: 0.22916667f.
// GELU: approximate="none" (slot 3 = 0); slot 2 = 1 in float: torch's float32 GELU
// runs in oneDNN (gradkern.h).  Hardsigmoid: ATen's one_sixth is 1.0f/6.0f.
// Threshold: torch.nn has no defaults; gradkern's reference Threshold(0.1, 20).
#define GK_ACTIVATIONS(X)                                                                                                     \
    X(GK_ELU,         "ELU",        EluOps,        void,          (T(1) * T(1), T(1), T(1), T(1)))                            \
    X(GK_HARDTANH,    "Hardtanh",   HardtanhOps,   void,          (T(-1), T(1), T(0), T(0)))                                  \
    X(GK_LEAKY_RELU,  "LeakyReLU",  LeakyReluOps,  void,          (T(0.01), T(0), T(0), T(0)))                                \
    X(GK_LOG_SIGMOID, "LogSigmoid", LogSigmoidOps, void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_PRELU,       "PReLU",      PreluOps,      void,          (T(0.25), T(0), T(0), T(0)))                                \
    X(GK_RELU,        "ReLU",       ReluOps,       void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_RELU6,       "ReLU6",      HardtanhOps,   void,          (T(0), T(6), T(0), T(0)))                                   \
    X(GK_RRELU,       "RReLU",      LeakyReluOps,  RreluTrainOps, (T((1.0 / 8 + 1.0 / 3) / 2.0), T(0), T(0), T(0)))           \
    X(GK_SELU,        "SELU",       EluOps,        void,          (T(kSeluAlpha) * T(kSeluScale), T(kSeluScale), T(1), T(1))) \
    X(GK_CELU,        "CELU",       EluOps,        void,          (T(1) * T(1), T(1), T(1), T(1)))                            \
    X(GK_SIGMOID,     "Sigmoid",    SigmoidOps,    void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_SOFTPLUS,    "Softplus",   SoftplusOps,   void,          (T(1), T(20), T(0), T(0)))                                  \
    X(GK_SOFTSHRINK,  "Softshrink", SoftshrinkOps, void,          (T(0.5), T(0), T(0), T(0)))                                 \
    X(GK_SOFTSIGN,    "Softsign",   SoftsignOps,   void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_TANH,        "Tanh",       TanhOps,       void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_TANHSHRINK,  "Tanhshrink", TanhshrinkOps, void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_HARDSHRINK,  "Hardshrink", HardshrinkOps, void,          (T(0.5), T(0), T(0), T(0)))                                 \
    X(GK_GELU,        "GELU",       GELUOps,       void,          (T(kSqrt1_2), T(kGeluBeta), T(sizeof(T) == sizeof(float)), T(0))) \
    X(GK_SILU,        "SiLU",       SiLUOps,       void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_MISH,        "Mish",       MishOps,       void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_HARDSWISH,   "Hardswish",  HardswishOps,  void,          (T(0), T(0), T(0), T(0)))                                   \
    X(GK_HARDSIGMOID, "Hardsigmoid", HardsigmoidOps, void,        (T(1.0f / 6.0f), T(0), T(0), T(0)))                         \
    X(GK_THRESHOLD,   "Threshold",  ThresholdOps,  void,          (T(0.1), T(20), T(0), T(0)))

// every number below GK_NUM_ACTIVATIONS, as many lines as numbers; with no
// duplicate case in the switches, every number has exactly one line
#define GK_LIST_COUNT_(...) +1
static_assert(0 GK_ACTIVATIONS(GK_LIST_COUNT_) == GK_NUM_ACTIVATIONS,
              "activations.h needs one line per gk_activation number of gradkern.h");
#undef GK_LIST_COUNT_
#define GK_LIST_IN_RANGE_(NUMBER, NAME, ...)                                                       \
    static_assert(NUMBER >= 0 && NUMBER < GK_NUM_ACTIVATIONS, NAME " has no number in gradkern.h");
GK_ACTIVATIONS(GK_LIST_IN_RANGE_)
#undef GK_LIST_IN_RANGE_
