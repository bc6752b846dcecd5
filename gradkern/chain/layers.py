"""The general chain: one activation per layer, and a bias per layer.

    f = a_L(w_L * a_{L-1}(... a_1(w_1 * x + b_1) ...) + b_L)

:class:`LayerPlan` is what the kernels of :mod:`.cpu` and :mod:`.cuda_kernel`
are built from when a chain has biases or more than one activation.  The
plain chain (one activation, no bias) never comes here: it keeps its own
kernels, unchanged, so that neither feature costs it anything.

A plan has *slots*: the distinct kernel functions of its layers, (forward,
backward, draws per-sample noise), in order of first use, and for each layer
the number of its slot.  The kernels branch on a layer's slot once per layer,
outside the loop over samples, so one compiled kernel serves every depth and
every order of the same activations; its cache key is the slots and the bias
flag (:meth:`LayerPlan.cache_parts`).  Activations that differ only in their
parameters (``LeakyReLU(0.1)`` and ``LeakyReLU(0.2)``) share a slot: their
parameters are a per-layer table, as RReLU's slopes are.

Nothing here knows a particular activation: it reads each layer's ``ops()``,
``kernel_params(dtype)``, ``stochastic`` and ``noise_bounds()``.
"""
import numpy as np

from ..stream.dists import rrelu_slopes
from .arrays import _as_real_array, _fresh_seed, _to_dtype

__all__ = ["LayerPlan", "layer_plan", "prepare_biases"]


class LayerPlan:
    """The activation of every layer of an L-layer chain, and whether it has biases.

    Parameters
    ----------
    acts : sequence of Activation
        One per layer (resolved activations; see :func:`gradkern.chain_grad`).
    has_bias : bool
    """

    def __init__(self, acts, has_bias):
        self.acts = tuple(acts)
        self.has_bias = bool(has_bias)
        slots, index = [], []
        for act in self.acts:
            slot = (*act.ops(), act.stochastic)
            if slot not in slots:
                slots.append(slot)
            index.append(slots.index(slot))
        #: ((forward, backward, noisy), ...): the distinct kernel functions
        self.slots = tuple(slots)
        #: (L,) int64: the slot of each layer
        self.slot_index = np.array(index, dtype=np.int64)

    def __len__(self):
        return len(self.acts)

    @property
    def stochastic(self):
        """True when some layer draws a slope per sample (RReLU in training mode)."""
        return any(act.stochastic for act in self.acts)

    def kernel_params(self, dtype):
        """(L, 4) array: row k is layer k's kernel parameters in ``dtype``."""
        return np.array([act.kernel_params(dtype) for act in self.acts], dtype=dtype)

    def cache_parts(self):
        """What tells two plans' kernels apart, for ``cache_kernel``: every
        slot's functions, in order, its noise flag, and the bias flag.  The
        slot of each layer is a kernel argument, so it is not part of the key."""
        parts = [f for forward, backward, _ in self.slots for f in (forward, backward)]
        noisy = ",".join(str(noisy) for _, _, noisy in self.slots)
        return (*parts, f"slots={len(self.slots)}", f"noise=[{noisy}]", f"bias={self.has_bias}")

    def noise(self, noise, seed, n, dtype):
        """The (N, L) slopes of the stochastic layers (other columns unread),
        or an empty array when no layer draws one; checks as
        :func:`.arrays.prepare_noise` does.

        With ``seed``, column k holds what ``rrelu_slopes(N, L, seed, lower_k,
        upper_k)`` gives there for layer k's own bounds: the same stream as
        a chain with that activation at every layer.
        """
        n_layers = len(self.acts)
        if not self.stochastic:
            for key, value in (("noise", noise), ("seed", seed)):
                if value is not None:
                    raise ValueError(f"{key}= is only for an activation that draws a slope per "
                                     "sample and layer (RReLU in training mode); no layer of "
                                     f"this chain does ({', '.join(map(repr, self.acts))})")
            return np.empty((0, 0), dtype=dtype)
        if noise is not None:
            if seed is not None:
                raise ValueError("pass noise= or seed=, not both: seed= draws the slopes that "
                                 "noise= gives")
            noise = _as_real_array(noise, "noise")
            if noise.shape != (n, n_layers):
                raise ValueError(f"noise must have shape (N, L) = {(n, n_layers)}, got "
                                 f"{noise.shape}")
            return _to_dtype(noise, dtype, "noise")
        seed = _fresh_seed() if seed is None else seed
        out = np.ones((n, n_layers), dtype=dtype)
        drawn = {}
        for k, act in enumerate(self.acts):
            if act.stochastic:
                bounds = act.noise_bounds()
                if bounds not in drawn:
                    drawn[bounds] = rrelu_slopes(n, n_layers, seed, *bounds, dtype=dtype)
                out[:, k] = drawn[bounds][:, k]
        return out


def prepare_biases(biases, n_layers, dtype):
    """``biases`` as a contiguous (L,) array in ``dtype``; ValueError naming
    ``biases`` if it is not 1-D of length L or a value is not finite in ``dtype``."""
    b = _as_real_array(biases, "biases")
    if b.ndim != 1 or b.shape[0] != n_layers:
        raise ValueError(f"biases must be 1-D with one value per layer (L = {n_layers}, the "
                         f"length of weights), got shape {b.shape}")
    b = _to_dtype(b, dtype, "biases")
    bad = ~np.isfinite(b)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise ValueError(f"biases must be finite, got biases[{k}] = {float(b[k])}")
    return b


def layer_plan(act, has_bias, n_layers):
    """``(activation, None)`` for the plain chain (one activation, no bias),
    else ``(None, LayerPlan)``.

    ``act`` is a resolved Activation or a tuple of them, one per layer: a
    tuple of a different length than the weights is a ValueError; a tuple of
    equal activations without biases is the plain chain, run by its own kernel.
    """
    if isinstance(act, tuple):
        if len(act) != n_layers:
            raise ValueError(f"activation: got {len(act)} activations for {n_layers} layers "
                             "(one per weight, or a single one for every layer)")
        if not has_bias and all(a == act[0] for a in act):
            return act[0], None
        return None, LayerPlan(act, has_bias)
    if has_bias:
        return None, LayerPlan((act,) * n_layers, True)
    return act, None
