"""PyTorch's own test inputs: each activation's OpInfo samples through gradkern.

For every registry activation, its OpInfo in torch's
``torch.testing._internal.common_methods_invocations.op_db``
(``nn.functional.<name>``, or ``tanh`` / ``sigmoid``): ``sample_inputs`` and
``reference_inputs`` in float32 and float64 on the CPU (shapes from 0-d to
1024 x 1024, empty and non-contiguous tensors, -0.0, +-inf, NaN, 1e20),
mapped to gradkern's parameters, and ``act.forward`` / ``act.derivative``
compared with the OpInfo's op and its autograd under the parity rules: the
same bits for piecewise-linear activations, ``assert_close`` and the sign of
zero for smooth ones, and in float32 no less accurate than torch against
torch float64 (``gradkern.verify``'s slack).  RReLU in training mode gets
the noise torch drew.

What gradkern cannot express is counted per reason (PReLU with one weight
per channel, a float64 PReLU weight that is not a float32 value, ...), and
the counts are pinned with the samples compared, so a change in torch's
samples shows up here.  ``torch.testing._internal`` is not a stable API: the
test runs on torch 2.13 only.
"""
import collections
import re

import numpy as np
import pytest
import torch

import gradkern as gk
from gradkern import reference
from gradkern import verify

from .test_elementwise import _compare

pytestmark = pytest.mark.skipif(
    not torch.__version__.startswith("2.13"),
    reason=f"OpInfo samples pinned to torch 2.13 (torch.testing._internal is not a stable "
           f"API); this is torch {torch.__version__}")

DTYPES = (torch.float32, torch.float64)

#: the OpInfo's positional arguments, by name (PReLU: F.prelu(input, weight),
#: F.threshold(input, threshold, value))
POSITIONAL = {"PReLU": ("weight",), "Threshold": ("threshold", "value")}

#: per activation: samples compared, then samples not expressible, by reason,
#: over sample_inputs + reference_inputs in float32 and float64 (torch 2.13)
EXPECTED = {
    "ELU": {"compared": 84},
    "Hardtanh": {"compared": 90, "refused: max_val must be greater than min_val": 6},
    "LeakyReLU": {"compared": 36},
    "LogSigmoid": {"compared": 84},
    "PReLU": {"compared": 173, "more than one weight": 24,
              "float64 weight that is not a float32 value": 69},
    "ReLU": {"compared": 90},
    "ReLU6": {"compared": 84},
    "RReLU": {"compared": 96},
    "SELU": {"compared": 84},
    "CELU": {"compared": 84},
    "Sigmoid": {"compared": 84},
    "Softplus": {"compared": 84},
    "Softshrink": {"compared": 96},
    "Softsign": {"compared": 84},
    "Tanh": {"compared": 72},
    "Tanhshrink": {"compared": 84},
    "Hardshrink": {"compared": 102},
    "GELU": {"compared": 32},
    "SiLU": {"compared": 84},
    "Mish": {"compared": 84},
    "Hardswish": {"compared": 16},
    "Hardsigmoid": {"compared": 84},
    "Threshold": {"compared": 90},
}


@pytest.fixture(scope="module")
def op_db():
    # ~6 s to import, so only when a test here runs
    from torch.testing._internal.common_methods_invocations import op_db

    return {op.name: op for op in op_db if not op.variant_test_name}


def _snake(name):
    """LeakyReLU -> leaky_relu (ReLU is one word)."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.replace("ReLU", "Relu")).lower()


def opinfo_of(name, op_db):
    """The OpInfo of torch.nn.``name``: ``nn.functional.<name>`` (lower case,
    or snake case for LeakyReLU), else the torch function (tanh, sigmoid)."""
    for candidate in (name.lower(), _snake(name)):
        for prefix in ("nn.functional.", ""):
            if prefix + candidate in op_db:
                return op_db[prefix + candidate]
    raise LookupError(f"no OpInfo for {name} in torch {torch.__version__}")


class Inexpressible(Exception):
    """A sample gradkern's activation cannot stand for (the reason)."""


def _weight(value, dtype):
    """A PReLU weight tensor as gradkern's ``init``."""
    if value.numel() != 1:
        raise Inexpressible("more than one weight")
    w = value.item()
    if dtype == torch.float64 and float(np.float32(w)) != w:
        raise Inexpressible("float64 weight that is not a float32 value")
    return w


def to_activation(name, sample, dtype):
    """The gradkern Activation for ``sample``'s arguments; Inexpressible if none."""
    spec = gk.ACTIVATIONS[name]
    names = POSITIONAL.get(name, ())
    if len(sample.args) > len(names):
        raise Inexpressible("positional arguments not mapped")
    params = dict(zip(names, sample.args), **sample.kwargs)
    if "weight" in params:  # PReLU: the module's weight is gradkern's init
        params["init"] = _weight(params.pop("weight"), dtype)
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        raise Inexpressible(f"parameter {', '.join(unknown)}")
    if spec.slope_noise is not None:
        params.setdefault("training", False)  # F.rrelu's default, unlike nn.RReLU's
    try:
        return gk.activation(name, **params)
    except ValueError as exc:
        # "Hardtanh: max_val (0.0) must be ..." -> "max_val must be ...": one count per rule
        reason = re.sub(r" ?\([^)]*\)", "", str(exc).split(": ", 1)[-1])
        raise Inexpressible(f"refused: {reason}") from None


def _torch(op, act, sample):
    """(output, autograd derivative, noise or None) of torch on the sample's input,
    in its layout (which decides torch's scalar or SIMD path); some samples come
    without requires_grad."""
    x = sample.input.detach()
    if act.stochastic:
        # the module that keeps the noise it draws, as F.rrelu draws it; on a
        # contiguous copy: torch 2.13 fills the noise of a non-contiguous input
        # in memory order and its backward reads it in logical order, so its
        # forward and its autograd use different slopes there
        module = reference.to_torch(act, record_noise=True).to(x.dtype)
        x = x.contiguous().requires_grad_(True)
        y = module(x)
    else:
        x = x.requires_grad_(True)
        y = op(x, *sample.args, **sample.kwargs)
    (d,) = torch.autograd.grad(y, x, torch.ones_like(y))
    noise = module.recorded[-1].numpy() if act.stochastic else None
    return y.detach().numpy(), d.numpy(), noise


def _no_less_accurate(act, x, y, d, y_ref, d_ref, op, sample, what):
    """float32, smooth: gradkern's error against torch float64 on the same
    inputs is at most verify's slack times torch float32's."""
    x64 = sample.input.detach().to(torch.float64).requires_grad_(True)
    y64 = op(x64, *sample.args, **sample.kwargs)
    (d64,) = torch.autograd.grad(y64, x64, torch.ones_like(y64))
    ok = ~np.isnan(x)
    for field, ours, theirs, truth in (("forward", y, y_ref, y64.detach().numpy()),
                                       ("derivative", d, d_ref, d64.numpy())):
        ek = verify._scaled_error(ours.ravel()[ok], truth.ravel()[ok], np.float32)
        et = verify._scaled_error(theirs.ravel()[ok], truth.ravel()[ok], np.float32)
        assert ek <= verify.ACCURACY_SLACK * et + verify.ACCURACY_FLOOR, \
            f"{what} {field}: {ek:.3g} tolerance units from float64, torch float32 {et:.3g}"


def _check_sample(name, op, sample, dtype, counts):
    try:
        act = to_activation(name, sample, dtype)
    except Inexpressible as why:
        counts[str(why)] += 1
        return
    counts["compared"] += 1
    x_before = sample.input.detach().clone()
    y_ref, d_ref, noise = _torch(op, act, sample)
    xn = sample.input.detach().numpy()
    y, d = act.forward(xn, noise=noise), act.derivative(xn, noise=noise)
    assert torch.equal(sample.input.detach(), x_before) or torch.isnan(x_before).any()
    assert y.shape == d.shape == tuple(sample.input.shape)
    what = f"{op.name} {act!r} {dtype} shape {tuple(sample.input.shape)}"
    x = xn.ravel()
    _compare(act, x, y.ravel(), d.ravel(), y_ref.ravel(), d_ref.ravel(), what)
    if dtype == torch.float32 and not act.piecewise_linear and x.size:
        _no_less_accurate(act, x, y, d, y_ref, d_ref, op, sample, what)


@pytest.mark.parametrize("name", list(gk.ACTIVATIONS))
def test_opinfo_samples(name, op_db):
    op = opinfo_of(name, op_db)
    counts = collections.Counter()
    for dtype in DTYPES:
        for samples in (op.sample_inputs, op.reference_inputs):
            for sample in samples("cpu", dtype, requires_grad=True):
                _check_sample(name, op, sample, dtype, counts)
    assert dict(counts) == EXPECTED.get(name), \
        f"{op.name}: samples compared and not expressible changed: {dict(counts)}"


def test_every_activation_has_its_counts_pinned():
    assert set(EXPECTED) == set(gk.ACTIVATIONS)
