"""chain_grad against the PyTorch autograd reference: every backend x activation x
dtype x depth x weight set, on random inputs of several scales and every
special value.  Backends that cannot run here (no GPU, no simulator, no
native build) are skipped, saying why.

The rules live in gradkern.verify (shared with `gradkern verify`):
piecewise-linear -> bit-identical; smooth -> within assert_close's defaults and
no less accurate than torch float32 against float64.
"""
import numpy as np
import pytest

import gradkern as gk
from gradkern import reference
from gradkern import verify

from .conftest import ACT_NAMES, CUDASIM, PIECEWISE, VARIANTS, default_activation

#: backend -> (depths, random inputs per check): one table, sized to what each
#: runs here.  The simulator runs the CUDA kernel as Python, one thread at a
#: time, so it gets a few special and random inputs; a real GPU the full set.
BACKEND_SIZES = {
    "cpu": ((1, 2, 3, 4, 7, 30), 1500),
    "native": ((1, 2, 3, 4, 7, 30), 1500),
    "cuda": ((1, 30), 60) if CUDASIM else ((1, 3, 30), 20_000),
    "native-cuda": ((1, 3, 30), 1500),
}
CASES = [(b, d) for b, (depths, _) in BACKEND_SIZES.items() for d in depths]


@pytest.mark.parametrize("backend, depth", CASES)
@pytest.mark.parametrize("name", ACT_NAMES)
def test_parity(backend_ready, backend, name, dtype, depth):
    """The one parity body: every backend, activation, dtype, depth and weight
    set against torch autograd, by gradkern.verify's rules."""
    act = default_activation(name)
    x = verify.test_inputs(act, dtype, n_random=BACKEND_SIZES[backend][1], seed=depth)
    for wname, w in verify.weight_sets(depth, seed=11).items():
        r = verify.check(act, dtype, w, x=x, weights_name=wname, backend=backend)
        assert r.ok, f"{backend} {act!r} {dtype} depth {depth} weights {wname}: {r.why}"
        if act.piecewise_linear:
            for field, c in r.fields.items():
                if field not in act.spec.signed_zero_exempt:
                    assert c.identical == 1.0, f"{backend} {field}"


STOCHASTIC = [label for label, act in VARIANTS.items() if act.stochastic]


@pytest.mark.parametrize("depth", [1, 3, 30])
@pytest.mark.parametrize("backend", list(BACKEND_SIZES))
@pytest.mark.parametrize("label", STOCHASTIC)
def test_torch_noise_reproduced_bit_for_bit(backend_ready, backend, label, dtype, depth):
    """Given the noise torch drew (RReLU in training mode), every backend
    reproduces torch bit for bit."""
    act = VARIANTS[label]
    lower, upper = act.noise_bounds()
    x = verify.test_inputs(act, dtype, n_random=BACKEND_SIZES[backend][1], seed=depth)
    for wname, w in verify.weight_sets(depth, seed=5).items():
        ref, noise = reference.batched_grads(x, act, w)
        assert noise.shape == (x.size, depth)
        drawn = noise[noise != 1]
        assert drawn.size > 0
        assert drawn.min() >= dtype.type(lower) and drawn.max() <= dtype.type(upper)
        res = gk.chain_grad(x, act, w.astype(dtype), noise=noise, backend=backend)
        ok = ~np.isnan(ref.output)
        for k, r in zip(res, ref):
            assert verify._bit_identical(k[ok], r[ok]) == 1.0, f"{backend} {wname}"


@pytest.mark.parametrize("depth", [3, 30])
@pytest.mark.parametrize("label", VARIANTS)
def test_parity_parallel_build(label, dtype, depth, monkeypatch):
    """The same checks through the parallel (prange) build, which chain_grad uses
    from chain.cpu.SERIAL_BELOW samples on; the suite's small inputs would
    otherwise only reach the serial build."""
    from gradkern.chain import cpu as kernels_cpu

    monkeypatch.setattr(kernels_cpu, "SERIAL_BELOW", 0)
    act = VARIANTS[label]
    x = verify.test_inputs(act, dtype, n_random=3000, seed=depth + 100)
    for wname, w in verify.weight_sets(depth, seed=12).items():
        r = verify.check(act, dtype, w, x=x, weights_name=wname)
        assert r.ok, f"{act!r} {dtype} depth {depth} weights {wname}: {r.why}"


def test_serial_and_parallel_builds_agree(monkeypatch):
    from gradkern.chain import cpu as kernels_cpu

    x = np.random.default_rng(5).standard_normal(5000).astype(np.float32) * 3
    for name in ACT_NAMES:
        act = default_activation(name)
        monkeypatch.setattr(kernels_cpu, "SERIAL_BELOW", 10**9)
        a = gk.chain_grad(x, act, [1.0, -0.7, 1.2])
        monkeypatch.setattr(kernels_cpu, "SERIAL_BELOW", 0)
        b = gk.chain_grad(x, act, [1.0, -0.7, 1.2])
        for u, v in zip(a, b):
            assert verify._bit_identical(u, v) == 1.0, name


def test_rrelu_seed_loop_noise_reproduced():
    """The notebook's per-sample loop draws noise sample-major; recorded, it
    reproduces that loop too (the vanishing experiment relies on this)."""
    import torch

    torch.manual_seed(7)
    net = reference.SimpleNet(reference.to_torch(gk.activation("RReLU"), record_noise=True),
                              (1.0, -0.5, 2.0))
    x = torch.randn(300)
    ref, noise = reference.seed_loop_grads(net, x)
    res = gk.chain_grad(x.numpy(), "RReLU", [1.0, -0.5, 2.0], noise=noise)
    for k, r in zip(res, ref):
        assert verify._bit_identical(k, r) == 1.0


def test_rrelu_training_seeded_draws():
    act = gk.activation("RReLU", training=True)
    x = -np.abs(np.random.default_rng(1).standard_normal(1000))
    a = gk.chain_grad(x, act, [1.0, 1.0], seed=3)
    b = gk.chain_grad(x, act, [1.0, 1.0], seed=3)
    c = gk.chain_grad(x, act, [1.0, 1.0], seed=4)
    assert np.array_equal(a.weight_grads, b.weight_grads)
    assert not np.array_equal(a.weight_grads, c.weight_grads)
    slopes = a.output / (x * 1.0)  # layer 1 negative -> x*r1, layer 2: (x*r1)*r2
    assert np.all((slopes >= (1 / 8) ** 2 - 1e-12) & (slopes <= (1 / 3) ** 2 + 1e-12))
    with pytest.raises(ValueError, match="shape"):
        gk.chain_grad(x, act, [1.0, 1.0], noise=np.ones((1000, 3)))


@pytest.mark.parametrize("name", ACT_NAMES)
def test_nan_in_nan_out(name, dtype):
    act = default_activation(name)
    x = np.array([np.nan, 1.0, -1.0, np.nan], dtype)
    res = gk.chain_grad(x, act, [1.0, -2.0, 0.5], seed=0 if act.stochastic else None)
    for arr in res:
        assert np.isnan(arr[[0, 3]]).all()


@pytest.mark.parametrize("name", PIECEWISE)
def test_large_random_bit_identical(name):
    """1e5 inputs: long SIMD bodies and several thread chunks on torch's side."""
    act = default_activation(name)
    x = np.random.default_rng(2).standard_normal(100_000).astype(np.float32) * 2
    w = np.array([0.9, -1.7, 1.1, 0.3], np.float32)
    ref = reference.per_sample_grads(x, act, w)
    res = gk.chain_grad(x, act, w)
    for k, r in zip(res, ref):
        assert verify._bit_identical(k, r) == 1.0


def test_seed_notebook_002_tanh_and_relu():
    """Seed 002: Tanh at x=100 vanishes at layer 1; ReLU passes 100 to every layer."""
    t = gk.chain_grad(np.array([100.0]), "Tanh", [1, 1, 1, 1])  # float64, as numpy
    np.testing.assert_allclose(t.weight_grads[0], [0.0, 0.16770685876939032,
                                                   0.3041246830975466, 0.436145382444544],
                               rtol=1e-15)
    t32 = gk.chain_grad(np.array([100.0], np.float32), "Tanh", [1, 1, 1, 1])
    assert t32.weight_grads[0, 0] == 0.0
    assert [f"{v:.7f}" for v in t32.weight_grads[0, 1:]] == ["0.1677068", "0.3041247", "0.4361453"]
    r = gk.chain_grad(np.array([100.0], np.float32), "ReLU", [1, 1, 1, 1])
    assert r.weight_grads.tolist() == [[100.0] * 4]
