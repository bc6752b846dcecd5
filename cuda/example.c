/*
 * example.c -- calling libgradkern_host.so from C.
 *
 *   make -C cuda host && cuda/build/example
 *   (or: gcc -std=c99 example.c -Lbuild -lgradkern_host -Wl,-rpath,build -o example)
 *
 * Seed notebook 002: f = tanh(w4*tanh(w3*tanh(w2*tanh(w1*x)))) with all
 * weights 1 at x = 100.  tanh'(100) is 0 in float, so df/dw1 vanishes while
 * the later layers see tanh(1) = 0.76 and keep 0.17 .. 0.44; ReLU passes 100
 * through every layer, so each df/dw_k is 100.
 */
#include <stdio.h>

#include "gradkern.h"

#define DEPTH 4

static int show(int act, float x0) {
    float params[4], w[DEPTH] = {1.0f, 1.0f, 1.0f, 1.0f};
    float x[1] = {x0}, y[1], gw[DEPTH], gx[1];
    int status = gk_default_params_f32(act, params);
    if (status == GK_OK)
        status = gk_chain_grad_f32(act, params, w, DEPTH, x, 1, NULL, y, gw, gx);
    if (status != GK_OK) {
        fprintf(stderr, "gk_chain_grad_f32: %s\n", gk_status_string(status));
        return 1;
    }
    printf("%-5s depth %d, x = %g: f = %.8g, df/dx = %.8g, df/dw =", gk_activation_name(act),
           DEPTH, x0, y[0], gx[0]);
    for (int k = 0; k < DEPTH; ++k) printf(" %.8g", gw[k]);
    printf("\n");
    return 0;
}

int main(void) {
    int failed = show(GK_TANH, 100.0f) | show(GK_RELU, 100.0f);
    /* errors are statuses, not crashes: depth 0 is refused */
    float p[4] = {0}, w = 1.0f, x = 1.0f, y, gw, gx;
    int status = gk_chain_grad_f32(GK_TANH, p, &w, 0, &x, 1, NULL, &y, &gw, &gx);
    printf("depth 0 -> status %d: %s\n", status, gk_status_string(status));
    return failed || status != GK_ERR_ARGUMENT;
}
