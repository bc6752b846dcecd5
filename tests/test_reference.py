"""The autograd reference is itself checked: SimpleNet is the seed's, and its
three gradient routes (vmap, batched, the notebook loop) agree bit for bit."""
import numpy as np
import pytest
import torch

import gradkern as gk
from gradkern import reference
from gradkern import verify

from .conftest import ACT_NAMES, default_activation


def test_simplenet_is_the_seeds():
    torch.manual_seed(0)
    net = reference.SimpleNet(torch.nn.Tanh())
    assert [n for n, _ in net.named_parameters()] == ["fc1.weight", "fc2.weight", "fc3.weight"]
    assert all(fc.weight.item() == 1.0 and fc.bias is None for fc in net.layers())
    # building it consumed the RNG as three Linear(1, 1) do
    after = torch.randn(3)
    torch.manual_seed(0)
    for _ in range(3):
        torch.nn.Linear(1, 1, bias=False)
    assert torch.equal(after, torch.randn(3))


def test_simplenet_float64_weights_not_rounded_to_float32():
    net = reference.SimpleNet("Tanh", (0.1, 0.7), dtype=torch.float64)
    assert net.fc1.weight.item() == 0.1


@pytest.mark.parametrize("name", ACT_NAMES)
def test_three_reference_routes_agree(name):
    act = default_activation(name)
    x = verify.test_inputs(act, np.float32, n_random=100, seed=1)
    w = [1.0, -0.5, 1.5]
    vm = reference.per_sample_grads(x, act, w)
    ba, _ = reference.batched_grads(x, act, w)
    net = reference.SimpleNet(reference.to_torch(act), w)
    lo, _ = reference.seed_loop_grads(net, x)
    ok = ~np.isnan(vm.output)
    for a, b, c in zip(vm, ba, lo):
        if act.piecewise_linear:
            assert verify._bit_identical(a[ok], b[ok]) == 1.0
            assert np.array_equal(a[ok], c[ok], equal_nan=True)
        else:  # the loop runs torch's scalar path, the batch its SIMD path
            torch.testing.assert_close(a[ok], b[ok], equal_nan=True)
            torch.testing.assert_close(a[ok], c[ok], equal_nan=True)


def test_reference_empty_and_dtype():
    r = reference.per_sample_grads(np.empty(0), "Tanh", [1.0, 1.0])
    assert r.weight_grads.shape == (0, 2) and r.output.dtype == np.float64
    assert reference.per_sample_grads(np.ones(2, np.float32), "Tanh", [1.0]).output.dtype == np.float32


def test_reference_import_is_lazy_attribute():
    assert gk.reference is reference
