"""The registry and each activation's scalar forward/derivative, element by element.

The chain of depth 1 with weight 1 is the activation itself (z = 1*x exactly),
so `Activation.forward` / `.derivative` are compared with the torch.nn module
applied to the same tensor, at random and special inputs, in both dtypes.
"""
import inspect

import numpy as np
import pytest
import torch

import gradkern as gk
from gradkern import reference
from gradkern import verify

from .conftest import ACT_NAMES, VARIANTS, default_activation


def test_registry_is_the_seed_list_then_the_new_ones():
    seed = ("ELU, Hardtanh, LeakyReLU, LogSigmoid, PReLU, ReLU, ReLU6, RReLU, SELU, CELU, "
            "Sigmoid, Softplus, Softshrink, Softsign, Tanh, Tanhshrink, Hardshrink").split(", ")
    new = ["GELU", "SiLU", "Mish", "Hardswish", "Hardsigmoid", "Threshold"]
    assert list(gk.ACTIVATIONS) == seed + new
    from gradkern.experiments import SEED_ACTIVATIONS

    assert list(SEED_ACTIVATIONS) == seed


@pytest.mark.parametrize("name", ACT_NAMES)
def test_defaults_match_torch_constructor(name):
    sig = inspect.signature(getattr(torch.nn, name).__init__)
    torch_defaults = {k: p.default for k, p in sig.parameters.items()
                      # min_value/max_value: Hardtanh's deprecated aliases (default None)
                      if k not in ("self", "inplace", "device", "dtype", "args", "kwargs",
                                   "min_value", "max_value")
                      and p.default is not inspect.Parameter.empty}
    ours = {k: v for k, v in gk.ACTIVATIONS[name].defaults.items() if k != "training"}
    required = {k for k, v in ours.items() if v is gk.activations.REQUIRED}
    assert {k: v for k, v in ours.items() if k not in required} == torch_defaults
    # REQUIRED: what torch.nn's constructor has no default for (Threshold's two)
    assert required == {k for k, p in sig.parameters.items()
                        if p.default is inspect.Parameter.empty and k not in ("self", "args", "kwargs")}


def test_missing_required_parameters_are_named():
    """torch.nn.Threshold(threshold, value) has no defaults: a missing one is a
    ValueError naming it, as torch's TypeError does."""
    with pytest.raises(TypeError, match="threshold.*value"):
        torch.nn.Threshold()
    with pytest.raises(ValueError, match="Threshold needs 'threshold', 'value'"):
        gk.activation("Threshold")
    with pytest.raises(ValueError, match="Threshold needs 'value'"):
        gk.activation("Threshold", threshold=0.5)
    with pytest.raises(ValueError, match="Threshold needs 'threshold'"):
        gk.chain_grad([1.0], "Threshold", [1.0])
    assert gk.activation("Threshold", threshold=0.5, value=-1) == gk.activations.from_torch(
        torch.nn.Threshold(0.5, -1.0))


def test_choice_parameters():
    """GELU's approximate is one of torch's two strings, and chooses the kernel pair."""
    tanh = gk.activation("GELU", approximate="tanh")
    assert tanh.ops() != gk.activation("GELU").ops()
    assert tanh.label == "GELU(tanh)" and gk.activation("GELU").label == "GELU"
    with pytest.raises(ValueError, match="GELU: approximate must be one of 'none', 'tanh'"):
        gk.activation("GELU", approximate="exact")
    with pytest.raises(TypeError, match="GELU: approximate must be a str"):
        gk.activation("GELU", approximate=1)
    assert gk.activations.from_torch(torch.nn.GELU("tanh")) == tanh


def test_rrelu_training_default_matches_a_fresh_module():
    assert gk.activation("RReLU").params["training"] is torch.nn.RReLU().training


@pytest.mark.parametrize("spelling", ["tanh", "TANH", "Tanh", "leakyrelu", "LeakyReLU", "relu6"])
def test_names_are_case_insensitive(spelling):
    assert gk.activation(spelling).name.lower() == spelling.lower()


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ValueError, match="valid names: ELU, Hardtanh"):
        gk.activation("Softmax")


def test_unknown_parameter_lists_valid_ones():
    with pytest.raises(ValueError, match="valid parameters: beta, threshold"):
        gk.activation("Softplus", alpha=1.0)
    with pytest.raises(ValueError, match="valid parameters: none"):
        gk.activation("Tanh", alpha=1.0)


@pytest.mark.parametrize("name, params, exc", [
    ("Hardtanh", {"min_val": 1.0, "max_val": -1.0}, ValueError),
    ("Hardtanh", {"min_val": 1.0, "max_val": 1.0}, ValueError),
    ("RReLU", {"lower": 0.5, "upper": 0.1}, ValueError),
    ("CELU", {"alpha": 0.0}, ValueError),
    ("Softplus", {"beta": 0.0}, ValueError),
    ("Softshrink", {"lambd": -0.1}, ValueError),
    ("PReLU", {"num_parameters": 3}, ValueError),
    ("ELU", {"alpha": float("nan")}, ValueError),
    ("ELU", {"alpha": "1"}, TypeError),
    ("ELU", {"alpha": True}, TypeError),
    ("RReLU", {"training": 1}, TypeError),
    ("PReLU", {"num_parameters": 1.5}, TypeError),
])
def test_bad_parameters(name, params, exc):
    with pytest.raises(exc, match=name):
        gk.activation(name, **params)


def test_activation_objects_are_values():
    a, b = gk.activation("ELU", alpha=0.5), gk.activation("elu", alpha=0.5)
    assert a == b and hash(a) == hash(b) and repr(a) == "ELU(alpha=0.5)"
    assert gk.activation("ELU") != a
    with pytest.raises(AttributeError):
        a.params = {}
    with pytest.raises(TypeError):
        a.params["alpha"] = 2.0


@pytest.mark.parametrize("module, expected", [
    (torch.nn.ELU(alpha=0.3), gk.activation("ELU", alpha=0.3)),
    (torch.nn.Hardtanh(-2.0, 3.0), gk.activation("Hardtanh", min_val=-2.0, max_val=3.0)),
    (torch.nn.LeakyReLU(0.2), gk.activation("LeakyReLU", negative_slope=0.2)),
    (torch.nn.PReLU(init=0.1), gk.activation("PReLU", init=float(np.float32(0.1)))),
    (torch.nn.RReLU(0.1, 0.2).eval(), gk.activation("RReLU", lower=0.1, upper=0.2, training=False)),
    (torch.nn.Softplus(2.0, 10.0), gk.activation("Softplus", beta=2.0, threshold=10.0)),
    (torch.nn.ReLU6(), gk.activation("ReLU6")),
    (torch.nn.Hardshrink(0.3), gk.activation("Hardshrink", lambd=0.3)),
    (torch.nn.GELU(), gk.activation("GELU")),
    (torch.nn.SiLU(), gk.activation("SiLU")),
    (torch.nn.Mish(), gk.activation("Mish")),
    (torch.nn.Hardswish(), gk.activation("Hardswish")),
    (torch.nn.Hardsigmoid(), gk.activation("Hardsigmoid")),
    (torch.nn.Threshold(-1.5, 2.0), gk.activation("Threshold", threshold=-1.5, value=2.0)),
])
def test_from_torch_module(module, expected):
    assert gk.activations.from_torch(module) == expected


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="supported torch.nn modules"):
        gk.chain_grad([1.0], torch.nn.Softmax(dim=0), [1.0])


# --- float32 constants rounded as PyTorch rounds them (torch-conventions.md §1.1) ---
def _bits(v):
    return int(np.array(v, np.float32).view(np.uint32))


def test_float32_constants():
    assert _bits(gk.activation("SELU").kernel_params(np.float32)[0]) == 0x3FE10966  # alpha*scale
    assert _bits(gk.activation("SELU").kernel_params(np.float32)[1]) == 0x3F867D5F  # scale
    assert _bits(gk.activation("LeakyReLU").kernel_params(np.float32)[0]) == 0x3C23D70A
    rrelu = gk.activation("RReLU", training=False).kernel_params(np.float32)[0]
    assert rrelu == np.float32(0.22916667)
    # GELU: M_SQRT1_2, kBeta = 1/sqrt(2 pi); tanh: sqrt(2/pi), kappa, 3*kappa formed in float
    gelu = [_bits(v) for v in gk.activation("GELU").kernel_params(np.float32)[:2]]
    assert gelu == [0x3F3504F3, 0x3ECC422A]
    tanh = [_bits(v) for v in gk.activation("GELU", approximate="tanh").kernel_params(np.float32)]
    assert tanh[:3] == [0x3F4C422A, 0x3D372713, 0x3E095D4E]
    assert _bits(np.float32(0.134145)) == 0x3E095D4F  # not float32(3*kappa in double)
    # Hardsigmoid's one_sixth is 1.0f/6.0f, in float64 too
    assert gk.activation("Hardsigmoid").kernel_params(np.float64)[0] == 0.1666666716337204
    assert gk.activation("SELU").kernel_params(np.float64)[0] == (
        gk.activations.table.SELU_ALPHA * gk.activations.table.SELU_SCALE)


# --- values at the kinks: the registry's kink_derivatives, measured on torch 2.13
KINKS = [(name, params, x, expected) for name, spec in gk.ACTIVATIONS.items()
         for params, x, expected in spec.kink_derivatives]


@pytest.mark.parametrize("label", [label for label, act in VARIANTS.items() if not act.stochastic])
def test_every_kink_has_a_measured_derivative(label):
    """Each kink of each deterministic variant has torch's derivative recorded
    in the registry (so the test below checks it on both sides)."""
    act = VARIANTS[label]
    recorded = {x for params, x, _ in act.spec.kink_derivatives
                if all(act.params[k] == v for k, v in params.items())}
    assert set(act.kinks()) <= recorded, f"{label}: no measured derivative at " \
        f"{sorted(set(act.kinks()) - recorded)}"


@pytest.mark.parametrize("name, params, x, expected", KINKS)
def test_derivative_at_kinks(name, params, x, expected):
    act = gk.activation(name, **params)
    got = act.derivative(np.array([x], np.float32))[0]
    assert got == np.float32(expected)
    module = reference.to_torch(act)
    xt = torch.tensor([x], requires_grad=True)
    module(xt).backward()
    assert got == xt.grad[0].item()


def _torch_elementwise(act, x):
    module = reference.to_torch(act).to(torch.float64 if x.dtype == np.float64 else torch.float32)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = module(xt)
    y.backward(torch.ones_like(y))
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("name", ACT_NAMES)
def test_elementwise_against_torch(name, dtype):
    act = default_activation(name)
    x = verify.test_inputs(act, dtype, n_random=500, seed=3)
    y_ref, d_ref = _torch_elementwise(act, x)
    y, d = act.forward(x), act.derivative(x)
    ok = ~np.isnan(x)
    if act.piecewise_linear:
        assert np.array_equal(y, y_ref, equal_nan=True)
        assert np.array_equal(d[ok], d_ref[ok])
    else:
        torch.testing.assert_close(y, y_ref, equal_nan=True)
        torch.testing.assert_close(d[ok], d_ref[ok], equal_nan=True)
    assert np.isnan(y[~ok]).all() and np.isnan(d[~ok]).all()


def test_kinks_listed_for_every_activation():
    """Every activation defined piecewise lists its kinks (the seed's smooth ones
    list 0, their special point); GELU, SiLU and Mish are one formula everywhere
    and list none, but have measured special inputs all the same."""
    for name in ACT_NAMES:
        spec = gk.ACTIVATIONS[name]
        assert spec.kink_derivatives, name
        if name not in ("GELU", "SiLU", "Mish"):
            assert default_activation(name).kinks(), name
    assert gk.activation("Softplus", beta=2.0, threshold=10.0).kinks()[0] == 5.0
    assert gk.activation("Threshold", threshold=-2.0, value=1.0).kinks() == (-2.0,)


# --- PReLU's weight is float32 in torch, also in a float64 net ----------------------------

def test_prelu_float64_uses_torchs_float32_weight():
    """nn.PReLU(init=0.1) holds float32(0.1) = 0.10000000149011612, and the float64
    SimpleNet (built in float32, then .to(float64)) computes with that value."""
    act = gk.activation("PReLU", init=0.1)
    assert act.params["init"] == 0.10000000149011612
    assert gk.activations.from_torch(torch.nn.PReLU(init=0.1)) == act
    x = np.concatenate([np.linspace(-3, 3, 61), [-1e-300, -0.0, 0.0, 7.5]])
    w = [1.0, -0.7, 2.0]
    net = reference.SimpleNet(torch.nn.PReLU(init=0.1), w, dtype=torch.float64)
    ref, _ = reference.seed_loop_grads(net, x)
    res = gk.chain_grad(x, act, w)
    for field, a, b in zip(res._fields, res, ref):
        assert a.dtype == np.float64 and a.tobytes() == b.tobytes(), field
    vmapped = reference.per_sample_grads(x, act, w)
    assert res.weight_grads.tobytes() == vmapped.weight_grads.tobytes()


def test_prelu_module_with_a_float64_only_weight_is_refused():
    module = torch.nn.PReLU().double()
    with torch.no_grad():
        module.weight.fill_(0.1)  # 0.1 in float64, not a float32 value
    with pytest.raises(ValueError, match="PReLU: the module's weight 0.1 is not a float32"):
        gk.chain_grad([1.0], module, [1.0])


# --- parameters torch refuses, or that give non-finite numbers ---------------------------

def _torch_forward_backward(name, params, dtype):
    module = reference.to_torch(gk.activation(name)) if not params else getattr(
        torch.nn, name)(**{k: v for k, v in params.items() if k != "training"})
    module = module.to(dtype)
    if name == "RReLU":
        module.train(params.get("training", True))
    x = torch.tensor([-1.0, 0.5], dtype=dtype, requires_grad=True)
    module(x).sum().backward()
    return x.grad


# torch 2.13 raises for each of these (mostly "value cannot be converted to type float
# without overflow"; RReLU: "Expected to - from <= std::numeric_limits<T>::max()"), so
# gradkern does too, with a ValueError naming the parameter (and the dtype)
TORCH_REFUSES = [
    ("LeakyReLU", {"negative_slope": 1e300}, torch.float32,
     "negative_slope = 1e\\+300 overflows float32"),
    ("ELU", {"alpha": -1e300}, torch.float32, "alpha = -1e\\+300 overflows float32"),
    ("ELU", {"alpha": 10**400}, torch.float64, "alpha must be finite"),
    ("CELU", {"alpha": 1e-40}, torch.float32, "1/alpha = 1e\\+40 overflows float32"),
    ("CELU", {"alpha": 1e300}, torch.float64, "CELU: alpha=1e\\+300 overflows float32"),
    ("RReLU", {"lower": -1e300}, torch.float32, "lower=-1e\\+300 overflows float32"),
    ("RReLU", {"lower": -1e300, "training": False}, torch.float32,
     "\\(lower \\+ upper\\) / 2 = .* overflows float32"),
    ("RReLU", {"lower": -1e308, "upper": 1e308}, torch.float64, "upper - lower .* overflows"),
    ("RReLU", {"lower": 0.5, "upper": 0.25}, torch.float64, "lower .* must be <= upper"),
    ("Hardtanh", {"min_val": -1e300}, torch.float32, "min_val = -1e\\+300 overflows float32"),
    ("Softplus", {"threshold": 1e300}, torch.float32, "threshold = 1e\\+300 overflows float32"),
    ("Softshrink", {"lambd": 1e300}, torch.float32, "lambd = 1e\\+300 overflows float32"),
    ("Softshrink", {"lambd": -1.0}, torch.float64, "lambd must be >= 0"),
    ("Hardshrink", {"lambd": 1e300}, torch.float32, "lambd = 1e\\+300 overflows float32"),
    ("PReLU", {"init": 1e300}, torch.float64, "init=1e\\+300 overflows float32"),
]


@pytest.mark.parametrize("name, params, tdtype, match", TORCH_REFUSES)
def test_parameters_torch_refuses_are_value_errors(name, params, tdtype, match):
    with pytest.raises((RuntimeError, OverflowError, AssertionError)):
        _torch_forward_backward(name, params, tdtype)
    dtype = np.float32 if tdtype == torch.float32 else np.float64
    with pytest.raises(ValueError, match=match):
        gk.chain_grad(np.array([-1.0, 0.5], dtype), gk.activation(name, **params), [1.0])


# torch computes non-finite numbers from these; gradkern refuses them (documented in
# gradkern.activation's docstring and the README)
NON_FINITE_IN_TORCH = [
    ("CELU", {"alpha": 1e-50}, torch.float64, "alpha=1e-50 is 0 in float32"),
    ("RReLU", {"lower": 1e308, "upper": 1.5e308, "training": False}, torch.float64,
     "\\(lower \\+ upper\\) / 2 = .* overflows float64"),
    ("ELU", {"alpha": float("inf")}, torch.float64, "alpha must be finite"),
]


@pytest.mark.parametrize("name, params, tdtype, match", NON_FINITE_IN_TORCH)
def test_parameters_torch_turns_into_nan_or_inf_are_value_errors(name, params, tdtype, match):
    grad = _torch_forward_backward(name, params, tdtype)
    assert not torch.isfinite(grad).all()
    with pytest.raises(ValueError, match=match):
        gk.activation(name, **params)


def test_kernel_params_rounded_once_per_dtype():
    """kernel_params is computed once per dtype and kept (a chain_grad call
    reads it every time); an overflowing parameter still raises every time."""
    act = gk.activation("ELU", alpha=0.3)
    p32, p64 = act.kernel_params("float32"), act.kernel_params(np.float64)
    assert all(type(v) is np.float32 for v in p32)
    assert all(type(v) is np.float64 for v in p64)
    assert act.kernel_params(np.dtype(np.float32)) is p32
    assert p32 == gk.activation("ELU", alpha=0.3).kernel_params(np.float32)
    bad = gk.activation("LeakyReLU", negative_slope=1e300)
    for _ in range(2):
        with pytest.raises(ValueError, match="overflows"):
            bad.kernel_params(np.float32)
    assert gk.activations.resolve("Tanh") is gk.activations.resolve("Tanh")
    with pytest.raises(ValueError):
        gk.activations.resolve("NoSuchActivation")
