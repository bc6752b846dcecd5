/*
 * chain.cu -- libgradkern_cuda.so: the chain kernel of gradkern.cuh on the GPU,
 * one thread per sample.
 *
 *   nvcc -O3 -std=c++17 --fmad=false -Xcompiler -fPIC -shared \
 *        chain.cu common.cpp -o build/libgradkern_cuda.so             (make -C cuda cuda)
 *
 * --fmad=false: nvcc fuses a*b+c into FMA by default, which changes rounding
 * against PyTorch's CPU autograd; the two fusions torch has are explicit fma()
 * in gradkern.cuh.  The CUDA runtime is linked statically (nvcc's default), so
 * the library loads on a machine without a driver and then reports "no device".
 *
 * Memory traffic per sample, L layers, element size s: read x and write y, gx
 * (3s) and the (N, L) weight-gradient row (L*s), which doubles as the forward's
 * scratch: written twice and read once, but by the same thread within a few
 * hundred cycles, so the second write and the read hit L2/L1 rather than DRAM.
 * The DRAM minimum, (3 + L)*s, is what bench.cu compares with copy bandwidth.
 */
#include <cuda_runtime.h>

#include "common.h"
#include "gradkern.cuh"

namespace {

// the last CUDA error string, per host thread, for gk_cuda_last_error()
thread_local char last_error[256] = "";

int fail(cudaError_t err, int status) {
    snprintf(last_error, sizeof last_error, "%s (%s)", cudaGetErrorString(err),
             cudaGetErrorName(err));
    return status;
}

// one thread per sample, grid-stride so any N runs with a bounded grid
template <typename Ops, bool NOISE, typename T>
__global__ void chain_grad_kernel(const T* __restrict__ x, int64_t n, const T* __restrict__ w,
                                  int n_layers, gk::Params<T> p, const T* __restrict__ noise,
                                  T* __restrict__ y, T* __restrict__ gw, T* __restrict__ gx) {
    int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
        gk::chain_sample<Ops, NOISE>(x[i], w, n_layers, p, NOISE ? noise + i * n_layers : nullptr,
                                     gw + i * n_layers, y + i, gx + i);
    }
}

template <typename T>
int launch(int act, const T* params, const T* w, int64_t n_layers, const T* x, int64_t n,
           const T* noise, T* y, T* gw, T* gx, cudaStream_t stream) {
    // params is a host array: it travels as a kernel argument, by value
    gk::Params<T> p = {{params[0], params[1], params[2], params[3]}};
    if (n == 0) return GK_OK;
    int device = 0, sms = 0;
    cudaError_t err = cudaGetDevice(&device);
    if (err == cudaSuccess) err = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    if (err != cudaSuccess) return fail(err, GK_ERR_NO_DEVICE);
    // 256 threads, at most 32 blocks per SM: a full GPU with every sample in
    // flight up to N = 256*32*SMs (3.5M on an H100), grid-stride beyond
    const int block = 256;
    int64_t blocks = (n + block - 1) / block;
    int64_t max_blocks = int64_t(sms) * 32;
    int grid = int(blocks < max_blocks ? blocks : max_blocks);
    const int L = int(n_layers);
    int status = gk::dispatch(act, noise != nullptr, [&](auto ops, auto has_noise) {
        using Ops = decltype(ops);
        constexpr bool NOISE = decltype(has_noise)::value;
        chain_grad_kernel<Ops, NOISE, T><<<grid, block, 0, stream>>>(x, n, w, L, p, noise, y, gw, gx);
    });
    if (status != GK_OK) return status;
    err = cudaGetLastError();
    return err == cudaSuccess ? GK_OK : fail(err, GK_ERR_CUDA);
}

template <typename T>
int chain_grad_device(int act, const T* params, const T* w, int64_t n_layers, const T* x,
                      int64_t n, const T* noise, T* y, T* gw, T* gx, void* stream) {
    int status = gk::check_args(act, params, w, n_layers, x, n, noise, y, gw, gx);
    if (status != GK_OK) return status;
    return launch(act, params, w, n_layers, x, n, noise, y, gw, gx, cudaStream_t(stream));
}

// Host arrays: one allocation holding w, x, noise and the outputs, copies in,
// kernel, copies out.  For repeated calls keep data on the device and use
// gk_cuda_chain_grad_* instead; this is for Python/ctypes and quick C use.
template <typename T>
int chain_grad_host(int act, const T* params, const T* w, int64_t n_layers, const T* x, int64_t n,
                    const T* noise, T* y, T* gw, T* gx) {
    int status = gk::check_args(act, params, w, n_layers, x, n, noise, y, gw, gx);
    if (status != GK_OK) return status;
    int count = gk_cuda_device_count();
    if (count == 0) return GK_ERR_NO_DEVICE;
    if (n == 0) return GK_OK;
    const int64_t L = n_layers, nl = n * n_layers, n_noise = noise ? nl : 0;
    const int64_t total = L + n + n_noise + n + nl + n;
    T* d = nullptr;
    cudaError_t err = cudaMalloc(&d, size_t(total) * sizeof(T));
    if (err != cudaSuccess) return fail(err, GK_ERR_CUDA);
    T *d_w = d, *d_x = d_w + L, *d_noise = d_x + n, *d_y = d_noise + n_noise, *d_gw = d_y + n,
      *d_gx = d_gw + nl;
    err = cudaMemcpy(d_w, w, size_t(L) * sizeof(T), cudaMemcpyHostToDevice);
    if (err == cudaSuccess) err = cudaMemcpy(d_x, x, size_t(n) * sizeof(T), cudaMemcpyHostToDevice);
    if (err == cudaSuccess && noise)
        err = cudaMemcpy(d_noise, noise, size_t(nl) * sizeof(T), cudaMemcpyHostToDevice);
    if (err == cudaSuccess) {
        status = launch(act, params, d_w, n_layers, d_x, n, noise ? d_noise : nullptr, d_y, d_gw,
                        d_gx, cudaStream_t(0));
        if (status == GK_OK) {
            err = cudaMemcpy(y, d_y, size_t(n) * sizeof(T), cudaMemcpyDeviceToHost);
            if (err == cudaSuccess)
                err = cudaMemcpy(gw, d_gw, size_t(nl) * sizeof(T), cudaMemcpyDeviceToHost);
            if (err == cudaSuccess)
                err = cudaMemcpy(gx, d_gx, size_t(n) * sizeof(T), cudaMemcpyDeviceToHost);
        }
    }
    cudaFree(d);
    if (err != cudaSuccess) return fail(err, GK_ERR_CUDA);
    return status;
}

}  // namespace

extern "C" {

int gk_cuda_device_count(void) {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {  // no driver, no device: say why, report none
        fail(err, GK_ERR_NO_DEVICE);
        cudaGetLastError();  // reset the runtime's last-error state for later calls
        return 0;
    }
    return count;
}

const char* gk_cuda_last_error(void) { return last_error; }

int gk_cuda_chain_grad_f32(int act, const float params[4], const float* w, int64_t n_layers,
                           const float* x, int64_t n, const float* noise, float* out_y,
                           float* out_gw, float* out_gx, void* stream) {
    return chain_grad_device(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx, stream);
}

int gk_cuda_chain_grad_f64(int act, const double params[4], const double* w, int64_t n_layers,
                           const double* x, int64_t n, const double* noise, double* out_y,
                           double* out_gw, double* out_gx, void* stream) {
    return chain_grad_device(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx, stream);
}

int gk_cuda_chain_grad_host_f32(int act, const float params[4], const float* w, int64_t n_layers,
                                const float* x, int64_t n, const float* noise, float* out_y,
                                float* out_gw, float* out_gx) {
    return chain_grad_host(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx);
}

int gk_cuda_chain_grad_host_f64(int act, const double params[4], const double* w,
                                int64_t n_layers, const double* x, int64_t n, const double* noise,
                                double* out_y, double* out_gw, double* out_gx) {
    return chain_grad_host(act, params, w, n_layers, x, n, noise, out_y, out_gw, out_gx);
}

}  // extern "C"
