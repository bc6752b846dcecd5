"""``Activation.forward`` / ``.derivative`` equal the torch.nn module and its
autograd, element by element, sign of zero included.

Every registry variant (RReLU in eval and in training mode, ...), float32 and
float64, at special values (+-0, +-inf, NaN, the kinks and their one-ulp
neighbours, denormals) and random inputs of magnitudes 1e-8 .. 1e2.
Piecewise-linear activations are held to the same bits as torch on both of its
paths (SIMD body of a contiguous tensor, scalar loop of a strided one);
smooth ones to ``torch.testing.assert_close``'s defaults, and where torch's
result is a zero, to its sign.  Two exceptions, both torch's own: the
derivative at NaN is NaN (torch's depends on the element's path), and
Softshrink's zero output is compared by value (``signed_zero_exempt``: torch's
scalar path gives -0.0 inside the band, its SIMD path +0.0).
"""
import numpy as np
import pytest
import torch

import gradkern as gk
from gradkern import reference
from gradkern import verify
from gradkern.chain import elementwise

from .conftest import VARIANTS

_TORCH = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}
_UINT = {np.dtype(np.float32): np.uint32, np.dtype(np.float64): np.uint64}


def _inputs(act, dtype, seed=0):
    """Special values, denormals of both signs, and random magnitudes 1e-8 .. 1e2."""
    dtype = np.dtype(dtype)
    rng = np.random.default_rng(seed)
    tiny = float(np.finfo(dtype).tiny)
    mags = 10.0 ** rng.uniform(-8, 2, 3000)
    denormals = tiny * rng.uniform(0, 1, 200)
    random = np.concatenate([mags, -mags, denormals, -denormals,
                             rng.standard_normal(1000) * 3]).astype(dtype)
    # special values last and first: on torch's SIMD body and on its scalar tail
    special = verify.special_values(act, dtype)
    return np.concatenate([special, random, special])


def _torch(act, x, strided=False):
    """(output, autograd derivative, recorded noise or None) of the torch.nn module
    on ``x``; ``strided``: a non-contiguous view, which torch runs element by
    element on its scalar path."""
    module = reference.to_torch(act, record_noise=True).to(_TORCH[x.dtype])
    if strided:
        base = torch.zeros(2 * x.size, dtype=_TORCH[x.dtype])
        base[::2] = torch.from_numpy(x)
        xt = base[::2].detach().requires_grad_(True)
        assert not xt.is_contiguous()
    else:
        xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = module(xt)
    y.backward(torch.ones_like(y))
    noise = module.recorded[-1].numpy() if act.stochastic else None
    return y.detach().numpy(), xt.grad.numpy(), noise


def _same_bits(a, b):
    """Bit-equal, NaN payloads aside."""
    ai, bi = a.view(_UINT[a.dtype]), b.view(_UINT[b.dtype])
    return (ai == bi) | (np.isnan(a) & np.isnan(b))


def _check_exact(got, want, x, what, by_value=False):
    same = (got == want) | (np.isnan(got) & np.isnan(want)) if by_value else \
        _same_bits(got, want)
    bad = np.flatnonzero(~same)
    assert bad.size == 0, (f"{what}: {bad.size} differ, first x={x[bad[0]]!r}: "
                           f"gradkern {got[bad[0]]!r}, torch {want[bad[0]]!r}")


def _check_close(got, want, x, what):
    """Within torch.testing.assert_close's default tolerances (gradkern.verify's
    table; NaN and inf where torch has them), and the sign of every zero."""
    c = verify.compare(got, want, got.dtype)
    assert c.close, f"{what}: not within assert_close's tolerances (max abs diff " \
                    f"{c.max_abs:.3g}, max rel diff {c.max_rel:.3g})"
    zero = (got == 0) & (want == 0)
    wrong = zero & (np.signbit(got) != np.signbit(want))
    bad = np.flatnonzero(wrong)
    assert bad.size == 0, f"{what}: sign of zero differs at x={x[bad[0]]!r}: " \
                          f"gradkern {got[bad[0]]!r}, torch {want[bad[0]]!r}"


def _compare(act, x, y, d, y_ref, d_ref, what):
    nan_in = np.isnan(x)
    assert np.isnan(d[nan_in]).all(), f"{what}: derivative at NaN is not NaN"
    if act.piecewise_linear:
        exempt = act.spec.signed_zero_exempt
        _check_exact(y, y_ref, x, f"{what} forward", by_value="output" in exempt)
        _check_exact(d[~nan_in], d_ref[~nan_in], x[~nan_in], f"{what} derivative",
                     by_value="input_grad" in exempt)
    else:
        _check_close(y, y_ref, x, f"{what} forward")
        _check_close(d[~nan_in], d_ref[~nan_in], x[~nan_in], f"{what} derivative")


@pytest.mark.parametrize("label", VARIANTS)
def test_elementwise_equals_the_torch_module(label, dtype):
    act = VARIANTS[label]
    x = _inputs(act, dtype)
    paths = [False, True] if act.piecewise_linear else [False]
    for strided in paths:
        y_ref, d_ref, noise = _torch(act, x, strided)
        y, d = act.forward(x, noise=noise), act.derivative(x, noise=noise)
        assert y.dtype == d.dtype == dtype and y.shape == d.shape == x.shape
        _compare(act, x, y, d, y_ref, d_ref, f"{label} {dtype} {'strided' if strided else ''}")


@pytest.mark.parametrize("label", [label for label, act in VARIANTS.items()
                                   if "output" not in act.spec.signed_zero_exempt])
def test_negative_zero_keeps_its_sign_as_in_torch(label, dtype):
    """The case the depth-1 chain got wrong: its Linear step made -0.0 +0.0
    (ReLU, ReLU6, Hardtanh, PReLU, LeakyReLU, RReLU, ELU, SELU, CELU, Tanh,
    Softsign give -0.0 in torch)."""
    act = VARIANTS[label]
    x = np.array([-0.0, 0.0], dtype)
    y_ref, d_ref, noise = _torch(act, x)
    y = act.forward(x, noise=noise)
    assert np.signbit(y).tolist() == np.signbit(y_ref).tolist(), (y, y_ref)
    assert np.array_equal(act.derivative(x, noise=noise), d_ref)


def test_the_chain_keeps_linears_positive_zero():
    """Only the elementwise API changed: in a chain, Linear(1, 1) still turns
    -0.0 into +0.0 before the activation, as torch's does."""
    res = gk.chain_grad(np.array([-0.0], np.float32), "ReLU", [1.0])
    assert not np.signbit(res.output[0])
    assert np.signbit(gk.activation("ReLU").forward(np.float32(-0.0)))


@pytest.mark.parametrize("label", VARIANTS)
def test_parallel_build_gives_the_same_bits(label, dtype, monkeypatch):
    act = VARIANTS[label]
    x = np.tile(_inputs(act, dtype, seed=1), 4)
    kw = {"seed": 9} if act.stochastic else {}
    monkeypatch.setattr(elementwise, "SERIAL_BELOW", 10**12)
    serial = elementwise.elementwise(x, act, **kw)
    monkeypatch.setattr(elementwise, "SERIAL_BELOW", 0)
    parallel = elementwise.elementwise(x, act, **kw)
    for a, b in zip(serial, parallel):
        assert _same_bits(a, b).all()


def test_any_shape_and_the_callers_array_untouched():
    act = gk.activation("ELU")
    x = np.array([[-1.0, -0.0], [2.0, np.nan]], np.float32)
    before = x.copy()
    y, d = act.forward(x), act.derivative(x)
    assert y.shape == d.shape == (2, 2) and y.dtype == np.float32
    assert before.tobytes() == x.tobytes()
    assert act.forward(-0.0).shape == () and np.signbit(act.forward(-0.0))
    assert act.forward([1, -2]).dtype == np.float64  # ints: float64, as in chain_grad
    xt = torch.tensor([-0.5, 0.5])
    assert np.array_equal(act.forward(xt), act.forward(xt.numpy()))
    with pytest.raises(TypeError, match="x must hold real numbers"):
        act.forward(np.array(["a"]))


def test_rrelu_training_slopes():
    """forward and derivative of one draw: the same seed= (layer 1 of a chain
    with that seed) or the same noise=; without either, a fresh draw per call."""
    act = gk.activation("RReLU", training=True)
    x = np.linspace(-3, 3, 101)
    chain = gk.chain_grad(x, act, [1.0], seed=4)
    y, d = act.forward(x, seed=4), act.derivative(x, seed=4)
    neg = x < 0
    assert np.array_equal(y[neg], chain.output[neg]) and np.array_equal(d, chain.input_grad)
    slopes = gk.rrelu_slopes(x.size, 1, 4, 1 / 8, 1 / 3, dtype=np.float64)[:, 0]
    assert np.array_equal(act.forward(x, noise=slopes), y)
    assert not np.array_equal(act.forward(x), act.forward(x))
    with pytest.raises(ValueError, match="noise must have the shape of x"):
        act.forward(x, noise=slopes[:5])
    with pytest.raises(ValueError, match="not both"):
        act.forward(x, noise=slopes, seed=1)
    with pytest.raises(ValueError, match="only for an activation that draws"):
        gk.activation("ReLU").derivative(x, seed=1)
