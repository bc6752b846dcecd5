"""The activations: what each one *is* (:mod:`.table`), its math (:mod:`.math`),
and the objects users make from them.

:func:`activation` builds an :class:`Activation` from a ``torch.nn`` class name
and its parameters (torch's names, defaults and checks); :func:`resolve`
accepts an Activation, a name or a torch.nn module instance.  Nothing else in
gradkern keeps a list of activation names.
"""
import math
import numbers
from types import MappingProxyType

import numpy as np

from .table import ACTIVATIONS, REQUIRED, Spec, _BY_LOWER

__all__ = ["ACTIVATIONS", "Activation", "Spec", "activation", "from_torch", "is_torch_module",
           "resolve", "variants", "default", "fresh", "REQUIRED"]


class Activation:
    """An activation with its parameters, as ``torch.nn.<name>(**params)``.

    Create one with :func:`gradkern.activation`.  Immutable and hashable.
    """

    __slots__ = ("spec", "params", "_kernel_params")

    def __init__(self, spec, params):
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "params", MappingProxyType(dict(params)))
        # kernel_params per dtype, computed once: 4.3 of a chain_grad call's
        # 22 us at N = 1e3 went to rounding and checking the same values again
        object.__setattr__(self, "_kernel_params", {})

    def __setattr__(self, name, value):
        raise AttributeError("Activation objects are immutable")

    @property
    def name(self):
        return self.spec.name

    @property
    def piecewise_linear(self):
        return self.spec.piecewise_linear

    @property
    def stochastic(self):
        """True when a slope is drawn per sample and layer (RReLU in training mode)."""
        return self.noise_bounds() is not None

    def noise_bounds(self):
        """(lower, upper) of the per-sample, per-layer slope, or None."""
        noise = self.spec.slope_noise
        return None if noise is None else noise(self.params)

    def ops(self):
        """The (forward, backward) scalar functions the kernels are built from."""
        return self.spec.ops(self.params) if self.spec.ops else (self.spec.forward,
                                                                 self.spec.backward)

    @property
    def label(self):
        """The registry's variant label these parameters match (``RReLU(training)``),
        else the name."""
        for label, params in self.spec.variants.items():
            if all(self.params.get(k) == v for k, v in params.items()):
                return label
        return self.name

    def kernel_params(self, dtype):
        """The parameter tuple ``p`` of the scalar functions, rounded to ``dtype``.

        What gradkern's kernels pass to ``forward(x, p)`` and
        ``backward(g, x, y, p)`` (:mod:`gradkern.jit`), built from this
        activation's parameters as torch rounds them (``param.to<scalar_t>()``).

        Parameters
        ----------
        dtype : numpy dtype or str
            float32 or float64: the dtype of the ``x`` the functions get.

        Returns
        -------
        tuple of 4 ``dtype`` scalars
            Always four, unused slots 0 (Numba types it as ``UniTuple(dtype, 4)``,
            one compiled function per dtype whatever the activation).  The
            meaning of each slot is the activation's own (ELU: ``(alpha,
            1, 1, 1)``; Hardtanh: ``(min_val, max_val, 0, 0)``); only RReLU in
            training mode asks its user to change one: slot 0 is the negative
            slope drawn per sample (here the eval slope ``(lower + upper) / 2``).

        Raises
        ------
        TypeError
            ``dtype`` is not float32 or float64.
        ValueError
            A parameter is not finite in ``dtype`` (e.g.
            ``LeakyReLU(negative_slope=1e300)`` in float32), as torch refuses
            such a parameter ("value cannot be converted to type float without
            overflow").
        """
        dtype = _kernel_dtype(dtype)
        values = self._kernel_params.get(dtype)
        if values is not None:
            return values
        with np.errstate(over="ignore"):  # an overflow is reported below, by name
            values = self.spec.kernel_params(self.params, dtype)
        for i, v in enumerate(values):
            if not np.isfinite(v):
                self._overflow(i, dtype)
        self._kernel_params[dtype] = values
        return values

    def _overflow(self, i, dtype):
        names = self.spec.kernel_names
        name = names[i] if i < len(names) else f"kernel parameter {i}"
        exact = self.spec.kernel_params(self.params, np.dtype(np.float64))[i]
        raise ValueError(
            f"{self!r} cannot run in {dtype}: {name} = {float(exact)!r} overflows {dtype} "
            "(torch: 'value cannot be converted to type float without overflow')")

    def kinks(self):
        """Inputs at which the derivative is discontinuous (or switches formula)."""
        return tuple(float(k) for k in self.spec.kinks(self.params))

    def forward(self, x, *, noise=None, seed=None):
        """The activation of ``x``, elementwise: what the ``torch.nn`` module
        gives on the same tensor, sign of zero included (``ReLU(-0.0)`` is -0.0).

        Parameters
        ----------
        x : array_like or tensor, any shape
            float32 is computed in float32, any other real dtype in float64.
        noise : array_like, shape of ``x``, optional
            RReLU in training mode only: the slope of each element (the noise
            torch recorded, say; used where x <= 0).
        seed : int, optional
            RReLU in training mode only: draw the slopes as
            ``gk.rrelu_slopes(x.size, 1, seed, lower, upper)`` (the slopes of
            ``chain_grad(x, act, [1.0], seed=seed)``).  With neither, fresh
            slopes are drawn at every call, as a module in training mode does;
            pass the same ``seed`` or ``noise`` to :meth:`derivative` for the
            derivative of the same draw.

        Returns
        -------
        numpy.ndarray
            New array of ``x``'s shape.

        Notes
        -----
        The activation's scalar forward applied to each element, not a chain:
        ``chain_grad``'s ``Linear`` step turns -0.0 into +0.0 as torch's does,
        this does not.  Softshrink's zero output is +0.0 everywhere, which is
        torch's SIMD value (its scalar tail gives -0.0 for x in [-lambd, 0)).
        """
        from ..chain import elementwise

        return elementwise.elementwise(x, self, noise=noise, seed=seed)[0]

    def derivative(self, x, *, noise=None, seed=None):
        """The derivative at ``x``, elementwise: what torch autograd gives for
        the module on the same tensor, PyTorch's value at every kink.

        Parameters and returns as :meth:`forward`.  At a NaN input the
        derivative is NaN (torch's there depends on the element's position:
        Hardtanh gives 1 on its scalar path, 0 on its SIMD path).
        """
        from ..chain import elementwise

        return elementwise.elementwise(x, self, noise=noise, seed=seed)[1]

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"

    def __eq__(self, other):
        return isinstance(other, Activation) and (self.name, dict(self.params)) == (
            other.name,
            dict(other.params),
        )

    def __hash__(self):
        return hash((self.name, tuple(self.params.items())))


def _kernel_dtype(dtype):
    """float32 or float64 (native order) from anything NumPy reads as one of
    them (``np.float32``, ``"float64"``, ``">f4"``); else TypeError."""
    try:
        out = None if dtype is None else np.dtype(dtype)  # np.dtype(None) is float64
    except TypeError:
        out = None
    if out is None or out.kind != "f" or out.itemsize not in (4, 8):
        raise TypeError(f"dtype must be float32 or float64 (the kernels' dtypes), got {dtype!r}")
    return out.newbyteorder("=")


def _check_param(spec, key, value, default):
    act = spec.name
    if key in spec.choices:
        if not isinstance(value, str):
            raise TypeError(f"{act}: {key} must be a str, got {type(value).__name__}")
        if value not in spec.choices[key]:
            raise ValueError(f"{act}: {key} must be one of "
                             f"{', '.join(map(repr, spec.choices[key]))}, got {value!r}")
        return value
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{act}: {key} must be a bool, got {type(value).__name__}")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{act}: {key} must be an int, got {type(value).__name__}")
        return int(value)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{act}: {key} must be a real number, got {type(value).__name__}")
    try:
        value = float(value)
    except OverflowError:  # an int or Fraction beyond float64, e.g. 10**400
        raise ValueError(f"{act}: {key} must be finite, got a {type(value).__name__} beyond "
                         "float64's range") from None
    if not math.isfinite(value):
        raise ValueError(f"{act}: {key} must be finite, got {value}")
    return value


def activation(name, **params):
    """Create an activation by its ``torch.nn`` class name (case-insensitive).

    Parameters
    ----------
    name : str
        One of ``gradkern.ACTIVATIONS``: ``"ELU"``, ``"tanh"``, ``"LeakyReLU"``...
    **params
        Constructor parameters with ``torch.nn``'s names and defaults
        (``alpha=``, ``negative_slope=``, ``beta=``, ``threshold=``, ``lambd=``,
        ``min_val=``, ``max_val=``, ``lower=``, ``upper=``, ``init=`` for PReLU,
        ``training=`` for RReLU, default True as for a fresh ``nn.RReLU()``).

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        Unknown name or parameter (the message lists the valid ones), or a
        parameter value torch would reject.  gradkern also refuses a few that
        torch accepts but computes non-finite numbers from: NaN or infinite
        parameters, CELU's ``alpha`` that is 0 in float32 (torch's backward
        divides by float32(alpha): NaN gradients), RReLU's eval slope
        ``(lower + upper) / 2`` beyond float64.  A parameter that overflows the
        chain's dtype (``LeakyReLU(negative_slope=1e300)`` with float32 inputs)
        is a ValueError naming it and the dtype when the chain is computed.
    TypeError
        A parameter of the wrong type.

    Notes
    -----
    PReLU's ``init`` is rounded to float32, as ``torch.nn.PReLU(init=0.1)``
    holds it in a float32 weight (0.10000000149011612) that a float64 net
    converted with ``.to(torch.float64)`` still computes with.
    """
    if isinstance(name, Activation):
        if params:
            return activation(name.name, **{**name.params, **params})
        return name
    if not isinstance(name, str):
        raise TypeError(f"activation name must be a str, got {type(name).__name__}")
    canonical = _BY_LOWER.get(name.lower())
    if canonical is None:
        raise ValueError(
            f"unknown activation {name!r}; valid names: {', '.join(ACTIVATIONS)}"
        )
    spec = ACTIVATIONS[canonical]
    unknown = sorted(set(params) - set(spec.defaults))
    if unknown:
        valid = ", ".join(spec.defaults) or "none"
        raise ValueError(
            f"{canonical} has no parameter {', '.join(map(repr, unknown))}; valid parameters: {valid}"
        )
    missing = [k for k, d in spec.defaults.items() if d is REQUIRED and k not in params]
    if missing:
        raise ValueError(f"{canonical} needs {', '.join(map(repr, missing))} (torch.nn."
                         f"{canonical} has no default for {'it' if len(missing) == 1 else 'them'})")
    values = {k: _check_param(spec, k, params.get(k, d), 0.0 if d is REQUIRED else d)
              for k, d in spec.defaults.items()}
    spec.check(values)
    return Activation(spec, spec.round_params(values))


# torch.nn module attribute -> gradkern parameter, where they differ or need reading
def from_torch(module):
    """Convert a ``torch.nn`` activation module instance to an :class:`Activation`.

    Reads the module's parameters (its attributes of the same names, module
    state such as ``training`` included, or what the registry entry's
    ``torch_params`` reads, e.g. PReLU's weight).  Does not import torch itself.
    """
    cls = type(module).__name__
    if cls not in ACTIVATIONS:
        raise TypeError(
            f"cannot convert {cls} to a gradkern activation; supported torch.nn "
            f"modules: {', '.join(ACTIVATIONS)}"
        )
    spec = ACTIVATIONS[cls]
    if spec.torch_params is not None:
        return activation(cls, **spec.torch_params(module))
    return activation(cls, **{key: getattr(module, key) for key in spec.defaults})


def is_torch_module(obj):
    return type(obj).__module__.startswith("torch.nn")


#: name -> its Activation, for :func:`resolve`: one object per name, whose
#: kernel_params are then computed once (a name resolved afresh at every
#: chain_grad call cost 5 of its 21 us at N = 1e3)
_BY_NAME = {}


def resolve(act):
    """An :class:`Activation` from an Activation, a name or a torch.nn module."""
    if isinstance(act, Activation):
        return act
    if isinstance(act, str):
        found = _BY_NAME.get(act)
        if found is None:
            found = _BY_NAME[act] = activation(act)  # raises for an unknown name
        return found
    if is_torch_module(act):
        return from_torch(act)
    raise TypeError(
        "activation must be a gradkern Activation, a torch.nn class name such as "
        f"'Tanh', or a torch.nn activation module; got {type(act).__name__}"
    )


def variants(names=None):
    """``[(label, Activation), ...]``: every registry variant (RReLU in eval and
    in training mode, ...) of ``names`` (default: all), in registry order."""
    out = []
    for name in names or ACTIVATIONS:
        spec = ACTIVATIONS[_canonical(name)]
        for label, params in (spec.variants or {spec.name: {}}).items():
            out.append((label, activation(spec.name, **params)))
    return out


def default(name):
    """The deterministic reference configuration of ``name``: the registry's
    first variant (RReLU in eval mode), else torch's defaults."""
    spec = ACTIVATIONS[_canonical(name)]
    return activation(spec.name, **next(iter(spec.variants.values()), {}))


def fresh(name):
    """What a fresh ``torch.nn.<name>()`` is: torch.nn's defaults (RReLU in
    training mode); where torch.nn has no default (``Threshold(threshold,
    value)``), the registry's reference values, its first variant
    (``Threshold(0.1, 20)``).  What "all activations" means in sweeps and in
    ``gradkern vanishing --activations all``."""
    spec = ACTIVATIONS[_canonical(name)]
    if any(v is REQUIRED for v in spec.defaults.values()):
        return default(spec.name)
    return activation(spec.name)


def _canonical(name):
    """The registry's spelling of ``name`` (an Activation's name, too), without
    building one: ``Threshold`` has no defaults to build it from."""
    if isinstance(name, Activation):
        return name.name
    canonical = _BY_LOWER.get(name.lower()) if isinstance(name, str) else None
    if canonical is None:
        activation(name)  # the error activation() gives: unknown name, or not a str
    return canonical
