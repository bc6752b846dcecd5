/*
 * gradkern.h -- C API of the native gradkern libraries.
 *
 * For f = a(w_L * a(... a(w_1 * x))), one neuron per layer, the libraries
 * compute per sample the output f(x), every df/dw_k and df/dx, with PyTorch
 * 2.13 autograd's conventions (order of operations, kinks, sign of zero).
 *
 *   libgradkern_host.so   g++ + OpenMP, runs anywhere:      gk_chain_grad_f32/_f64
 *   libgradkern_cuda.so   nvcc, needs an NVIDIA GPU to run: gk_cuda_chain_grad_*
 *
 * Build both with `make -C cuda` from the gradkern source tree (only the host
 * library: `make -C cuda host`).  Link with -Lcuda/build -lgradkern_host.
 *
 * Plain C types only, so C, C++ and Fortran (ISO_C_BINDING: integer(c_int),
 * integer(c_int64_t), real(c_float)/real(c_double) arrays passed by reference,
 * type(c_ptr) for NULL noise) can call it.  Nothing is allocated per sample and
 * no global state is kept (the host entry points are thread-safe).
 *
 * Arrays (C order, contiguous):
 *   x            [n]       inputs
 *   w            [L]       one weight per layer, L >= 1
 *   params       [4]       the activation's parameters, already rounded to the
 *                          element type (see gk_default_params_* and the slot
 *                          table below); gradkern passes act.kernel_params(dtype)
 *   noise        [n*L]     RReLU training mode only (else NULL): the slope of
 *                          sample i at layer k, noise[i*L + k], used where that
 *                          layer's pre-activation is <= 0
 *   out_y        [n]       f(x)
 *   out_gw       [n*L]     out_gw[i*L + k] = df/dw_{k+1} of sample i; also the
 *                          forward's scratch (a_{k} is stored there, then
 *                          overwritten), so it must not alias any input
 *   out_gx       [n]       df/dx
 *
 * Parameter slots (p0..p3; unused slots are ignored):
 *   ELU        alpha*1, 1, 1, 1                 (negcoef, poscoef, input_scale fwd, bwd)
 *   SELU       T(alpha)*T(scale), scale, 1, 1    = 1.7580993f, 1.0507010f, 1, 1
 *   CELU       alpha, 1, 1/alpha, T(1/float(alpha))
 *   Hardtanh   min_val, max_val            ReLU6  0, 6
 *   LeakyReLU  negative_slope              PReLU  weight (init)
 *   RReLU      eval: (lower+upper)/2 in double, then rounded; training: noise != NULL
 *   Softplus   beta, threshold             Softshrink, Hardshrink  lambd
 *   ReLU, LogSigmoid, Sigmoid, Softsign, Tanh, Tanhshrink: none
 *   GELU       approximate="none": M_SQRT1_2, M_2_SQRTPI*M_SQRT1_2*0.5 (in double,
 *              then rounded), onednn (1 for float: torch's float32 conventions
 *              at +inf and overflow, 0 for double), 0
 *              approximate="tanh": M_SQRT2*M_2_SQRTPI*0.5, 0.044715,
 *              T(3)*T(0.044715) (formed in T), 1
 *   Hardsigmoid  1.0f/6.0f (a float value in both types)
 *   Threshold  threshold, value (torch.nn has no defaults: gk_default_params_*
 *              gives gradkern's reference Threshold(0.1, 20))
 *   SiLU, Mish, Hardswish: none
 */
#ifndef GRADKERN_H
#define GRADKERN_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The torch.nn activations, in gradkern.ACTIVATIONS' order.  The numbers are
 * ABI: never renumbered, a new activation takes the next one (and its line in
 * activations.h, which generates the names and the dispatch).  They are dense
 * from 0: gk_activation_name(i) is non-NULL exactly for 0 <= i <
 * GK_NUM_ACTIVATIONS, which is how gradkern reads a library's (number, name)
 * pairs; a name missing there is "not in this library" to gradkern. */
typedef enum gk_activation {
    GK_ELU = 0,
    GK_HARDTANH = 1,
    GK_LEAKY_RELU = 2,
    GK_LOG_SIGMOID = 3,
    GK_PRELU = 4,
    GK_RELU = 5,
    GK_RELU6 = 6,
    GK_RRELU = 7,
    GK_SELU = 8,
    GK_CELU = 9,
    GK_SIGMOID = 10,
    GK_SOFTPLUS = 11,
    GK_SOFTSHRINK = 12,
    GK_SOFTSIGN = 13,
    GK_TANH = 14,
    GK_TANHSHRINK = 15,
    GK_HARDSHRINK = 16,
    GK_GELU = 17,
    GK_SILU = 18,
    GK_MISH = 19,
    GK_HARDSWISH = 20,
    GK_HARDSIGMOID = 21,
    GK_THRESHOLD = 22,
    GK_NUM_ACTIVATIONS = 23
} gk_activation;

typedef enum gk_status {
    GK_OK = 0,
    GK_ERR_ACTIVATION = 1, /* activation number out of range */
    GK_ERR_ARGUMENT = 2,   /* n < 0, L < 1, a NULL array, noise for a non-RReLU */
    GK_ERR_NO_DEVICE = 3,  /* CUDA library: no usable GPU (or no driver) */
    GK_ERR_CUDA = 4        /* CUDA library: a CUDA call failed, see gk_cuda_last_error */
} gk_status;

/* "ELU", "Hardtanh", ... (the torch.nn class name), or NULL if out of range. */
const char *gk_activation_name(int act);
/* A one-line description of a gk_status. */
const char *gk_status_string(int status);
/* torch.nn's default parameters of `act`, rounded as PyTorch rounds them
 * (RReLU: the eval-mode slope).  Returns GK_OK or GK_ERR_ACTIVATION. */
int gk_default_params_f32(int act, float params[4]);
int gk_default_params_f64(int act, double params[4]);

/* ---- libgradkern_host.so: host memory, OpenMP threads (OMP_NUM_THREADS) ---- */
int gk_chain_grad_f32(int act, const float params[4], const float *w, int64_t n_layers,
                      const float *x, int64_t n, const float *noise,
                      float *out_y, float *out_gw, float *out_gx);
int gk_chain_grad_f64(int act, const double params[4], const double *w, int64_t n_layers,
                      const double *x, int64_t n, const double *noise,
                      double *out_y, double *out_gw, double *out_gx);

/* ---- libgradkern_cuda.so ---- */
/* Number of usable GPUs; 0 when there is none or no driver (never fails). */
int gk_cuda_device_count(void);
/* The CUDA error string of this thread's last GK_ERR_CUDA / GK_ERR_NO_DEVICE. */
const char *gk_cuda_last_error(void);
/* Device pointers; asynchronous on `stream` (a cudaStream_t, NULL = default
 * stream).  Only launch errors are reported. */
int gk_cuda_chain_grad_f32(int act, const float params[4], const float *w, int64_t n_layers,
                           const float *x, int64_t n, const float *noise,
                           float *out_y, float *out_gw, float *out_gx, void *stream);
int gk_cuda_chain_grad_f64(int act, const double params[4], const double *w, int64_t n_layers,
                           const double *x, int64_t n, const double *noise,
                           double *out_y, double *out_gw, double *out_gx, void *stream);
/* Host pointers: copies in, runs, copies out, synchronous (what Python uses). */
int gk_cuda_chain_grad_host_f32(int act, const float params[4], const float *w,
                                int64_t n_layers, const float *x, int64_t n,
                                const float *noise, float *out_y, float *out_gw, float *out_gx);
int gk_cuda_chain_grad_host_f64(int act, const double params[4], const double *w,
                                int64_t n_layers, const double *x, int64_t n,
                                const double *noise, double *out_y, double *out_gw,
                                double *out_gx);

#ifdef __cplusplus
}
#endif

#endif /* GRADKERN_H */
