"""A sweep's grid: activation x depth x distribution x weight x bias, one Point each.

A weight setting is a plain number w (today's fixed weights ``[w] * L``) or a
distribution (:class:`~gradkern.stream.dists.Dist`, ``"normal:0,1.5"``): each
sample then draws its own w_1 .. w_L in the kernel.  A bias setting is the same,
or None (no biases: the chain without them, as before biases existed).

The argument parsing of :func:`gradkern.sweep` lives here too (depth ranges,
sample counts), so the same rules serve the API and the command line.
"""
import math
import numbers
from dataclasses import dataclass

import numpy as np

from ..activations import ACTIVATIONS, Activation, activation as _activation, fresh
from ..stream.dists import MAX_SAMPLES, Dist, layer_dist

__all__ = ["Point", "RandomLayers", "make_grid", "parse_depths", "parse_samples", "act_label",
           "MAX_DEPTH"]

#: deepest chain of a sweep.  Memory grows with depth: a chunk holds L + 2
#: histograms per block, ~0.7 MB per layer at the default chunk (0.07 GB at
#: depth 100, 7 GB at 10,000); and a float32 gradient has vanished or
#: overflowed long before (|w|^L leaves float32's range at L = 219 for
#: |w| = 1.5, at L = 255 for 2/3)
MAX_DEPTH = 10_000

def act_label(act):
    """``Tanh``, or ``LeakyReLU(negative_slope=0.2)`` when not torch's defaults."""
    return act.name if dict(act.params) == act.spec.defaults else repr(act)


@dataclass(frozen=True)
class RandomLayers:
    """Per-sample layers of a point: L weights drawn from ``weight`` and, unless
    ``bias`` is None, L biases from ``bias`` (a plain number is a ``constant``
    Dist).  What the kernels take in place of a weight array."""

    depth: int
    weight: Dist
    bias: Dist = None

    @property
    def biased(self):
        return self.bias is not None


def _setting_label(v):
    """A weight or bias setting as the table shows it: 1.5, or "normal:0,1.5"."""
    return v if isinstance(v, float) else str(v)


@dataclass(frozen=True)
class Point:
    """One grid point.  ``weight`` is a float (fixed) or a Dist (drawn per
    sample and layer); ``bias`` None (no biases), a float or a Dist."""

    index: int
    activation: Activation
    depth: int
    dist: Dist
    weight: object
    bias: object = None

    @property
    def per_sample(self):
        """Whether the kernel draws layers per sample (random weights, or any biases)."""
        return isinstance(self.weight, Dist) or self.bias is not None

    def weights(self, dtype):
        """The kernels' layer argument: the weight array ``[w] * L`` in
        ``dtype`` for fixed weights without biases, else a RandomLayers."""
        if self.per_sample:
            return RandomLayers(self.depth, layer_dist(self.weight),
                                None if self.bias is None else layer_dist(self.bias, "biases"))
        return np.full(self.depth, self.weight, dtype=np.dtype(dtype))

    def describe(self):
        out = {"point": self.index, "activation": act_label(self.activation),
               "params": dict(self.activation.params), "depth": self.depth,
               "dist": str(self.dist), "weight": _setting_label(self.weight)}
        if self.bias is not None:  # absent without biases: older manifests still match
            out["bias"] = _setting_label(self.bias)
        return out


def parse_depths(text):
    """``"1-30"``, ``"1,2,5"``, ``"1-5,10,20"``, an int, or a sequence of ints ->
    sorted unique list of ints in [1, MAX_DEPTH]."""
    if isinstance(text, str):
        depths = _depths_from_text(text)
    elif _is_int(text):
        depths = {int(text)}
    elif isinstance(text, (list, tuple, range, np.ndarray)):
        if not all(_is_int(d) for d in text):
            raise TypeError(f"depths must be whole numbers, got {list(text)!r}")
        depths = {int(d) for d in text}
    else:
        raise TypeError(f"depths must be an int, a list of ints or a str such as '1-30', "
                        f"got {type(text).__name__}")
    if not depths:
        raise ValueError("no depths given")
    if not 1 <= min(depths) <= max(depths) <= MAX_DEPTH:
        raise ValueError(f"depths must be in [1, {MAX_DEPTH}], got {min(depths)} .. "
                         f"{max(depths)}")
    return sorted(depths)


def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_))


def _depths_from_text(text):
    out = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        a, sep, b = part.partition("-")
        try:
            lo, hi = (int(a), int(b)) if sep else (int(a), int(a))
        except ValueError:
            raise ValueError(f"bad depths {text!r}: use e.g. 1-30 or 1,3,5") from None
        if lo < 1 or hi < lo:
            raise ValueError(f"bad depth range {part!r}: depths are >= 1, low-high")
        if hi > MAX_DEPTH:  # before building the range: "1-10**12" is refused, not built
            raise ValueError(f"depths must be in [1, {MAX_DEPTH}], got {part!r}")
        out.update(range(lo, hi + 1))
    return out


def _activations(spec):
    if isinstance(spec, (str, Activation)):
        spec = [spec]
    if not isinstance(spec, (list, tuple)):
        raise TypeError(f"activations must be 'all', a name, an Activation or a list of "
                        f"them, got {type(spec).__name__}")
    acts = []
    for a in spec:
        if isinstance(a, str) and a.lower() == "all":
            # Threshold, without torch.nn defaults, as Threshold(0.1, 20)
            acts.extend(fresh(n) for n in ACTIVATIONS)
        elif isinstance(a, str) and "," in a:
            acts.extend(_activations(a.split(",")))
        elif isinstance(a, str) and not a.strip():
            continue
        else:
            acts.append(_activation(a.strip() if isinstance(a, str) else a))
    if not acts:
        raise ValueError("no activations given")
    return acts


def _settings(values, what):
    """Weight or bias settings: each a float, or a Dist for values drawn per
    sample and layer (a Dist or a str such as ``"normal:0,1.5"``)."""
    values = [values] if isinstance(values, (numbers.Real, str, Dist)) else values
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"{what} must be a number, a distribution such as 'normal:0,1.5' or a "
                        f"list of them, got {type(values).__name__}")
    out = []
    for w in values:
        if isinstance(w, str):
            w = _number_or_dist(w, what)
        if isinstance(w, Dist):
            out.append(w)
            continue
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise TypeError(f"{what} must be real numbers or distributions such as "
                            f"'normal:0,1.5', got {w!r}")
        try:
            w = float(w)
        except OverflowError:
            w = math.inf  # an int beyond float64: reported below
        if not math.isfinite(w):
            raise ValueError(f"{what} must be finite, got {list(values)!r}")
        out.append(w)
    if not out:
        raise ValueError(f"need at least one {what[:-1]} setting")
    return out


def _number_or_dist(text, what):
    """A str setting is a distribution (``kind:params``); numbers are given as numbers."""
    if ":" not in text:
        raise TypeError(f"{what} must be real numbers or distributions such as "
                        f"'normal:0,1.5', got {text!r}")
    return Dist.parse(text)


def make_grid(activations, depths, dists, weights, biases=None):
    """The grid points, activation-major (then distribution, weight, bias, depth)."""
    acts = _activations(activations)
    depths = parse_depths(depths)
    if isinstance(dists, (str, Dist)):
        dists = [dists]
    if not isinstance(dists, (list, tuple)):
        raise TypeError(f"dists must be a str such as 'normal:0,1', a Dist or a list of them, "
                        f"got {type(dists).__name__}")
    dists = [Dist.parse(d) for d in dists]
    if not dists:
        raise ValueError("need at least one distribution")
    weights = _settings(weights, "weights")
    biases = [None] if biases is None else _settings(biases, "biases")
    pts = []
    for a in acts:
        for d in dists:
            for w in weights:
                for b in biases:
                    for L in depths:
                        pts.append(Point(len(pts), a, L, d, w, b))
    return pts


def parse_samples(value):
    """1000, 1e9, "1e9", "2_000_000" -> int in [1, 2**62] (must be integral).

    2**62 (:data:`gradkern.stream.dists.MAX_SAMPLES`): sample indices are 64-bit."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError("samples must be a whole number, got a bool")
    if _is_int(value):
        v = int(value)
    else:
        if not isinstance(value, (str, numbers.Real)):
            raise TypeError(f"samples must be a whole number such as 1000 or '1e9', got "
                            f"{type(value).__name__}")
        try:
            v = float(value.replace("_", "") if isinstance(value, str) else value)
        except (ValueError, OverflowError):
            raise ValueError(f"samples must be a whole number such as 1000 or 1e9, got "
                             f"{value!r}") from None
        if not math.isfinite(v) or v != int(v):
            raise ValueError(f"samples must be a whole number, got {value!r}")
        v = int(v)
    if not 1 <= v <= MAX_SAMPLES:
        raise ValueError(f"samples must be in [1, 2**62] (sample indices are 64-bit), "
                         f"got {value!r}")
    return v
