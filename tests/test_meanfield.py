"""``gradkern.meanfield``: the mean-field fixed point q* and chi_1 against
closed forms (ReLU, Hardtanh, Tanh at criticality), a published point of the
tanh phase diagram, and every registry activation."""
import math

import pytest

import gradkern as gk
from gradkern.activations import fresh

from .conftest import ACT_NAMES


@pytest.mark.parametrize("sigma_w,q_star,status", [
    (0.5, 0.0, "zero"), (1.0, 0.0, "zero"), (math.sqrt(2), 1.0, "marginal"),
    (1.6, math.inf, "infinite")])
def test_relu_without_bias(sigma_w, q_star, status):
    """V(q) = sigma_w^2 q / 2: q* = 0 below sigma_w^2 = 2, every q at 2 (q0 is
    returned), none above (q grows without bound); chi_1 = sigma_w^2 / 2 in
    every case (phi'^2 is 1 on half the Gaussian, whatever q)."""
    m = gk.meanfield("ReLU", sigma_w, 0.0)
    assert (m.q_star, m.status) == (q_star, status)
    assert m.chi_1 == pytest.approx(sigma_w**2 / 2, rel=1e-14)


def test_relu_with_bias_closed_form():
    """q* = sigma_b^2 / (1 - sigma_w^2 / 2) for sigma_w^2 < 2."""
    m = gk.meanfield("ReLU", 1.2, 0.3)
    assert m.status == "fixed point"
    assert m.q_star == pytest.approx(0.09 / (1 - 1.44 / 2), rel=1e-12)
    assert m.chi_1 == pytest.approx(0.72, rel=1e-14)
    assert m.growth_rate == pytest.approx(math.log10(0.72) / 2, rel=1e-13)


@pytest.mark.parametrize("sigma_b", [0.1, 0.5])
def test_hardtanh_chi_closed_form(sigma_b):
    """phi'^2 = 1 on |h| < 1: chi_1 = sigma_w^2 erf(1 / sqrt(2 q*)), and q* is
    a fixed point of V (kinks at +-1 split the quadrature)."""
    m = gk.meanfield("Hardtanh", 1.5, sigma_b)
    assert m.chi_1 == pytest.approx(2.25 * math.erf(1 / math.sqrt(2 * m.q_star)), rel=1e-12)
    # E[hardtanh(h)^2] = q P(|h| < 1) - 2 sqrt(q) phi(1/sqrt q) + P(|h| > 1), h ~ N(0, q)
    q = m.q_star
    p_in = math.erf(1 / math.sqrt(2 * q))
    dens = math.exp(-0.5 / q) / math.sqrt(2 * math.pi)
    e_phi2 = q * p_in - 2 * math.sqrt(q) * dens + (1 - p_in)
    assert q == pytest.approx(2.25 * e_phi2 + sigma_b**2, rel=1e-12)


def test_tanh_is_critical_at_sigma_w_1():
    """sigma_b = 0: q* = 0 (V(q) = q - 2q^2 + ... < q) and chi_1 = tanh'(0)^2 = 1."""
    m = gk.meanfield("Tanh", 1.0, 0.0)
    assert (m.q_star, m.status) == (0.0, "zero")
    assert m.chi_1 == pytest.approx(1.0, abs=1e-14)
    assert gk.meanfield("Tanh", 0.9, 0.0).chi_1 < 1 < gk.meanfield("Tanh", 1.1, 0.0).chi_1


def test_tanh_edge_of_chaos_published_point():
    """Schoenholz et al. 2017, "Deep information propagation" (ICLR), whose
    trainability experiments use sigma_b^2 = 0.05 with the critical point at
    sigma_w^2 ~ 1.76 (the order-to-chaos line of Poole et al. 2016's phase
    diagram): chi_1 = 1 there, found here by bisection at 1.7610."""
    sigma_b = math.sqrt(0.05)
    lo, hi = 1.0, 2.0
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gk.meanfield("Tanh", mid, sigma_b).chi_1 < 1 else (lo, mid)
    assert lo * lo == pytest.approx(1.76, abs=0.005)
    m = gk.meanfield("Tanh", lo, sigma_b)
    assert m.status == "fixed point" and 0 < m.q_star < 1


@pytest.mark.parametrize("name", ACT_NAMES)
def test_every_activation(name):
    m = gk.meanfield(fresh(name), 1.5, 0.1)  # Threshold: torch.nn has no defaults
    assert m.status in ("fixed point", "infinite")
    assert math.isfinite(m.chi_1) and m.chi_1 > 0
    if m.status == "fixed point":  # V(q*) = q*, checked with its own quadrature
        assert 0 < m.q_star < math.inf


def test_sigmoid_has_a_fixed_point_without_bias():
    """phi(0) = 1/2: the variance cannot die out."""
    m = gk.meanfield("Sigmoid", 1.0, 0.0)
    assert m.status == "fixed point" and m.q_star > 0.2


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="sigma_w"):
        gk.meanfield("Tanh", -1.0)
    with pytest.raises(TypeError, match="sigma_b"):
        gk.meanfield("Tanh", 1.0, "0.1")
    with pytest.raises(ValueError, match="unknown activation"):
        gk.meanfield("NoSuch", 1.0)


def test_the_name_stays_the_function():
    import gradkern.mean_field  # noqa: F401  importing the module leaves gk.meanfield alone

    assert callable(gk.meanfield) and gk.meanfield.__module__ == "gradkern.mean_field"
