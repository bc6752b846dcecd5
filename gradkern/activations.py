"""The activation registry: what each activation *is*.

One :class:`Spec` per ``torch.nn`` class: its parameters and defaults, their
checks, the scalar forward/backward from :mod:`gradkern.scalar`, how its
parameters become the kernel's 4-tuple in a given dtype, and its kinks.  Tests,
the CLI, the reference and the kernels all read this table, so no other module
keeps a list of activation names.
"""
import math
import numbers
from dataclasses import dataclass
from types import MappingProxyType
from typing import Callable

import numpy as np

from . import scalar as S

__all__ = ["Activation", "Spec", "ACTIVATIONS", "activation", "from_torch"]

# torch/nn/modules/activation.py and ATen's SELU constants (double).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946


@dataclass(frozen=True)
class Spec:
    """Everything gradkern knows about one activation."""

    name: str  # the torch.nn class name
    defaults: dict  # constructor parameters and their torch.nn defaults
    forward: Callable
    backward: Callable
    kernel_params: Callable  # (params: dict, dtype) -> 4 values in dtype
    kinks: Callable = lambda p: ()  # (params) -> x values where the derivative jumps
    check: Callable = lambda p: None  # (params) -> raises ValueError
    piecewise_linear: bool = False  # bit-identical to torch, not just close
    uses_output: bool = False  # backward reads y rather than x (doc only)
    doc: str = ""


def _pack(dtype, *values):
    """Round parameters to ``dtype`` as ``param.to<scalar_t>()`` does; pad to 4."""
    values = tuple(values) + (0.0,) * (4 - len(values))
    return tuple(dtype.type(v) for v in values)


def _elu_params(dtype, alpha, scale, input_scale_fwd, input_scale_bwd):
    t = dtype.type
    negcoef = t(alpha) * t(scale)  # ATen forms alpha*scale in the kernel dtype
    return (negcoef, t(scale), t(input_scale_fwd), t(input_scale_bwd))


def _check_celu(p):
    if p["alpha"] == 0:
        raise ValueError("CELU: alpha must be non-zero (the forward divides by it)")


def _check_hardtanh(p):
    if not p["max_val"] > p["min_val"]:
        raise ValueError(
            f"Hardtanh: max_val ({p['max_val']}) must be greater than min_val ({p['min_val']})"
        )


def _check_rrelu(p):
    if not p["lower"] <= p["upper"]:
        raise ValueError(f"RReLU: lower ({p['lower']}) must be <= upper ({p['upper']})")


def _check_prelu(p):
    if p["num_parameters"] != 1:
        raise ValueError(
            "PReLU: gradkern's chain has one neuron per layer, so num_parameters must be 1"
        )


def _check_softplus(p):
    if p["beta"] == 0:
        raise ValueError("Softplus: beta must be non-zero (the forward divides by it)")


def _check_softshrink(p):
    if p["lambd"] < 0:
        raise ValueError(f"Softshrink: lambd must be >= 0, got {p['lambd']}")


def _rrelu_params(p, dtype):
    if p["training"]:
        # slot 0 is filled per sample and layer from the noise array
        return _pack(dtype, 0.0)
    # rrelu_with_noise_out_cpu: negative_slope = (lower + upper) / 2 in double
    return _pack(dtype, (p["lower"] + p["upper"]) / 2.0)


_SPECS = [
    Spec(
        "ELU", {"alpha": 1.0}, S.elu_forward, S.elu_backward,
        lambda p, dt: _elu_params(dt, p["alpha"], 1.0, 1.0, 1.0),
        kinks=lambda p: (0.0,),
        doc="ELU(x) = x if x > 0 else alpha*(exp(x)-1); ELU'(0) = alpha (left branch).",
    ),
    Spec(
        "Hardtanh", {"min_val": -1.0, "max_val": 1.0},
        S.hardtanh_forward, S.hardtanh_backward,
        lambda p, dt: _pack(dt, p["min_val"], p["max_val"]),
        kinks=lambda p: (p["min_val"], p["max_val"]),
        check=_check_hardtanh, piecewise_linear=True,
        doc="clamp(x, min_val, max_val); derivative 0 at both kinks.",
    ),
    Spec(
        "LeakyReLU", {"negative_slope": 0.01},
        S.leaky_relu_forward, S.leaky_relu_backward,
        lambda p, dt: _pack(dt, p["negative_slope"]),
        kinks=lambda p: (0.0,), piecewise_linear=True,
        doc="x if x > 0 else negative_slope*x; derivative at 0 is negative_slope.",
    ),
    Spec(
        "LogSigmoid", {}, S.log_sigmoid_forward, S.log_sigmoid_backward,
        lambda p, dt: _pack(dt), kinks=lambda p: (0.0,),
        doc="log(1/(1+exp(-x))); derivative 1 - sigmoid(x), 0.5 at 0.",
    ),
    Spec(
        "PReLU", {"num_parameters": 1, "init": 0.25},
        S.leaky_relu_forward, S.prelu_backward,
        lambda p, dt: _pack(dt, p["init"]),
        kinks=lambda p: (0.0,), check=_check_prelu, piecewise_linear=True,
        doc="x if x > 0 else weight*x with weight = init; derivative at 0 is weight.",
    ),
    Spec(
        "ReLU", {}, S.relu_forward, S.relu_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), piecewise_linear=True, uses_output=True,
        doc="max(x, 0); derivative from the output, 0 at 0.",
    ),
    Spec(
        "ReLU6", {}, S.hardtanh_forward, S.hardtanh_backward,
        lambda p, dt: _pack(dt, 0.0, 6.0),
        kinks=lambda p: (0.0, 6.0), piecewise_linear=True,
        doc="Hardtanh(0, 6); derivative 0 at 0 and at 6.",
    ),
    Spec(
        "RReLU", {"lower": 1.0 / 8, "upper": 1.0 / 3, "training": True},
        S.leaky_relu_forward, S.leaky_relu_backward, _rrelu_params,
        kinks=lambda p: (0.0,), check=_check_rrelu, piecewise_linear=True,
        doc="training: x*r for x <= 0 with r ~ U[lower, upper] per sample and layer; "
        "eval: LeakyReLU with slope (lower+upper)/2.",
    ),
    Spec(
        "SELU", {}, S.elu_forward, S.elu_backward,
        lambda p, dt: _elu_params(dt, SELU_ALPHA, SELU_SCALE, 1.0, 1.0),
        kinks=lambda p: (0.0,),
        doc="scale*ELU(x, alpha) with PyTorch's constants; SELU'(0) = alpha*scale.",
    ),
    Spec(
        "CELU", {"alpha": 1.0}, S.elu_forward, S.elu_backward,
        # forward: at::elu(x, alpha, 1, 1./alpha) (double division);
        # backward: elu_backward(.., 1.0/alpha.toFloat()) (via float, in every dtype)
        lambda p, dt: _elu_params(
            dt, p["alpha"], 1.0, 1.0 / p["alpha"], 1.0 / float(np.float32(p["alpha"]))
        ),
        kinks=lambda p: (0.0,), check=_check_celu,
        doc="max(0,x) + min(0, alpha*(exp(x/alpha)-1)); CELU'(0) = 1.",
    ),
    Spec(
        "Sigmoid", {}, S.sigmoid_forward, S.sigmoid_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), uses_output=True,
        doc="1/(1+exp(-x)); derivative y*(1-y) from the output.",
    ),
    Spec(
        "Softplus", {"beta": 1.0, "threshold": 20.0},
        S.softplus_forward, S.softplus_backward,
        lambda p, dt: _pack(dt, p["beta"], p["threshold"]),
        kinks=lambda p: (p["threshold"] / p["beta"], 0.0), check=_check_softplus,
        doc="log1p(exp(beta*x))/beta, x itself where beta*x > threshold.",
    ),
    Spec(
        "Softshrink", {"lambd": 0.5}, S.softshrink_forward, S.shrink_backward,
        lambda p, dt: _pack(dt, p["lambd"]),
        kinks=lambda p: (-p["lambd"], p["lambd"]), check=_check_softshrink,
        piecewise_linear=True,
        doc="x - lambd, x + lambd or 0; derivative 0 on the closed band [-lambd, lambd].",
    ),
    Spec(
        "Softsign", {}, S.softsign_forward, S.softsign_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,),
        doc="x/(1+|x|); derivative 1/(1+|x|)^2.",
    ),
    Spec(
        "Tanh", {}, S.tanh_forward, S.tanh_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), uses_output=True,
        doc="tanh(x); derivative 1 - y^2 from the output, fused.",
    ),
    Spec(
        "Tanhshrink", {}, S.tanhshrink_forward, S.tanhshrink_backward,
        lambda p, dt: _pack(dt), kinks=lambda p: (0.0,),
        doc="x - tanh(x); derivative tanh(x)^2.",
    ),
    Spec(
        "Hardshrink", {"lambd": 0.5}, S.hardshrink_forward, S.shrink_backward,
        lambda p, dt: _pack(dt, p["lambd"]),
        kinks=lambda p: (-p["lambd"], p["lambd"]), piecewise_linear=True,
        doc="x outside [-lambd, lambd], 0 inside; derivative 0 on the closed band.",
    ),
]

#: torch.nn class name -> Spec, in the seed notebook's order
ACTIVATIONS = {s.name: s for s in _SPECS}
_BY_LOWER = {name.lower(): name for name in ACTIVATIONS}


class Activation:
    """An activation with its parameters, as ``torch.nn.<name>(**params)``.

    Create one with :func:`gradkern.activation`.  Immutable and hashable.
    """

    __slots__ = ("spec", "params")

    def __init__(self, spec, params):
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "params", MappingProxyType(dict(params)))

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
        """True for RReLU in training mode: the slope is drawn per sample and layer."""
        return self.spec.name == "RReLU" and bool(self.params["training"])

    def kernel_params(self, dtype):
        """The kernel's 4-tuple of parameters, rounded to ``dtype``."""
        return self.spec.kernel_params(self.params, np.dtype(dtype))

    def kinks(self):
        """Inputs at which the derivative is discontinuous (or switches formula)."""
        return tuple(float(k) for k in self.spec.kinks(self.params))

    def forward(self, x):
        """Elementwise activation of ``x`` (depth-1 chain with weight 1)."""
        from .api import chain_grad

        return chain_grad(x, self, [1.0]).output

    def derivative(self, x):
        """Elementwise derivative at ``x`` (PyTorch's value at every kink)."""
        from .api import chain_grad

        return chain_grad(x, self, [1.0]).input_grad

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


def _check_param(act, key, value, default):
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{act}: {key} must be a bool, got {type(value).__name__}")
        return bool(value)
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{act}: {key} must be an int, got {type(value).__name__}")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{act}: {key} must be a real number, got {type(value).__name__}")
    value = float(value)
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
        parameter value torch would reject.
    TypeError
        A parameter of the wrong type.
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
    values = {
        k: _check_param(canonical, k, params.get(k, d), d) for k, d in spec.defaults.items()
    }
    spec.check(values)
    return Activation(spec, values)


# torch.nn module attribute -> gradkern parameter, where they differ or need reading
def from_torch(module):
    """Convert a ``torch.nn`` activation module instance to an :class:`Activation`.

    Reads the module's parameters (and, for RReLU, ``module.training``; for
    PReLU, the value of its single weight).  Does not import torch itself.
    """
    cls = type(module).__name__
    if cls not in ACTIVATIONS:
        raise TypeError(
            f"cannot convert {cls} to a gradkern activation; supported torch.nn "
            f"modules: {', '.join(ACTIVATIONS)}"
        )
    spec = ACTIVATIONS[cls]
    params = {}
    for key in spec.defaults:
        if key == "training":
            params[key] = bool(module.training)
        elif cls == "PReLU" and key == "init":
            weight = module.weight.detach().cpu().reshape(-1)
            params[key] = float(weight[0])
        elif cls == "ReLU6":
            continue
        else:
            params[key] = getattr(module, key)
    return activation(cls, **params)


def is_torch_module(obj):
    return type(obj).__module__.startswith("torch.nn")
