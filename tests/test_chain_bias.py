"""Biases and one activation per layer: chain_grad against the seed's SimpleNet
with ``Linear(1, 1, bias=True)`` layers and per-layer activations.

The rules are gradkern.verify's (piecewise-linear bit-identical, smooth under
the smooth rules); inputs are tests/test_parity.py's plus grids on which every
layer's pre-activation hits a kink exactly *through the bias*
(``w_k * a + b_k == kink``).  Backends: cpu and cuda (on the simulator without
a GPU); the native ones refuse such chains by name.
"""
import numpy as np
import pytest

import gradkern as gk
from gradkern import reference, verify
from gradkern.chain import cpu as kernels_cpu
from gradkern.chain.layers import LayerPlan

from .conftest import CUDASIM, PIECEWISE, VARIANTS, default_activation

#: every piecewise-linear registry variant (RReLU in eval and training mode) in
#: float32, and a few in float64 too: each is a kernel to compile (~1.5 s), and
#: the kernels are the same code in either dtype
PIECEWISE_CASES = [(label, np.dtype(np.float32)) for label, act in VARIANTS.items()
                   if act.piecewise_linear] + \
    [(label, np.dtype(np.float64)) for label in ("ReLU", "Hardtanh", "RReLU(training)")]
W3 = np.array([1.0, -0.5, 2.0])


def _bits(a, b):
    return verify._bit_identical(np.asarray(a), np.asarray(b)) == 1.0


def bias_sets(depth, seed=0):
    """Named bias vectors: random, tiny, and special values (-0.0, +0.0, dyadic)."""
    rng = np.random.default_rng(seed + depth)
    return {
        "random": rng.normal(0.0, 1.0, depth),
        "tiny": rng.normal(0.0, 1e-3, depth),
        "special": np.resize([-0.0, 0.5, 0.0, -1.25, 3.0, -6.0], depth),
    }


def kink_biases(acts, weights, x, dtype):
    """Biases that put a kink of layer k's activation exactly at layer k's
    pre-activation for some sample (w_k * a_{k-1} + b_k == kink, no rounding:
    every value is a short dyadic), and the number of samples that hit one at
    each layer."""
    biases, hits = [], []
    a = x.astype(dtype)
    # a layer that draws noise makes the other samples' values unknown here:
    # aim every layer at the same sample, whose value at a kink is known
    same = any(act.stochastic for act in acts)
    for k, (act, w) in enumerate(zip(acts, weights)):
        kinks = [c for c in act.kinks() if np.isfinite(c)] or [0.0]
        kink = kinks[k % len(kinks)]
        j = (len(a) // 3 + (0 if same else 7 * k)) % len(a)  # the sample to aim at
        exact = [i for i in np.roll(np.arange(len(a)), -j) if not same or i == j
                 if dtype.type(w) * a[i] + (dtype.type(kink) - dtype.type(w) * a[i])
                 == dtype.type(kink)]
        # a kink that is no short dyadic (Threshold's 0.1) is reached exactly only
        # from samples near it, which a layer's inputs may not hold (after
        # Threshold(0.1, 20): 20 and values above 0.1, times -0.5): such a layer
        # aims as near as it can and reports None
        b = dtype.type(kink) - dtype.type(w) * a[exact[0] if exact else j]
        assert np.isfinite(b)
        z = dtype.type(w) * a + b
        hits.append(int(np.isin(z, np.array(kinks, dtype)).sum()) if exact else None)
        biases.append(b)
        a = gk.chain_grad(z, act, [1.0]).output if not act.stochastic else \
            gk.chain_grad(z, gk.activation(act, training=False), [1.0]).output
    return np.array(biases, dtype), hits


def kink_grid(dtype):
    """Short dyadics in [-8, 8] (step 1/64), the special values, and a ulp either side of 0."""
    grid = np.arange(-512, 513, dtype=np.float64) / 64
    tiny = np.finfo(dtype).smallest_subnormal
    return np.concatenate([grid, [0.0, -0.0, tiny, -tiny]]).astype(dtype)


def _assert_exact(r, acts):
    assert r.ok, r.why
    exempt = set().union(*(a.spec.signed_zero_exempt for a in acts))
    for field, c in r.fields.items():
        if field not in exempt:
            assert c.identical == 1.0, field


# -- how torch adds the bias ---------------------------------------------------

def test_bias_rounded_as_torch_linear_not_fused(dtype):
    """torch's Linear(1, 1, bias=True) rounds w*x, then adds b (no FMA), and
    keeps -0 + -0 = -0 (no accumulation from +0 as the bias-free matmul has).
    Inputs where the fused and the two-rounding results differ are present,
    so a kernel that fused (or folded -0) would fail here."""
    import torch

    rng = np.random.default_rng(3)
    x = (rng.standard_normal(4000) * 10).astype(dtype)
    w, b = dtype.type(0.7317), dtype.type(-1.913)
    if dtype == np.float32:
        fused = (x.astype(np.float64) * np.float64(w) + np.float64(b)).astype(dtype)
        assert np.sum(fused != (x * w) + b) > 100
    # LeakyReLU with slope 1 is the identity, -0 included: the output is z itself
    ident = gk.activation("LeakyReLU", negative_slope=1.0)
    xs = np.concatenate([x, np.array([-0.0, 0.0, -0.0, 2.0], dtype)])
    ws = [(w, b)] * x.size + [(1.0, -0.0), (-1.0, -0.0), (1.0, 0.0), (0.0, -0.0)]
    for i in [0, 1, 2] + list(range(x.size, xs.size)):
        wi, bi = ws[i]
        res = gk.chain_grad(xs[i:i + 1], ident, [wi], biases=[bi])
        lin = torch.nn.Linear(1, 1).to(torch.float32 if dtype == np.float32 else torch.float64)
        with torch.no_grad():
            lin.weight.fill_(float(wi))
            lin.bias.fill_(float(bi))
            want = lin(torch.from_numpy(xs[i:i + 1].reshape(1, 1))).numpy().reshape(1)
        assert _bits(res.output, want), (xs[i], wi, bi, res.output, want)
    res = gk.chain_grad(x, ident, [w], biases=[b])
    assert _bits(res.output, reference.per_sample_grads(x, ident, [w], [b]).output)
    assert _bits(res.output, (x * w) + b)


def test_eager_reference_is_the_seed_loop(dtype):
    """The batched reference equals the notebook's per-sample loop bit for bit
    (the loop is the definition; vmap's bias differs in the sign of zero)."""
    import torch

    acts = [gk.activation("LeakyReLU", negative_slope=1.0), gk.activation("Tanh"),
            gk.activation("Hardshrink")]
    x = np.concatenate([kink_grid(dtype)[::8], np.array([100.0, -100.0, np.inf], dtype)])
    b = np.array([-0.0, 0.5, -0.0], dtype)
    w = np.array([1.0, -1.0, 0.5], dtype)
    batched, _ = reference.eager_bias_grads(x, acts, w, b)
    net = reference.SimpleNet(acts, w, dtype=torch.float32 if dtype == np.float32 else
                              torch.float64, biases=b)
    loop, _ = reference.seed_loop_grads(net, x)
    for got, want in zip([*batched, batched.bias_grads], [*loop, loop.bias_grads]):
        assert _bits(got, want)
    vm_out = reference.per_sample_grads(np.array([-0.0], dtype), acts[0], [1.0]).output
    assert _bits(vm_out, np.zeros(1, dtype))  # bias-free: +0, as Linear(bias=False)
    one = reference.eager_bias_grads(np.array([-0.0], dtype), acts[0], [1.0], [-0.0])[0]
    assert np.signbit(one.output[0])  # with a -0 bias: -0, as Linear(bias=True)


# -- parity: biases -------------------------------------------------------------

@pytest.mark.parametrize("label, dtype", PIECEWISE_CASES, ids=lambda v: str(v))
def test_bias_parity_piecewise_bit_identical(label, dtype):
    """Every piecewise-linear activation with biases: random, tiny and special
    biases on test_parity's inputs, and biases that hit a kink exactly at
    every layer: every result and df/db bit-identical to eager autograd."""
    act = VARIANTS[label]
    x = verify.test_inputs(act, dtype, n_random=600, seed=4)
    for bname, b in bias_sets(3, seed=2).items():
        r = verify.check(act, dtype, W3, x=x, weights_name=bname, biases=b)
        _assert_exact(r, [act])
    grid = kink_grid(dtype)
    b, hits = kink_biases([act] * 3, W3, grid, dtype)
    assert hits[0] >= 1 and all(h is None or h >= 1 for h in hits), hits
    r = verify.check(act, dtype, W3, x=grid, weights_name="kinks", biases=b)
    _assert_exact(r, [act])


def test_bias_parity_deep_and_parallel(monkeypatch):
    """Depth 30 through the parallel build (from SERIAL_BELOW samples on)."""
    monkeypatch.setattr(kernels_cpu, "SERIAL_BELOW", 0)
    act = default_activation("Hardtanh")
    w = verify.weight_sets(30, seed=3)["signed"]
    x = verify.test_inputs(act, np.float32, n_random=1500, seed=5)
    b = np.resize([0.25, -0.5, -0.0, 0.125], 30)
    _assert_exact(verify.check(act, np.float32, w, x=x, biases=b), [act])


def test_bias_parity_smooth(dtype):
    """Smooth chains with biases, under the smooth rules: assert_close, and no
    less accurate than torch float32 (mixed smooth and piecewise-linear: the
    cuda backend's test below, which checks the CPU kernel too)."""
    acts = [default_activation(a) for a in ("Tanh", "ELU", "Softplus", "Tanh")]
    x = verify.test_inputs(acts[0], dtype, n_random=900, seed=6)
    for bname, b in bias_sets(4, seed=1).items():
        r = verify.check(acts, dtype, W3.tolist() + [-1.5], x=x, weights_name=bname, biases=b)
        assert r.ok, f"{bname}: {r.why}"


# -- parity: one activation per layer -------------------------------------------

def _mixed_piecewise():
    import torch

    # a name, an Activation and a torch module, as a single activation accepts
    return ["Hardtanh", gk.activation("LeakyReLU", negative_slope=0.2),
            torch.nn.Softshrink(0.25), "ReLU6", "Hardtanh"]


@pytest.mark.parametrize("with_bias, dtype", [(False, np.dtype(np.float32)),
                                              (True, np.dtype(np.float32)),
                                              (True, np.dtype(np.float64))],
                         ids=["float32-no-bias", "float32-bias", "float64-bias"])
def test_mixed_parity_piecewise_bit_identical(with_bias, dtype):
    """Five layers of four piecewise-linear activations (names, Activation
    objects and torch modules mixed) against the mixed SimpleNet, bit for bit,
    kinks hit exactly through the biases."""
    acts = _mixed_piecewise()
    resolved = [gk.api.resolve_layers(a) for a in acts]
    w = np.array([1.0, -0.5, 2.0, 1.5, -0.25])
    x = verify.test_inputs(resolved[0], dtype, n_random=600, seed=7)
    biases = [None]
    if with_bias:
        grid = kink_grid(dtype)
        b, hits = kink_biases(resolved, w, grid, dtype)
        assert hits[0] >= 1 and all(h is None or h >= 1 for h in hits), hits
        biases = [b, np.resize([-0.0, 0.75, 0.0, -3.0, 6.0], 5)]
        x = np.concatenate([x, grid])
    for b in biases:
        r = verify.check(acts, dtype, w, x=x, biases=b)
        _assert_exact(r, resolved)


def test_mixed_parity_smooth():
    """float32, where the accuracy rule applies (float64: the cuda test's CPU side)."""
    dtype = np.dtype(np.float32)
    acts = ["Tanh", "Softsign", "SELU", "Tanh"]
    x = verify.test_inputs(default_activation("Tanh"), dtype, n_random=900, seed=8)
    for wname, w in verify.weight_sets(4, seed=2).items():
        r = verify.check(acts, dtype, w, x=x, weights_name=wname)
        assert r.ok, f"{wname}: {r.why}"


def test_rrelu_training_in_mixed_chain_with_bias(dtype):
    """RReLU in training mode among other layers: torch's own noise given as
    noise= reproduces torch bit for bit; seed= draws column k as rrelu_slopes
    draws it for layer k's bounds; other layers' columns are not read."""
    rrelu = gk.activation("RReLU", training=True)
    rrelu2 = gk.activation("RReLU", lower=0.25, upper=0.5, training=True)
    acts = [rrelu, "Hardtanh", rrelu2]
    x = verify.test_inputs(rrelu, dtype, n_random=600, seed=9)
    b = np.array([0.25, -0.0, -0.5])
    r = verify.check(acts, dtype, W3, x=x, biases=b)
    _assert_exact(r, [rrelu, default_activation("Hardtanh"), rrelu2])

    xn = -np.abs(x[np.isfinite(x)])
    res = gk.chain_grad(xn, acts, W3, biases=b, seed=11)
    col0 = gk.rrelu_slopes(xn.size, 3, 11, 0.125, 1 / 3, dtype=dtype)[:, 0]
    col2 = gk.rrelu_slopes(xn.size, 3, 11, 0.25, 0.5, dtype=dtype)[:, 2]
    noise = np.stack([col0, np.full(xn.size, np.nan, dtype), col2], axis=1)
    again = gk.chain_grad(xn, acts, W3, biases=b, noise=noise)
    for got, want in zip([*res, res.bias_grads], [*again, again.bias_grads]):
        assert _bits(got, want)
    with pytest.raises(ValueError, match="noise= or seed="):
        gk.chain_grad(xn, acts, W3, biases=b, noise=noise, seed=1)
    with pytest.raises(ValueError, match="seed= is only for .* no layer of this chain"):
        gk.chain_grad(xn, ["Tanh", "ReLU", "Tanh"], W3, biases=b, seed=1)


# -- the cuda backend (simulator without a GPU) ---------------------------------

#: (activations, weights, biases) per case; the same activation sets as the CPU
#: tests above, whose compiled CPU kernels these reuse (each costs ~1.5 s)
CUDA_CASES = {
    "bias": ("Hardtanh", W3, np.array([-0.0, 0.5, -1.0])),
    "mixed": (["Tanh", "Softsign", "SELU", "Tanh"], [1.0, -0.5, 1.5, -1.25], None),
    "mixed-bias": (_mixed_piecewise, [1.0, -0.5, 2.0, 1.5, -0.25], [-0.0, 0.75, 0.0, -3.0, 6.0]),
    "rrelu-training": (lambda: [gk.activation("RReLU", training=True), "Hardtanh",
                                gk.activation("RReLU", lower=0.25, upper=0.5, training=True)],
                       W3, np.array([0.25, -0.0, -0.5])),
}


@pytest.mark.parametrize("backend", ["cuda"])
@pytest.mark.parametrize("case", list(CUDA_CASES))
def test_cuda_backend(backend_ready, backend, case, dtype):
    """The numba-cuda kernel: verify's rules against autograd, and on the
    simulator the CPU kernel's bits, df/db included."""
    acts, w, b = CUDA_CASES[case]
    acts = acts() if callable(acts) else acts
    first = gk.api.resolve_layers(acts)
    first = first[0] if isinstance(first, tuple) else first
    x = verify.test_inputs(first, dtype, n_random=60, seed=3)
    r = verify.check(acts, dtype, w, x=x, biases=b, backend="cuda")
    assert r.ok, r.why
    kw = {"seed": 4} if case == "rrelu-training" else {}
    got = gk.chain_grad(x, acts, w, biases=b, backend="cuda", **kw)
    cpu = gk.chain_grad(x, acts, w, biases=b, **kw)
    assert got.backend == "cuda"
    assert (got.bias_grads is None) == (b is None)
    if CUDASIM or r.exact:
        extra = [] if b is None else [(got.bias_grads, cpu.bias_grads)]
        for g, c in list(zip(got, cpu)) + extra:
            assert _bits(g, c)


def test_cuda_device_arrays_with_bias(backend_ready_cuda):
    cuda = backend_ready_cuda
    x = np.linspace(-3, 3, 50)
    b = np.array([0.5, -0.25, -0.0])
    expect = gk.chain_grad(x, ["Tanh", "ReLU", "Tanh"], W3, biases=b)
    d_x = cuda.to_device(x)
    got = gk.chain_grad(d_x, ["Tanh", "ReLU", "Tanh"], W3, biases=cuda.to_device(b),
                        backend="cuda")
    host = [a.copy_to_host() for a in (*got, got.bias_grads)]
    for g, c in zip(host, [*expect, expect.bias_grads]):
        assert _bits(g, c)
    # out= with bias_grads: written in place
    out = gk.ChainGrad(*(cuda.device_array_like(a) for a in got), bias_grads=cuda.device_array(
        (50, 3)))
    res = gk.chain_grad(d_x, ["Tanh", "ReLU", "Tanh"], W3, biases=b, backend="cuda", out=out)
    assert res.bias_grads is out.bias_grads
    assert _bits(out.bias_grads.copy_to_host(), expect.bias_grads)
    with pytest.raises(ValueError, match="bias_grads overlaps"):
        gk.chain_grad(d_x, "Tanh", W3, biases=b, backend="cuda",
                      out=gk.ChainGrad(*out[:2], out.input_grad, bias_grads=out.weight_grads))


@pytest.fixture
def backend_ready_cuda():
    cuda = pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")
    from .conftest import REAL_GPU

    if not (CUDASIM or REAL_GPU):
        pytest.skip("no GPU and no simulator")
    return cuda


# -- the result, out= and bad input ---------------------------------------------

def test_result_keeps_three_fields():
    x = np.linspace(-2, 2, 9)
    res = gk.chain_grad(x, ["Tanh", "ReLU", "Tanh"], W3, biases=[0.1, 0.2, 0.3])
    y, gw, gx = res
    assert len(res) == 3 and res._fields == ("output", "weight_grads", "input_grad")
    assert res.bias_grads.shape == (9, 3) and res.bias_grads.dtype == np.float64
    assert gk.chain_grad(x, "Tanh", W3).bias_grads is None
    assert gk.chain_grad(x, ["Tanh", "ReLU", "Tanh"], W3).bias_grads is None
    # df/db_k is the gradient into layer k's pre-activation: df/dw_k = df/db_k * a_{k-1}
    a0 = x
    np.testing.assert_allclose(gw[:, 0], res.bias_grads[:, 0] * a0, rtol=1e-15)
    np.testing.assert_array_equal(gx, res.bias_grads[:, 0] * W3[0])
    import pickle

    again = pickle.loads(pickle.dumps(res))
    assert again.backend == "cpu" and np.array_equal(again.bias_grads, res.bias_grads)


def test_out_with_bias_grads_and_inputs_untouched():
    x = np.linspace(-2, 2, 300).astype(np.float32)
    w, b = np.float32([1.0, -2.0, 0.5]), np.float32([0.25, -0.0, 1.0])
    x0, w0, b0 = x.copy(), w.copy(), b.copy()
    expect = gk.chain_grad(x, "Hardtanh", w, biases=b)
    out = gk.ChainGrad(np.empty(300, np.float32), np.empty((300, 3), np.float32),
                       np.empty(300, np.float32), bias_grads=np.empty((300, 3), np.float32))
    res = gk.chain_grad(x, "Hardtanh", w, biases=b, out=out)
    assert res.bias_grads is out.bias_grads and res.output is out.output
    for g, e in zip([*out, out.bias_grads], [*expect, expect.bias_grads]):
        assert _bits(g, e)
    # a plain 3-tuple out=: df/db goes to a new array
    res = gk.chain_grad(x, "Hardtanh", w, biases=b, out=tuple(out))
    assert _bits(res.bias_grads, expect.bias_grads)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)
    np.testing.assert_array_equal(b, b0)
    with pytest.raises(ValueError, match="bias_grads overlaps out.weight_grads"):
        gk.chain_grad(x, "Hardtanh", w, biases=b,
                      out=gk.ChainGrad(*out, bias_grads=out.weight_grads))
    with pytest.raises(ValueError, match="bias_grads overlaps an input"):
        big = np.empty((300, 3), np.float32)
        gk.chain_grad(big[:, 0], "Hardtanh", w, biases=b,
                      out=gk.ChainGrad(*out, bias_grads=big))
    with pytest.raises(ValueError, match=r"out.bias_grads must have shape \(300, 3\)"):
        gk.chain_grad(x, "Hardtanh", w, biases=b,
                      out=gk.ChainGrad(*out, bias_grads=np.empty((300, 2), np.float32)))


@pytest.mark.parametrize("biases, match", [
    ([1.0, 2.0], r"biases must be 1-D with one value per layer \(L = 3"),
    ([[1.0, 2.0, 3.0]], "biases must be 1-D"),
    ([1.0, np.nan, 0.0], r"biases must be finite, got biases\[1\] = nan"),
    ([1.0, 0.0, -np.inf], r"biases must be finite, got biases\[2\] = -inf"),
    (np.array([1.0, 1e300, 0.0]), "biases holds 1e\\+300, which overflows float32"),
])
def test_bad_biases(biases, match):
    x = np.ones(4, np.float32)
    with pytest.raises(ValueError, match=match):
        gk.chain_grad(x, "Tanh", W3, biases=biases)
    with pytest.raises(ValueError, match=match):
        gk.chain_grad(x, ["Tanh", "ReLU", "Tanh"], W3, biases=biases)


def test_bad_biases_type():
    with pytest.raises(TypeError, match="biases must hold real numbers"):
        gk.chain_grad(np.ones(2), "Tanh", W3, biases=["a", "b", "c"])


def test_activation_per_layer_length_and_type():
    x = np.ones(4)
    with pytest.raises(ValueError, match="got 2 activations for 3 layers"):
        gk.chain_grad(x, ["Tanh", "ReLU"], W3)
    with pytest.raises(ValueError, match="got 4 activations for 3 layers"):
        gk.chain_grad(x, ["Tanh"] * 4, W3, biases=[0, 0, 0])
    with pytest.raises(ValueError, match="empty sequence"):
        gk.chain_grad(x, [], W3)
    with pytest.raises(ValueError, match="unknown activation 'Nope'"):
        gk.chain_grad(x, ["Tanh", "Nope", "ReLU"], W3)
    with pytest.raises(TypeError, match="activation must be"):
        gk.chain_grad(x, ["Tanh", 3, "ReLU"], W3)


@pytest.mark.parametrize("backend", ["native", "native-cuda"])
def test_native_backends_refuse_by_name(backend):
    """The C API has no biases and one activation: a BackendUnavailableError
    naming what is missing, before any library is needed."""
    x = np.ones(3)
    with pytest.raises(gk.BackendUnavailableError, match="does not support biases"):
        gk.chain_grad(x, "ReLU", W3, biases=[0.0, 0.0, 0.0], backend=backend)
    with pytest.raises(gk.BackendUnavailableError, match="an activation per layer"):
        gk.chain_grad(x, ["ReLU", "Tanh", "ReLU"], W3, backend=backend)
    with pytest.raises(gk.BackendUnavailableError, match="biases or an activation per layer"):
        gk.chain_grad(x, ["ReLU", "Tanh", "ReLU"], W3, biases=[0, 0, 0], backend=backend)


def test_native_runs_equal_layers_as_plain(native_host):
    x = np.linspace(-3, 3, 101)
    got = gk.chain_grad(x, ["ReLU"] * 3, W3, backend="native")
    want = gk.chain_grad(x, "ReLU", W3)
    for g, c in zip(got, want):
        assert _bits(g, c)


# -- zero cost when unused; kernels and their cache keys ------------------------

def test_plain_chain_keeps_its_own_kernel(monkeypatch):
    """One activation (or L equal ones) without biases runs the plain kernel:
    the layered one is never built for it."""
    built = []
    monkeypatch.setattr(kernels_cpu, "get_layered_kernel",
                        lambda *a, **k: built.append(a) or pytest.fail("layered kernel used"))
    x = np.linspace(-1, 1, 7)
    a = gk.chain_grad(x, ["Tanh", "Tanh", "Tanh"], W3)
    b = gk.chain_grad(x, "Tanh", W3)
    for u, v in zip(a, b):
        assert _bits(u, v)
    assert not built


def test_layered_kernel_one_per_activation_set_and_bias_flag():
    """One compiled kernel per (slots, bias flag): any depth or layer order of
    the same activations reuses it; its disk-cache key names every slot's
    functions, the noise and bias flags, so no other plan can hit it."""
    acts = [gk.activation(n) for n in ("Tanh", "ReLU", "ReLU6")]
    tanh, relu, relu6 = acts
    plans = {
        "tr": LayerPlan([tanh, relu], False),
        "tr-deeper": LayerPlan([tanh, relu, relu, tanh, relu], False),
        "tr-bias": LayerPlan([tanh, relu], True),
        "rt": LayerPlan([relu, tanh], False),
        "t-relu6": LayerPlan([tanh, relu6], False),
        "t-leaky": LayerPlan([tanh, gk.activation("LeakyReLU")], False),
        "t-leaky2": LayerPlan([tanh, gk.activation("LeakyReLU", negative_slope=0.3)], False),
        "t-rrelu-train": LayerPlan([tanh, gk.activation("RReLU", training=True)], False),
        "t-rrelu-eval": LayerPlan([tanh, gk.activation("RReLU", training=False)], False),
    }
    kernel = {k: kernels_cpu.get_layered_kernel(p, parallel=False) for k, p in plans.items()}
    assert kernel["tr"] is kernel["tr-deeper"]
    # parameters are a table, not code: RReLU in eval mode is LeakyReLU's code
    assert kernel["t-leaky"] is kernel["t-leaky2"] is kernel["t-rrelu-eval"]
    distinct = [kernel[k] for k in ("tr", "tr-bias", "rt", "t-relu6", "t-leaky",
                                    "t-rrelu-train")]
    assert len({id(k) for k in distinct}) == len(distinct)
    assert len({k._cache._key for k in distinct}) == len(distinct)
    np.testing.assert_array_equal(plans["tr-deeper"].slot_index, [0, 1, 1, 0, 1])


def test_layer_order_is_kept():
    """The same activations in another order: another function, computed right."""
    x = np.linspace(-3, 3, 61)
    a = gk.chain_grad(x, ["Tanh", "ReLU", "Tanh"], W3, biases=[0.5, 1.0, -0.5])
    b = gk.chain_grad(x, ["ReLU", "Tanh", "Tanh"], W3, biases=[0.5, 1.0, -0.5])
    assert not np.array_equal(a.output, b.output)
    for res, acts in ((a, ["Tanh", "ReLU", "Tanh"]), (b, ["ReLU", "Tanh", "Tanh"])):
        ref = reference.per_sample_grads(x, acts, W3, [0.5, 1.0, -0.5])
        np.testing.assert_allclose(res.output, ref.output, rtol=1e-14, atol=1e-15)
        np.testing.assert_allclose(res.bias_grads, ref.bias_grads, rtol=1e-13, atol=1e-15)


# -- the command line -------------------------------------------------------------

def test_cli_chain_biases_and_activation_per_layer(capsys):
    import json

    from gradkern.cli import main

    assert main(["chain", "--activation", "Tanh,ReLU,Tanh", "--biases", "0.5,-0.25,-0",
                 "--x", "1.5", "--dtype", "float64", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["activation"] == "Tanh(), ReLU(), Tanh()" and r["agree"]
    ref = reference.per_sample_grads(np.float64([1.5]), ["Tanh", "ReLU", "Tanh"], [1.0] * 3,
                                     [0.5, -0.25, -0.0])
    assert r["bias_grads"] == r["autograd_bias_grads"] == ref.bias_grads[0].tolist()
    assert main(["chain", "--activation", "LeakyReLU,ReLU", "--param", "negative_slope=0.2",
                 "--x", "-2", "--biases", "0,1"]) == 0
    text = capsys.readouterr().out
    assert "LeakyReLU(negative_slope=0.2), ReLU()" in text and "gradient of b" in text
    assert main(["chain", "--activation", "Tanh,ReLU", "--depth", "3"]) == 2
    assert "depth 3 does not match 2 activations" in capsys.readouterr().err
    assert main(["chain", "--activation", "Tanh,ReLU", "--param", "alpha=2"]) == 2
    assert "no activation of Tanh, ReLU has a parameter 'alpha'" in capsys.readouterr().err
    assert main(["chain", "--activation", "Tanh", "--biases", "1,nan"]) == 2
    assert "biases must be finite" in capsys.readouterr().err


_PTX_CODE = """
import json, re
import numpy as np
import gradkern as gk
from gradkern.chain.cuda_kernel import build_layered_kernel, kernel_ptx
from gradkern.chain.layers import LayerPlan
from gradkern.ptx import _compute_capability, nvvm_available

out = None
if nvvm_available():
    out = {}
    plans = {"piecewise-bias": (["ReLU", "Hardtanh", "LeakyReLU"], True),
             "mixed-bias": (["Tanh", "ReLU"], True),
             "rrelu-training-bias": ([gk.activation("RReLU", training=True), "ReLU6"], True)}
    for name, (acts, bias) in plans.items():
        plan = LayerPlan([gk.api.resolve_layers(a) for a in acts], bias)
        for dt in ("float32", "float64"):
            with _compute_capability((9, 0)):
                ptx = kernel_ptx(build_layered_kernel(plan, np.dtype(dt)), (9, 0, "a"))
            out[name + "/" + dt] = {"fma": len(re.findall(r"\\bfma\\.rn\\.f(?:32|64)", ptx)),
                                    "calls": len(re.findall(r"\\bcall", ptx)),
                                    "f64": len(re.findall(r"\\.f64\\b", ptx))}
print(json.dumps(out))
"""


def test_cuda_layered_kernel_compiles_for_the_gpu():
    """The simulator runs the layered kernel as Python; NVVM shows that the GPU
    compiler takes it (the per-slot closures inlined, no calls), that ``w*a +
    b`` stays two roundings (no fma.rn in a chain without transcendentals),
    and that float32 kernels hold no float64 arithmetic."""
    import json
    import os
    import subprocess
    import sys

    pytest.importorskip("numba.cuda", reason="numba-cuda (the `cuda` extra) not installed")
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "0"}
    proc = subprocess.run([sys.executable, "-c", _PTX_CODE], capture_output=True, text=True,
                          env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.splitlines()[-1])
    if report is None:
        pytest.skip("NVVM not available (install numba-cuda[cu13])")
    for key, facts in report.items():
        assert facts["calls"] == 0, key
        if key.endswith("float32"):
            assert facts["f64"] == 0, key
        if not key.startswith("mixed"):  # Tanh's vector math calls fma() itself
            assert facts["fma"] == 0, key


def test_every_activation_one_per_layer():
    """23 distinct activations, one per layer: one slot each in one kernel (a chain
    of 23 nested ifs failed in LLVM; the dispatch is a tree), against autograd."""
    acts = [default_activation(name) for name in gk.ACTIVATIONS]
    assert len({a.name for a in acts}) == len(gk.ACTIVATIONS) >= 23
    dtype = np.dtype(np.float64)
    x = np.linspace(-3, 3, 301)
    r = verify.check(acts, dtype, np.ones(len(acts)), x=x, weights_name="ones")
    assert r.ok, r.why
    res = gk.chain_grad(x, acts[::-1], np.ones(len(acts)))  # same slots, another order
    assert np.isfinite(res.output).all()
