"""Values a forward saves for its backward (LogSigmoid's exp(-|x|),
Tanhshrink's tanh, GELU's and Mish's derivative, GELU(tanh)'s tanh, SiLU's
sigmoid): the saving pair the CPU kernel runs gives the bits of
the plain pair, and the chain gives them too."""
import numba
import numpy as np
import pytest

import gradkern as gk
from gradkern.activations import scalar

from .conftest import DTYPES

SAVING = ("LogSigmoid", "Tanhshrink", "GELU", "SiLU", "Mish")
#: every variant of these (GELU(tanh)'s ops save too)
SAVING_VARIANTS = dict(gk.activations.variants(SAVING))


def test_which_forwards_save():
    saving = sorted(name for name, spec in gk.ACTIVATIONS.items()
                    if getattr(spec.forward, "saving", None) is not None)
    assert saving == sorted(SAVING)


def _inputs(dtype):
    rng = np.random.default_rng(3)
    special = [0.0, -0.0, 1e-30, -1e-30, 20.0, 20.000002, 19.999998, -20.0, 88.0, -88.0, 100.0,
               -100.0, 710.0, -710.0, np.inf, -np.inf, np.nan]
    return np.concatenate([special, rng.standard_normal(4000) * 6,
                           rng.standard_normal(2000) * 40]).astype(dtype)


def _pairs(forward, backward, forward_saving, backward_saved):
    @numba.njit(error_model="numpy")
    def both(x, g, p):
        out = np.empty((4, x.shape[0]), x.dtype)
        for i in range(x.shape[0]):
            y = forward(x[i], p)
            ys, s = forward_saving(x[i], p)
            out[0, i], out[1, i] = y, ys
            out[2, i] = backward(g[i], x[i], y, p)
            out[3, i] = backward_saved(g[i], x[i], s, p)
        return out

    return both


@pytest.mark.parametrize("name", SAVING_VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES, ids=["float32", "float64"])
def test_saving_pair_gives_the_same_bits(name, dtype):
    act = SAVING_VARIANTS[name]
    forward, backward = act.ops()
    assert forward.saving is not None
    both = _pairs(forward, backward, *forward.saving)
    x = _inputs(dtype)
    g = np.random.default_rng(4).uniform(-2, 2, x.shape[0]).astype(dtype)
    out = both(x, g, act.kernel_params(np.dtype(dtype)))
    bits = out.view(f"u{out.itemsize}")
    assert np.array_equal(bits[0], bits[1])
    assert np.array_equal(bits[2], bits[3])


@pytest.mark.parametrize("name", SAVING_VARIANTS)
def test_chain_matches_the_scalar_functions(name):
    """The kernel (saving pair, kept for the block) against the plain scalar
    functions run sample by sample: the same bits at depth 3."""
    act = SAVING_VARIANTS[name]
    forward, backward = act.ops()
    x = _inputs(np.float32)
    w = np.array([1.5, -0.75, 1.25], np.float32)
    res = gk.chain_grad(x, act, w)
    p = act.kernel_params(np.dtype(np.float32))

    @numba.njit(error_model="numpy")
    def chain(x, w, p):
        n, L = x.shape[0], w.shape[0]
        y, gw, gx = np.empty(n, x.dtype), np.empty((n, L), x.dtype), np.empty(n, x.dtype)
        acts = np.empty(L + 1, x.dtype)
        for i in range(n):
            acts[0] = x[i]
            for k in range(L):
                acts[k + 1] = forward(w[k] * acts[k] + x.dtype.type(0.0), p)
            y[i] = acts[L]
            g = x.dtype.type(1.0)
            for k in range(L - 1, -1, -1):
                z = w[k] * acts[k] + x.dtype.type(0.0)
                gz = backward(g, z, acts[k + 1], p)
                gz = z if z != z else gz
                gw[i, k] = gz * acts[k] + x.dtype.type(0.0)
                g = gz * w[k] + x.dtype.type(0.0)
            gx[i] = g
        return y, gw, gx

    for got, expect in zip(res, chain(x, w, p)):
        assert np.array_equal(got.view(np.uint32), expect.view(np.uint32))
