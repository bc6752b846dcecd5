/*
 * common.h -- helpers shared by the two libraries and the benchmark:
 * argument checks (C ABI callers get a status, never a crash) and, under nvcc,
 * cudaCheck for code where a failed CUDA call can only abort (the benchmark).
 */
#pragma once

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "gradkern.cuh"  // gk::takes_noise, from the list in activations.h

namespace gk {

// What every entry point checks before touching memory.  int32 layers: depth
// is a loop bound per sample, and 2^31 layers would not fit a row anyway.
template <typename T>
int check_args(int act, const T* params, const T* w, int64_t n_layers, const T* x, int64_t n,
               const T* noise, const T* y, const T* gw, const T* gx) {
    if (act < 0 || act >= GK_NUM_ACTIVATIONS) return GK_ERR_ACTIVATION;
    if (n < 0 || n_layers < 1 || n_layers > INT32_MAX) return GK_ERR_ARGUMENT;
    if (params == nullptr || w == nullptr) return GK_ERR_ARGUMENT;
    if (n > 0 && (x == nullptr || y == nullptr || gw == nullptr || gx == nullptr))
        return GK_ERR_ARGUMENT;
    // noise selects RReLU's training mode; for anything else it is a mistake
    if (noise != nullptr && !takes_noise(act)) return GK_ERR_ARGUMENT;
    if (n > INT64_MAX / n_layers) return GK_ERR_ARGUMENT;  // n*L elements must index
    return GK_OK;
}

}  // namespace gk

#ifdef __CUDACC__
#include <cuda_runtime.h>
// abort with file:line on a failed CUDA call (benchmark and tools only; the
// library returns GK_ERR_CUDA instead)
inline void cuda_check(cudaError_t error, const char* file, int line) {
    if (error != cudaSuccess) {
        fprintf(stderr, "[CUDA ERROR] at file %s:%d:\n%s\n", file, line, cudaGetErrorString(error));
        exit(EXIT_FAILURE);
    }
}
#define cudaCheck(err) (cuda_check(err, __FILE__, __LINE__))
#endif
