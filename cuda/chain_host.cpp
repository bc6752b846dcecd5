/*
 * chain_host.cpp -- libgradkern_host.so: the chain kernel of gradkern.cuh on the
 * CPU, one OpenMP thread per block of samples.
 *
 *   g++ -O3 -std=c++17 -fopenmp -fPIC -ffp-contract=off -shared \
 *       chain_host.cpp common.cpp -o build/libgradkern_host.so      (make -C cuda host)
 *
 * -ffp-contract=off: g++ would otherwise fuse a*b+c on FMA targets and change
 * the rounding PyTorch's autograd has; the two fusions torch does have are
 * explicit fma() calls in gradkern.cuh.  No -ffast-math (NaN tests, signed zeros).
 */
#include "common.h"
#include "gradkern.cuh"

namespace {

template <typename T>
int chain_grad(int act, const T* params, const T* w, int64_t n_layers, const T* x, int64_t n,
               const T* noise, T* out_y, T* out_gw, T* out_gx) {
    int status = gk::check_args(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx);
    if (status != GK_OK) return status;
    gk::Params<T> p = {{params[0], params[1], params[2], params[3]}};
    const int L = int(n_layers);
    return gk::dispatch(act, noise != nullptr, [&](auto ops, auto has_noise) {
        using Ops = decltype(ops);
        constexpr bool NOISE = decltype(has_noise)::value;
        // static schedule: every sample costs the same (a branch or two apart)
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; ++i) {
            gk::chain_sample<Ops, NOISE>(x[i], w, L, p, NOISE ? noise + i * L : nullptr,
                                         out_gw + i * L, out_y + i, out_gx + i);
        }
    });
}

}  // namespace

extern "C" {

int gk_chain_grad_f32(int act, const float params[4], const float* w, int64_t n_layers,
                      const float* x, int64_t n, const float* noise, float* out_y, float* out_gw,
                      float* out_gx) {
    return chain_grad(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx);
}

int gk_chain_grad_f64(int act, const double params[4], const double* w, int64_t n_layers,
                      const double* x, int64_t n, const double* noise, double* out_y,
                      double* out_gw, double* out_gx) {
    return chain_grad(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx);
}

}  // extern "C"
