/*
 * bench.cu -- the native CUDA chain kernel against the GPU's copy bandwidth.
 * Needs a GPU; nothing here has been run on one yet (none was available).
 *
 *   make -C cuda cuda && cuda/build/bench [out.json] [N=16777216] [L=3] [reps=20]
 *
 * For every activation, float and double: fill x with N(0, 2^2) samples, run
 * gk_cuda_chain_grad_* (the library's device-pointer entry point, i.e. exactly
 * what a C caller gets), validate the first 65536 samples against the same
 * templates run on the host (gradkern.cuh, the CPU reference), then time `reps`
 * launches with CUDA events.
 *
 * Napkin math: a sample reads x and writes y, gx and L weight gradients, so the
 * DRAM minimum is (3 + L) elements, 24 bytes in float at L = 3; an H100's
 * ~3 TB/s copy rate would be ~1.3e11 samples/s.  "of_copy" is achieved GB/s
 * over a device-to-device cudaMemcpy moving the same number of bytes (read +
 * write), so 1.0 means the kernel is as fast as moving its data can be.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <random>
#include <vector>

#include "common.h"
#include "gradkern.cuh"

template <typename T> int run(int act, const T* p, const T* w, int64_t L, const T* x, int64_t n,
                              const T* noise, T* y, T* gw, T* gx);
template <> int run<float>(int act, const float* p, const float* w, int64_t L, const float* x,
                           int64_t n, const float* noise, float* y, float* gw, float* gx) {
    return gk_cuda_chain_grad_f32(act, p, w, L, x, n, noise, y, gw, gx, nullptr);
}
template <> int run<double>(int act, const double* p, const double* w, int64_t L, const double* x,
                            int64_t n, const double* noise, double* y, double* gw, double* gx) {
    return gk_cuda_chain_grad_f64(act, p, w, L, x, n, noise, y, gw, gx, nullptr);
}
void default_params(int act, float* p) { gk_default_params_f32(act, p); }
void default_params(int act, double* p) { gk_default_params_f64(act, p); }

// CPU reference: the same header, compiled for the host
template <typename T>
void chain_cpu(int act, const T* params, const T* w, int L, const T* x, int64_t n, const T* noise,
               T* y, T* gw, T* gx) {
    gk::Params<T> p = {{params[0], params[1], params[2], params[3]}};
    gk::dispatch(act, noise != nullptr, [&](auto ops, auto has_noise) {
        using Ops = decltype(ops);
        constexpr bool NOISE = decltype(has_noise)::value;
        for (int64_t i = 0; i < n; ++i)
            gk::chain_sample<Ops, NOISE>(x[i], w, L, p, NOISE ? noise + i * L : nullptr,
                                         gw + i * L, y + i, gx + i);
    });
}

// llm.c's validate_result: |gpu - cpu| <= atol + rtol*|cpu|.  Device exp/tanh
// (libdevice) and glibc's may differ by an ulp in double, which after the
// rounding to float is almost always invisible; smooth chains get a tolerance,
// piecewise-linear ones should come out identical.
template <typename T>
double max_scaled_error(const std::vector<T>& a, const std::vector<T>& b, int64_t count) {
    const double rtol = sizeof(T) == 4 ? 1.3e-6 : 1e-7, atol = sizeof(T) == 4 ? 1e-5 : 1e-7;
    double worst = 0;
    for (int64_t i = 0; i < count; ++i) {
        double u = a[i], v = b[i];
        if (isnan(u) || isnan(v)) { if (isnan(u) != isnan(v)) return INFINITY; continue; }
        if (isinf(u) || isinf(v)) { if (u != v) return INFINITY; continue; }
        double e = fabs(u - v) / (atol + rtol * fabs(v));
        if (e > worst) worst = e;
    }
    return worst;
}

template <typename T>
void bench(FILE* json, bool* first, int act, int64_t n, int L, int reps, double copy_gbps) {
    const char* dtype = sizeof(T) == 4 ? "float32" : "float64";
    bool noisy = gk::takes_noise(act);  // RReLU in training mode, as nn.RReLU() defaults to
    std::mt19937_64 rng(1234);
    std::normal_distribution<double> normal(0.0, 2.0);
    std::uniform_real_distribution<double> uniform(1.0 / 8, 1.0 / 3);
    std::vector<T> x(n), w(L), noise(noisy ? n * L : 0);
    for (auto& v : x) v = T(normal(rng));
    for (int k = 0; k < L; ++k) w[k] = T(k % 2 ? -0.75 : 1.25);
    for (auto& v : noise) v = T(uniform(rng));
    T p[4];
    default_params(act, p);

    T *d_x, *d_w, *d_noise = nullptr, *d_y, *d_gw, *d_gx;
    cudaCheck(cudaMalloc(&d_x, n * sizeof(T)));
    cudaCheck(cudaMalloc(&d_w, L * sizeof(T)));
    cudaCheck(cudaMalloc(&d_y, n * sizeof(T)));
    cudaCheck(cudaMalloc(&d_gw, n * L * sizeof(T)));
    cudaCheck(cudaMalloc(&d_gx, n * sizeof(T)));
    cudaCheck(cudaMemcpy(d_x, x.data(), n * sizeof(T), cudaMemcpyHostToDevice));
    cudaCheck(cudaMemcpy(d_w, w.data(), L * sizeof(T), cudaMemcpyHostToDevice));
    if (noisy) {
        cudaCheck(cudaMalloc(&d_noise, n * L * sizeof(T)));
        cudaCheck(cudaMemcpy(d_noise, noise.data(), n * L * sizeof(T), cudaMemcpyHostToDevice));
    }
    int status = run<T>(act, p, d_w, L, d_x, n, d_noise, d_y, d_gw, d_gx);
    if (status != GK_OK) {
        fprintf(stderr, "%s: %s %s\n", gk_activation_name(act), gk_status_string(status),
                gk_cuda_last_error());
        exit(EXIT_FAILURE);
    }
    cudaCheck(cudaDeviceSynchronize());

    // validate a prefix against the host
    const int64_t m = n < 65536 ? n : 65536;
    std::vector<T> y(m), gw(m * L), gx(m), ry(m), rgw(m * L), rgx(m);
    cudaCheck(cudaMemcpy(y.data(), d_y, m * sizeof(T), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(gw.data(), d_gw, m * L * sizeof(T), cudaMemcpyDeviceToHost));
    cudaCheck(cudaMemcpy(gx.data(), d_gx, m * sizeof(T), cudaMemcpyDeviceToHost));
    chain_cpu<T>(act, p, w.data(), L, x.data(), m, noisy ? noise.data() : nullptr, ry.data(),
                 rgw.data(), rgx.data());
    double err = max_scaled_error(y, ry, m);
    double e2 = max_scaled_error(gw, rgw, m * L), e3 = max_scaled_error(gx, rgx, m);
    if (e2 > err) err = e2;
    if (e3 > err) err = e3;
    bool identical = memcmp(y.data(), ry.data(), m * sizeof(T)) == 0 &&
                     memcmp(gw.data(), rgw.data(), m * L * sizeof(T)) == 0 &&
                     memcmp(gx.data(), rgx.data(), m * sizeof(T)) == 0;

    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    cudaCheck(cudaEventRecord(start));
    for (int r = 0; r < reps; ++r) run<T>(act, p, d_w, L, d_x, n, d_noise, d_y, d_gw, d_gx);
    cudaCheck(cudaEventRecord(stop));
    cudaCheck(cudaEventSynchronize(stop));
    float ms = 0;
    cudaCheck(cudaEventElapsedTime(&ms, start, stop));
    ms /= reps;
    double bytes = double(n) * (3 + L + (noisy ? L : 0)) * sizeof(T);
    double gbps = bytes / (ms * 1e-3) / 1e9;
    printf("%-11s %s  %8.3f ms  %7.3g samples/s  %7.1f GB/s  %5.1f%% of copy  err %.3g%s\n",
           gk_activation_name(act), dtype, ms, n / (ms * 1e-3), gbps, 100 * gbps / copy_gbps, err,
           identical ? " (bit-identical to host)" : "");
    fprintf(json,
            "%s    {\"activation\": \"%s\", \"dtype\": \"%s\", \"ms\": %.6f, \"samples_per_s\": "
            "%.6g, \"gb_per_s\": %.3f, \"of_copy\": %.4f, \"max_scaled_error\": %.4g, "
            "\"bit_identical_to_host\": %s}",
            *first ? "" : ",\n", gk_activation_name(act), dtype, ms, n / (ms * 1e-3), gbps,
            gbps / copy_gbps, err, identical ? "true" : "false");
    *first = false;
    cudaCheck(cudaEventDestroy(start));
    cudaCheck(cudaEventDestroy(stop));
    cudaCheck(cudaFree(d_x)); cudaCheck(cudaFree(d_w)); cudaCheck(cudaFree(d_y));
    cudaCheck(cudaFree(d_gw)); cudaCheck(cudaFree(d_gx));
    if (d_noise) cudaCheck(cudaFree(d_noise));
}

// device-to-device cudaMemcpy of `bytes` bytes: reads and writes, so 2*bytes move
double copy_bandwidth(size_t bytes, int reps) {
    void *a, *b;
    cudaCheck(cudaMalloc(&a, bytes));
    cudaCheck(cudaMalloc(&b, bytes));
    cudaCheck(cudaMemset(a, 0, bytes));
    cudaCheck(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice));  // warm-up
    cudaEvent_t start, stop;
    cudaCheck(cudaEventCreate(&start));
    cudaCheck(cudaEventCreate(&stop));
    cudaCheck(cudaEventRecord(start));
    for (int r = 0; r < reps; ++r) cudaCheck(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    cudaCheck(cudaEventRecord(stop));
    cudaCheck(cudaEventSynchronize(stop));
    float ms = 0;
    cudaCheck(cudaEventElapsedTime(&ms, start, stop));
    cudaCheck(cudaFree(a));
    cudaCheck(cudaFree(b));
    return 2.0 * bytes / (ms / reps * 1e-3) / 1e9;
}

int main(int argc, char** argv) {
    const char* out = argc > 1 ? argv[1] : "bench_native_cuda.json";
    int64_t n = argc > 2 ? atoll(argv[2]) : (int64_t(1) << 24);
    int L = argc > 3 ? atoi(argv[3]) : 3;
    int reps = argc > 4 ? atoi(argv[4]) : 20;
    if (gk_cuda_device_count() == 0) {
        fprintf(stderr, "no CUDA device: %s\n", gk_cuda_last_error());
        return 2;
    }
    cudaDeviceProp prop;
    cudaCheck(cudaGetDeviceProperties(&prop, 0));
    double copy_gbps = copy_bandwidth(size_t(n) * (3 + L) * sizeof(float) / 2, reps);
    printf("%s, N = %lld, L = %d: device-to-device copy %.1f GB/s\n", prop.name, (long long)n, L,
           copy_gbps);
    FILE* json = fopen(out, "w");
    if (!json) { perror(out); return 1; }
    fprintf(json, "{\"device\": \"%s\", \"n\": %lld, \"depth\": %d, \"reps\": %d, "
            "\"copy_gb_per_s\": %.3f, \"results\": [\n", prop.name, (long long)n, L, reps, copy_gbps);
    bool first = true;
    for (int act = 0; act < GK_NUM_ACTIVATIONS; ++act) {
        bench<float>(json, &first, act, n, L, reps, copy_gbps);
        bench<double>(json, &first, act, n, L, reps, copy_gbps);
    }
    fprintf(json, "\n]}\n");
    fclose(json);
    printf("wrote %s\n", out);
    return 0;
}
