/*
 * common.cpp -- the C API functions both libraries carry: activation names,
 * status strings, torch.nn's default parameters.  Compiled into each library
 * (identical code, so a program linking both may take either copy).
 */
#include "gradkern.h"

namespace {

const char* const kNames[GK_NUM_ACTIVATIONS] = {
    "ELU", "Hardtanh", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU", "ReLU6", "RReLU", "SELU",
    "CELU", "Sigmoid", "Softplus", "Softshrink", "Softsign", "Tanh", "Tanhshrink", "Hardshrink"};

// ATen's SELU constants (double), as in torch/nn and gradkern.activations
const double kSeluAlpha = 1.6732632423543772848170429916717;
const double kSeluScale = 1.0507009873554804934193349852946;

// Rounded as PyTorch rounds Scalars: param.to<T>(); products of parameters are
// formed in T (ELU family negcoef = T(alpha)*T(scale)).  The Python side does
// not use these -- it passes act.kernel_params(dtype) -- so the tests compare
// the two.
template <typename T>
int default_params(int act, T p[4]) {
    if (act < 0 || act >= GK_NUM_ACTIVATIONS) return GK_ERR_ACTIVATION;
    p[0] = p[1] = p[2] = p[3] = T(0);
    switch (act) {
        case GK_ELU: case GK_CELU:  // alpha = 1: CELU's 1/alpha are 1 as well
            p[0] = T(1) * T(1); p[1] = T(1); p[2] = T(1); p[3] = T(1); break;
        case GK_SELU:  // 1.7580993f = 0x3FE10966, not f32(alpha*scale in double)
            p[0] = T(kSeluAlpha) * T(kSeluScale); p[1] = T(kSeluScale); p[2] = T(1); p[3] = T(1);
            break;
        case GK_HARDTANH: p[0] = T(-1); p[1] = T(1); break;
        case GK_RELU6: p[0] = T(0); p[1] = T(6); break;
        case GK_LEAKY_RELU: p[0] = T(0.01); break;
        case GK_PRELU: p[0] = T(0.25); break;
        case GK_RRELU: p[0] = T((1.0 / 8 + 1.0 / 3) / 2.0); break;  // eval slope 0.22916667f
        case GK_SOFTPLUS: p[0] = T(1); p[1] = T(20); break;
        case GK_SOFTSHRINK: case GK_HARDSHRINK: p[0] = T(0.5); break;
        default: break;  // no parameters
    }
    return GK_OK;
}

}  // namespace

extern "C" {

const char* gk_activation_name(int act) {
    return (act >= 0 && act < GK_NUM_ACTIVATIONS) ? kNames[act] : nullptr;
}

const char* gk_status_string(int status) {
    switch (status) {
        case GK_OK: return "ok";
        case GK_ERR_ACTIVATION: return "unknown activation number";
        case GK_ERR_ARGUMENT:
            return "bad argument (n < 0, n_layers < 1, a NULL array, or noise for an "
                   "activation other than RReLU)";
        case GK_ERR_NO_DEVICE: return "no usable CUDA device";
        case GK_ERR_CUDA: return "a CUDA call failed (see gk_cuda_last_error)";
        default: return "unknown status";
    }
}

int gk_default_params_f32(int act, float params[4]) { return default_params(act, params); }
int gk_default_params_f64(int act, double params[4]) { return default_params(act, params); }

}  // extern "C"
