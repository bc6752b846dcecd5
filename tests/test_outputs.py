"""chain_grad(..., outputs=...): only the results asked for, bit-identical to the full call."""
import itertools

import numpy as np
import pytest

import gradkern as gk
from gradkern.chain.native import NativeUnsupportedError

from .conftest import CUDASIM, REAL_GPU, VARIANTS

N = 2000  # below the parallel threshold: the serial kernels, faster to compile
W = np.array([1.3, -0.8, 1.1])
B = np.array([0.25, -0.5, 0.125])
THREE = ("output", "weight_grads", "input_grad")


def _x(dtype):
    rng = np.random.default_rng(7)
    special = [0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 3.0, -3.0, 6.0, 20.0, -20.0, 1e-30, np.inf,
               -np.inf, np.nan]
    return np.concatenate([special, rng.standard_normal(N - len(special)) * 3]).astype(dtype)


def _kwargs(act):
    return {"seed": 5} if act.stochastic else {}


def _same(got, expect):
    assert got is not None
    assert got.dtype == expect.dtype and got.shape == expect.shape
    # bit for bit: NaNs where the full call has them, every other value's bits
    assert np.array_equal(got.view(f"u{got.itemsize}"), expect.view(f"u{got.itemsize}"))


def _check(res, full, names):
    for name in THREE + ("bias_grads",):
        got = getattr(res, name)
        if name in names:
            _same(np.asarray(got), getattr(full, name))
        else:
            assert got is None, name


@pytest.mark.parametrize("label", list(VARIANTS))
def test_every_activation_both_dtypes(label):
    """Weight gradients alone (float32, what JAX's vmap(grad) gives) and the
    complement, output and input gradient (float64), each bit-identical to
    the full call's arrays."""
    act = VARIANTS[label]
    for dtype, names in ((np.float32, ("weight_grads",)), (np.float64, ("output", "input_grad"))):
        x = _x(dtype)
        full = gk.chain_grad(x, act, W, **_kwargs(act))
        res = gk.chain_grad(x, act, W, outputs=names, **_kwargs(act))
        _check(res, full, names)


@pytest.mark.parametrize("act,dtype", [("Tanh", np.float32), ("ReLU", np.float64)])
def test_every_subset(act, dtype):
    x = _x(dtype)
    full = gk.chain_grad(x, act, W)
    for r in (1, 2):
        for names in itertools.combinations(THREE, r):
            _check(gk.chain_grad(x, act, W, outputs=names), full, names)
    # the default and the three named are the full call
    _check(gk.chain_grad(x, act, W, outputs=list(THREE)), full, THREE)


@pytest.mark.parametrize("acts,names", [
    (["Tanh", "ELU", "ReLU"], ("bias_grads",)),
    (["Tanh", "ELU", "ReLU"], ("weight_grads", "input_grad")),
    (["Tanh", "ELU", "ReLU"], ("output",)),
    ("Softplus", ("weight_grads", "bias_grads")),  # one activation with biases
])
def test_biases_and_mixed_layers(acts, names):
    x = _x(np.float32)
    full = gk.chain_grad(x, acts, W, biases=B)
    res = gk.chain_grad(x, acts, W, biases=B, outputs=names)
    _check(res, full, names)


def test_mixed_layers_without_biases():
    x = _x(np.float64)
    acts = ["Sigmoid", "LeakyReLU", "Softsign"]
    full = gk.chain_grad(x, acts, W)
    _check(gk.chain_grad(x, acts, W, outputs="input_grad"), full, ("input_grad",))


def test_out_holds_only_the_results_asked_for():
    x = _x(np.float32)
    full = gk.chain_grad(x, "ELU", W)
    gw = np.full((N, 3), 7.0, np.float32)
    res = gk.chain_grad(x, "ELU", W, outputs="weight_grads", out=(None, gw, None))
    assert res.weight_grads is gw
    _same(gw, full.weight_grads)
    assert res.output is None and res.input_grad is None
    # a result of an earlier call with the same outputs is a valid out=
    again = gk.chain_grad(x, "ELU", W, outputs="weight_grads", out=res)
    assert again.weight_grads is gw
    # with biases: out.bias_grads is used when given
    gb = np.empty((N, 3), np.float32)
    out = gk.ChainGrad(None, None, None, bias_grads=gb)
    res = gk.chain_grad(x, "ELU", W, biases=B, outputs="bias_grads", out=out)
    assert res.bias_grads is gb
    _same(gb, gk.chain_grad(x, "ELU", W, biases=B).bias_grads)


@pytest.mark.parametrize("outputs,error,match", [
    ("weight_grad", ValueError, "outputs: unknown name 'weight_grad'"),
    ((), ValueError, "outputs is empty"),
    (3, TypeError, "outputs must be None, a name or a sequence"),
    ([None], TypeError, "outputs must hold names"),
    ("bias_grads", ValueError, "'bias_grads' needs biases="),
])
def test_bad_outputs(outputs, error, match):
    with pytest.raises(error, match=match):
        gk.chain_grad([1.0, 2.0], "Tanh", [1.0, 2.0], outputs=outputs)


def test_out_must_match_outputs():
    x = np.ones(4)
    full = gk.chain_grad(x, "Tanh", [1.0, 2.0])
    with pytest.raises(ValueError, match="out.output is given but outputs does not ask for"):
        gk.chain_grad(x, "Tanh", [1.0, 2.0], outputs="weight_grads", out=full)
    with pytest.raises(TypeError, match="out.input_grad is None but outputs asks for"):
        gk.chain_grad(x, "Tanh", [1.0, 2.0], outputs=("weight_grads", "input_grad"),
                      out=(None, np.empty((4, 2)), None))
    with pytest.raises(ValueError, match=r"out.weight_grads must have shape \(4, 2\)"):
        gk.chain_grad(x, "Tanh", [1.0, 2.0], outputs="weight_grads",
                      out=(None, np.empty((4, 3)), None))
    with pytest.raises(ValueError, match="out.bias_grads is given but outputs does not ask"):
        gk.chain_grad(x, "Tanh", [1.0, 2.0], biases=[0.0, 1.0], outputs="weight_grads",
                      out=gk.ChainGrad(None, np.empty((4, 2)), None, bias_grads=np.empty((4, 2))))


@pytest.mark.parametrize("backend", ["native", "native-cuda"])
def test_native_refuses_a_subset(backend):
    # refused before the library is loaded: no build needed for this answer
    with pytest.raises(NativeUnsupportedError, match=r"outputs=\('weight_grads'\) needs"):
        gk.chain_grad(np.ones(4), "Tanh", [1.0, 2.0], backend=backend, outputs="weight_grads")


@pytest.mark.skipif(not (CUDASIM or REAL_GPU), reason="needs the CUDA simulator or a GPU")
@pytest.mark.parametrize("acts,biases", [("Tanh", None), (["Tanh", "ELU", "ReLU"], B)])
def test_cuda_subsets(acts, biases):
    """The numba-cuda kernels, host and device arrays: every subset's arrays
    are the CPU kernel's bits (as the full GPU call's are)."""
    from numba import cuda

    x = _x(np.float32)[:96]  # the simulator runs one Python thread per sample
    full = gk.chain_grad(x, acts, W, biases=biases)
    names = THREE + (("bias_grads",) if biases is not None else ())
    subsets = [("weight_grads",), ("input_grad",), ("output",), ("output", "weight_grads")]
    if biases is not None:
        subsets += [("bias_grads",), ("input_grad", "bias_grads")]
    for subset in subsets:
        res = gk.chain_grad(x, acts, W, biases=biases, backend="cuda", outputs=subset)
        _check(res, full, subset)
        res = gk.chain_grad(cuda.to_device(x), acts, W, biases=biases, backend="cuda",
                            outputs=subset)
        for name in names:
            got = getattr(res, name)
            if name in subset:
                _same(got.copy_to_host(), getattr(full, name))
            else:
                assert got is None, name
    # device out= with None where not asked for
    d_gw = cuda.device_array((x.shape[0], 3), np.float32)
    res = gk.chain_grad(cuda.to_device(x), acts, W, biases=biases, backend="cuda",
                        outputs="weight_grads", out=(None, d_gw, None))
    assert res.weight_grads is d_gw
    _same(d_gw.copy_to_host(), full.weight_grads)
    with pytest.raises(ValueError, match="out.output is given but outputs does not ask"):
        gk.chain_grad(cuda.to_device(x), acts, W, biases=biases, backend="cuda",
                      outputs="weight_grads", out=(cuda.device_array(x.shape[0]), d_gw, None))
