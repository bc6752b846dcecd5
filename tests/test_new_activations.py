"""The six activations after the seed notebook's 17 (GELU, SiLU, Mish, Hardswish,
Hardsigmoid, Threshold) where iterating the registry's defaults does not reach:
a variant other than the default (GELU(tanh)) on every backend, a parameter
torch.nn gives no default (Threshold) in "all activations", and sweeps of the
six against chain_grad."""
import numpy as np
import pytest

import gradkern as gk
from gradkern import verify
from gradkern.sweeps.grid import make_grid

from .conftest import VARIANTS, default_activation
from .test_parity import BACKEND_SIZES, CASES

#: deterministic variants that are not their activation's default (GELU(tanh)):
#: test_parity runs each activation's default only
OTHER_VARIANTS = [label for label, act in VARIANTS.items()
                  if not act.stochastic and act != default_activation(act.name)]


def test_the_other_variants_are_known():
    assert OTHER_VARIANTS == ["GELU(tanh)"]


@pytest.mark.parametrize("backend, depth", CASES)
@pytest.mark.parametrize("label", OTHER_VARIANTS)
def test_parity_of_other_variants(backend_ready, backend, label, dtype, depth):
    """test_parity's body for the non-default variants, on every backend."""
    act = VARIANTS[label]
    x = verify.test_inputs(act, dtype, n_random=BACKEND_SIZES[backend][1], seed=depth)
    for wname, w in verify.weight_sets(depth, seed=11).items():
        r = verify.check(act, dtype, w, x=x, weights_name=wname, backend=backend)
        assert r.ok, f"{backend} {act!r} {dtype} depth {depth} weights {wname}: {r.why}"


def test_all_activations_include_threshold_with_its_reference_values():
    """"all" (sweeps, `gradkern vanishing --activations all`) is every registry
    activation as a fresh torch.nn module is, and Threshold, which torch.nn gives
    no defaults, as Threshold(0.1, 20); a bare "Threshold" is an error naming
    what is missing, as gk.activation says."""
    acts = [p.activation for p in make_grid("all", 1, "normal:0,1", 1.0)]
    assert [a.name for a in acts] == list(gk.ACTIVATIONS)
    assert acts[-1] == gk.activation("Threshold", threshold=0.1, value=20.0)
    assert gk.activations.fresh("RReLU").params["training"] is True
    assert gk.activations.fresh("gelu") == gk.activation("GELU")
    with pytest.raises(ValueError, match="Threshold needs 'threshold', 'value'"):
        make_grid("Threshold", 1, "normal:0,1", 1.0)


def test_sweep_of_the_new_activations_equals_chain_grad():
    """A sweep point's statistics from in-kernel draws equal chain_grad on the
    same draws (the sweep's "constant" distribution: every sample the same x)."""
    # two: a kernel compile each (GELU: the new erf; Threshold: required parameters)
    acts = [gk.activation("GELU"), gk.activations.fresh("Threshold")]
    res = gk.sweep(acts, depths=2, dists="constant:0.75", weights=-1.25, samples=64,
                   backend="cpu")
    by_act = {(r["activation"], r["layer"]): r for r in res.rows}
    for act in acts:
        ref = gk.chain_grad(np.full(4, 0.75, np.float32), act, [-1.25, -1.25])
        label = gk.sweeps.grid.act_label(act)
        for k in (1, 2):
            row = by_act[(label, k)]
            assert row["mean_grad"] == pytest.approx(float(ref.weight_grads[0, k - 1]),
                                                     rel=1e-6, abs=0), (label, k)


def test_gelu_float32_takes_onednns_edges():
    """torch computes float32 GELU('none') in oneDNN (contiguous, more than one
    element): GELU(+inf) = NaN and GELU(x) = inf from 2^127 on; float64 is
    ATen's formula: GELU(+inf) = inf, and no overflow."""
    import torch

    x = np.array([np.inf, 2.0**127, np.nextafter(np.float32(2.0**127), 0), 1e30, -np.inf,
                  -1e30, 0.0], np.float32)
    want = torch.nn.functional.gelu(torch.from_numpy(x)).numpy()
    got = gk.activation("GELU").forward(x)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[0]) and np.isinf(got[1]) and np.isfinite(got[2])
    x64 = x.astype(np.float64)
    want64 = torch.nn.functional.gelu(torch.from_numpy(x64)).numpy()
    np.testing.assert_array_equal(gk.activation("GELU").forward(x64), want64)
    assert want64[0] == np.inf


def _max_ulp(got, truth):
    return float(np.max(np.abs(got.astype(np.float64) - truth)
                        / np.spacing(np.abs(truth).astype(np.float32)).astype(np.float64)))


def test_gelu_and_mish_forward_round_once():
    """GELU('none') float32 as fma(x/2, erf, x/2) and Mish for x > 0 as x - x*q:
    one rounding after the transcendental, where torch's order rounds twice
    (GELU: 2.9 ulp at worst on [0, 6] in ATen's order, Mish: 0.95 on [4, 8]),
    which 30-layer chains amplify past torch's own error."""
    from scipy.special import erf

    x = np.linspace(0, 6, 600_001).astype(np.float32)
    x64 = x.astype(np.float64)
    assert _max_ulp(gk.activation("GELU").forward(x), x64 / 2 * (1 + erf(x64 / np.sqrt(2)))) < 1.0
    x = np.linspace(4, 8, 400_001).astype(np.float32)
    x64 = x.astype(np.float64)
    mish = x64 * np.tanh(np.log1p(np.exp(x64)))
    assert _max_ulp(gk.activation("Mish").forward(x), mish) < 0.6  # 0.5: correctly rounded


def test_deep_smooth_chains_pass_verify(capsys):
    """`gradkern verify`'s depth-30 float32 rule ("no less accurate than torch")
    for the new smooth activations: a more accurate exp in GELU's derivative once
    made its depth-30 df/dx 1.97 tolerance units off where torch is 1.47."""
    from gradkern.cli import main

    assert main(["verify", "--activations", "GELU,SiLU,Mish", "--depths", "30",
                 "--seed", "0", "--quiet"]) == 0, capsys.readouterr().out[-2000:]
