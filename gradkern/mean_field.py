r"""Mean-field signal propagation: the infinite-width prediction beside the
exact width-1 sweeps.

For a deep network with weights ~ N(0, sigma_w^2 / width) and biases ~
N(0, sigma_b^2), the pre-activations of a layer are Gaussian with a variance q
that the layers map as (Poole et al. 2016, "Exponential expressivity in deep
neural networks through transient chaos"; Schoenholz et al. 2017, "Deep
information propagation"):

.. math::

    q_{l+1} = V(q_l) = \sigma_w^2\, E[\phi(h)^2] + \sigma_b^2,
    \qquad h \sim N(0, q_l),

and a gradient's squared norm is multiplied, per layer on its way back, by

.. math::

    \chi_1 = \sigma_w^2\, E[\phi'(h)^2],  \qquad h \sim N(0, q^*),

at the fixed point q* = V(q*).  chi_1 < 1: gradients vanish (order), > 1: they
explode (chaos), = 1: the edge of chaos.  log10(chi_1) / 2 is the per-layer
growth rate of the gradient's magnitude, the quantity a sweep measures for the
width-1 chain as ``growth_rate``.

Expectations are quadrature sums of the activation's own values and
derivatives, as gradkern computes them in float64 (``chain_grad`` with one
layer of weight 1): Gauss-Hermite (``numpy.polynomial.hermite_e``,
:data:`NODES` nodes) for an activation without kinks, where it converges
exponentially (tanh's chi_1 is stable to 1e-15 from 60 nodes).  A kink (a jump
of phi', ``Activation.kinks()``) costs Gauss-Hermite its convergence: a step
of phi'^2 is off by up to the weight of the node next to it (Hardtanh's chi_1
3% off with 300 nodes).  Activations with kinks therefore use Gauss-Legendre
on each piece between the kinks (at k / sqrt(q) in z = h / sqrt(q)), times the
normal density, on |z| <= :data:`Z_MAX`, which integrates each smooth piece
exactly as far as float64 goes (ReLU's E[phi'^2] = 1/2 and Hardtanh's
erf(1 / sqrt(2 q)) to 1e-14, tested).  RReLU in training mode also averages
over its uniform slope (Gauss-Legendre, exact for the slope's square).
"""
import functools
import math
from typing import NamedTuple

import numpy as np

__all__ = ["meanfield", "MeanField", "NODES", "PIECE_NODES", "Z_MAX"]

#: Gauss-Hermite nodes for activations without kinks: smooth ones converge
#: long before (tanh from 60); hermegauss's weights overflow from ~400
NODES = 300
#: Gauss-Legendre nodes per piece between kinks, on |z| <= Z_MAX: the normal
#: density beyond 10 holds 1.5e-23 of the mass (times z^2 for phi^2 ~ h^2)
PIECE_NODES = 120
Z_MAX = 10.0
#: q at which "q* = 0" and "q* = inf" take chi_1's limit (h = sqrt(q) x stays
#: within float64, and any activation's slope at 0 or its asymptote is reached)
_Q_ZERO = 1e-200
_Q_INF = 1e200
#: iterations of the variance map before the root is bracketed
_WARMUP = 64
#: relative size of V(q) - q below which it is float64 rounding of the
#: quadrature sum (512 terms), not a sign
_ROUNDING = 1e-12


class MeanField(NamedTuple):
    """The fixed point of the variance map and the gradient's per-layer factor.

    ``q_star``: the fixed point reached from ``q0``: a positive number, 0.0,
    ``inf``, or ``q0`` itself when every q is a fixed point (``status``
    says which); ``chi_1``: sigma_w^2 E[phi'(h)^2] at q* (its limit q -> 0+ or
    q -> inf for q* = 0 or inf); ``status``: ``"fixed point"``, ``"zero"``
    (the signal dies out: sigma_b = 0 and phi(0) = 0, with V(q) < q),
    ``"infinite"`` (V(q) > q for every q above q0: the variance grows without
    bound, e.g. ReLU with sigma_w^2 > 2) or ``"marginal"`` (V(q) = q for
    every q: ReLU at sigma_w^2 = 2, sigma_b = 0).
    """

    q_star: float
    chi_1: float
    status: str

    @property
    def growth_rate(self):
        """log10(chi_1) / 2: the gradient's magnitude grows by 10**rate per
        layer toward the input (-inf when chi_1 = 0)."""
        return math.log10(self.chi_1) / 2 if self.chi_1 > 0 else -math.inf


@functools.lru_cache(maxsize=None)
def _hermite():
    x, w = np.polynomial.hermite_e.hermegauss(NODES)
    return x, w / w.sum()  # weights of the standard normal, sum 1


@functools.lru_cache(maxsize=None)
def _legendre():
    return np.polynomial.legendre.leggauss(PIECE_NODES)  # an eigenproblem: once


def _pieces(kinks, q):
    """Nodes z and weights of E[f(z)], z ~ N(0, 1), Gauss-Legendre on each
    piece of [-Z_MAX, Z_MAX] cut at the kinks k / sqrt(q)."""
    s = math.sqrt(q)
    cuts = sorted({k / s for k in kinks if abs(k / s) < Z_MAX})
    edges = [-Z_MAX, *cuts, Z_MAX]
    t, wt = _legendre()
    zs, ws = [], []
    for a, b in zip(edges[:-1], edges[1:]):
        z = 0.5 * (a + b) + 0.5 * (b - a) * t
        zs.append(z)
        ws.append(0.5 * (b - a) * wt * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi))
    w = np.concatenate(ws)
    # E[1] = 1 exactly: the rounding of the sum no longer scales every moment
    return np.concatenate(zs), w / w.sum()


def _slopes(act):
    """[(weight, noise or None)]: RReLU's training slope averaged by 2-point
    Gauss-Legendre on [lower, upper] (exact for s^2); one entry otherwise."""
    if not act.stochastic:
        return [(1.0, None)]
    lo, hi = act.noise_bounds()
    t, w = np.polynomial.legendre.leggauss(2)
    return [(wi / 2, lo + (hi - lo) * (ti + 1) / 2) for ti, wi in zip(t, w)]


class _Moments:
    """E[phi(h)^2] and E[phi'(h)^2] for h ~ N(0, q), by quadrature."""

    def __init__(self, act):
        from .api import chain_grad

        self.act, self.chain_grad = act, chain_grad
        self.kinks = act.kinks()
        self.hermite = None if self.kinks else _hermite()
        self.slopes = _slopes(act)

    def __call__(self, q):
        z, w = self.hermite or _pieces(self.kinks, q)
        h = math.sqrt(q) * z
        e_phi2 = e_dphi2 = 0.0
        for ws, s in self.slopes:
            noise = None if s is None else np.full((h.size, 1), s)
            res = self.chain_grad(h, self.act, [1.0], noise=noise)
            with np.errstate(over="ignore"):  # a huge phi(h)^2 is inf: reported by the caller
                e_phi2 += ws * float(w @ (res.output * res.output))
                e_dphi2 += ws * float(w @ (res.input_grad * res.input_grad))
        return e_phi2, e_dphi2


def _check_sigma(value, name):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")
    return value


def meanfield(activation, sigma_w, sigma_b=0.0, *, q0=1.0):
    """The mean-field fixed point q* and chi_1 of ``activation``.

    Parameters
    ----------
    activation : str, Activation or torch.nn module
        Any activation of ``gradkern.ACTIVATIONS`` with its parameters
        (RReLU in training mode averages over its random slope).
    sigma_w : float
        Standard deviation of the weights times sqrt(fan-in), >= 0.
    sigma_b : float
        Standard deviation of the biases, >= 0 (default 0).
    q0 : float
        Variance of the input's pre-activation from which the variance map is
        iterated (default 1): it selects the fixed point where there are
        several, and is q* where every q is one.

    Returns
    -------
    MeanField
        ``(q_star, chi_1, status)``, and ``.growth_rate`` = log10(chi_1) / 2.

    Notes
    -----
    q* is found by iterating q -> V(q) from q0 (a monotone map, so it walks
    toward the stable fixed point on its side), then bracketing the root of
    V(q) - q in the direction it moved and bisecting to float64 precision.
    Where no root lies that way, q* is 0 (``"zero"``) or inf
    (``"infinite"``), and chi_1 is its limit there: for ReLU at sigma_b = 0
    that is sigma_w^2 / 2 on both sides, as the scale-free theory says.
    """
    from .activations import resolve

    act = resolve(activation)
    sigma_w = _check_sigma(sigma_w, "sigma_w")
    sigma_b = _check_sigma(sigma_b, "sigma_b")
    q0 = _check_sigma(q0, "q0")
    if q0 == 0:
        raise ValueError("q0 must be > 0")
    moments = _Moments(act)
    sw2, sb2 = sigma_w * sigma_w, sigma_b * sigma_b

    def vmap(q):
        return sw2 * moments(q)[0] + sb2

    q, status = _fixed_point(vmap, q0)
    q_eval = _Q_ZERO if q == 0 else (_Q_INF if math.isinf(q) else q)
    return MeanField(q, sw2 * moments(q_eval)[1], status)


def _fixed_point(vmap, q0):
    """(q*, status) of q -> vmap(q) from q0 (see :func:`meanfield`)."""
    q = q0
    for _ in range(_WARMUP):
        nq = vmap(q)
        if not math.isfinite(nq) or nq > _Q_INF:
            return math.inf, "infinite"
        if nq < _Q_ZERO:
            return 0.0, "zero"
        if nq == q:
            break
        q = nq
    if _is_marginal(vmap, q):
        return q0, "marginal"
    f = vmap(q) - q
    if f == 0:
        return q, "fixed point"
    lo = hi = q
    if f > 0:  # the map moves up: double until V(q) < q
        while vmap(hi) - hi > 0:
            lo, hi = hi, hi * 2.0
            if hi > _Q_INF or not math.isfinite(vmap(hi)):
                return math.inf, "infinite"
    else:  # down: halve until V(q) > q by more than V's rounding (a root at
        # 1e-16 q would be float64's noise: tanh at sigma_w = 1 has V(q) - q = -2 q^2)
        while not vmap(lo) - lo > _ROUNDING * lo:
            hi, lo = lo, lo / 2.0
            if lo < _Q_ZERO:
                return 0.0, "zero"
    return _bisect(vmap, lo, hi), "fixed point"


def _is_marginal(vmap, q):
    """V(t) = t to V's rounding at q/4, q and 4q: the identity map (ReLU at
    sigma_w^2 = 2, sigma_b = 0), where every q is a fixed point."""
    return all(abs(vmap(t) - t) <= _ROUNDING * t for t in (q / 4, q, 4 * q))


def _bisect(vmap, lo, hi):
    """The root of V(q) - q in [lo, hi] (V(lo) > lo, V(hi) < hi), to float64 precision."""
    while True:
        mid = 0.5 * (lo + hi)
        if mid <= lo or mid >= hi:
            return mid
        if vmap(mid) - mid > 0:
            lo = mid
        else:
            hi = mid
