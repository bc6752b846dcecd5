/*
 * common.cpp -- the C API functions both libraries carry: activation names,
 * status strings, torch.nn's default parameters (the first and the last
 * generated from the list in activations.h).  Compiled into each library
 * (identical code, so a program linking both may take either copy).
 */
#include "activations.h"

namespace gk {
namespace {

// Rounded as PyTorch rounds Scalars: param.to<T>(); products of parameters are
// formed in T (ELU family negcoef = T(alpha)*T(scale)).  The Python side does
// not use these -- it passes act.kernel_params(dtype) -- so the tests compare
// the two.  The values are the `defaults` column of activations.h.
#define GK_SET_PARAMS_(P0, P1, P2, P3) (p[0] = P0, p[1] = P1, p[2] = P2, p[3] = P3)
#define GK_DEFAULTS_CASE_(NUMBER, NAME, OPS, TRAINING_OPS, DEFAULTS)                               \
    case NUMBER: GK_SET_PARAMS_ DEFAULTS; return GK_OK;
template <typename T>
int default_params(int act, T p[4]) {
    switch (act) {
        GK_ACTIVATIONS(GK_DEFAULTS_CASE_)
        default: return GK_ERR_ACTIVATION;
    }
}
#undef GK_DEFAULTS_CASE_
#undef GK_SET_PARAMS_

}  // namespace
}  // namespace gk

extern "C" {

#define GK_NAME_CASE_(NUMBER, NAME, ...) case NUMBER: return NAME;
const char* gk_activation_name(int act) {
    switch (act) {
        GK_ACTIVATIONS(GK_NAME_CASE_)
        default: return nullptr;
    }
}
#undef GK_NAME_CASE_

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

int gk_default_params_f32(int act, float params[4]) { return gk::default_params(act, params); }
int gk_default_params_f64(int act, double params[4]) { return gk::default_params(act, params); }

}  // extern "C"
