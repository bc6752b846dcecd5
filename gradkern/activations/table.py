"""The activation registry: what each activation *is*.

One :class:`Spec` per ``torch.nn`` class: its parameters and defaults, their
checks, the scalar forward/backward from :mod:`gradkern.activations.scalar`, how its
parameters become the kernel's 4-tuple in a given dtype, and its kinks.  Tests,
the CLI, the reference and the kernels all read this table, so no other module
keeps a list of activation names.
"""
import math
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..stream.dists import slope_bounds
from . import scalar as S

__all__ = ["Spec", "ACTIVATIONS", "REQUIRED"]

INF = float("inf")


class _Required:
    """A parameter torch.nn has no default for (``Threshold(threshold, value)``)."""

    def __repr__(self):
        return "REQUIRED"


REQUIRED = _Required()


def F32(v):
    """``v`` rounded to float32, as a Python float (a derivative torch gives in float32)."""
    return float(np.float32(v))


# torch/nn/modules/activation.py and ATen's SELU constants (double).
SELU_ALPHA = 1.6732632423543772848170429916717
SELU_SCALE = 1.0507009873554804934193349852946

# <math.h>'s constants (double), from which ATen's GELU kernels form theirs
M_SQRT1_2 = 0.70710678118654752440
M_SQRT2 = 1.41421356237309504880
M_2_SQRTPI = 1.12837916709551257390
GELU_KAPPA = 0.044715


@dataclass(frozen=True)
class Spec:
    """Everything gradkern knows about one activation.

    Adding an activation is one entry of this table plus its forward and
    backward in :mod:`.scalar` (docs/internals.md, "Adding an activation");
    every kernel, backend, test, benchmark and command reads the entry.
    """

    name: str  # the torch.nn class name
    defaults: dict  # constructor parameters and their torch.nn defaults
    forward: Callable  # scalar.<name>_forward(x, p)
    backward: Callable  # scalar.<name>_backward(g, x, y, p)
    kernel_params: Callable  # (params: dict, dtype) -> 4 values in dtype
    kinks: Callable = lambda p: ()  # (params) -> x values where the derivative jumps
    check: Callable = lambda p: None  # (params) -> raises ValueError
    # what kernel_params' values are, in the parameters' terms (error messages)
    kernel_names: tuple = ()
    round_params: Callable = lambda p: p  # (params) -> params as torch holds them
    #: (params) -> (forward, backward), where a parameter chooses the kernel
    #: pair (an approximation flag, say); None: always (forward, backward)
    ops: Optional[Callable] = None
    #: string parameter -> its allowed values (torch's choices)
    choices: dict = field(default_factory=dict)
    #: (params) -> (lower, upper) when a slope is drawn per sample and layer
    #: (it fills kernel parameter 0), None when nothing is drawn
    slope_noise: Optional[Callable] = None
    #: labelled parameter sets that tests, benchmarks and ``gradkern verify``
    #: iterate; the first is the deterministic one used where one is needed.
    #: Empty: just the defaults, labelled with the name
    variants: dict = field(default_factory=dict)
    #: ((params, x, derivative), ...): float32 derivative torch 2.13 gives at
    #: each kink and special input, measured (tests check both sides)
    kink_derivatives: tuple = ()
    piecewise_linear: bool = False  # bit-identical to torch, not just close
    transcendental: bool = False  # exp/log/tanh inside (else exact on every backend)
    explicit_fma: bool = False  # the math calls fma() where torch's build fuses
    #: result fields ("output", "weight_grads", "input_grad") whose sign of
    #: zero may differ from torch's (bits otherwise equal)
    signed_zero_exempt: tuple = ()
    #: parameters that are module state, not constructor arguments ("training")
    module_state: tuple = ()
    #: (module) -> params, reading a torch.nn module; None: getattr per default
    torch_params: Optional[Callable] = None
    torch_vmap: bool = True  # torch.func.vmap can batch the torch.nn module
    uses_output: bool = False  # backward reads y rather than x (doc only)
    #: in the default benchmark and plot set (one smooth, one piecewise-linear)
    representative: bool = False
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
    alpha = p["alpha"]
    if alpha == 0:
        raise ValueError("CELU: alpha must be non-zero (the forward divides by it)")
    # CELU's backward computes 1.0 / alpha.toFloat() in every dtype: torch
    # raises when float32(alpha) overflows, and returns NaN gradients when it
    # is 0 (|alpha| < 7.0e-46); gradkern refuses both
    if not _fits_float32(alpha):
        raise ValueError(f"CELU: alpha={alpha!r} overflows float32, and torch's CELU backward "
                         "uses float32(alpha) in every dtype (torch: 'value cannot be converted "
                         "to type float without overflow')")
    if np.float32(alpha) == 0:
        raise ValueError(f"CELU: alpha={alpha!r} is 0 in float32, and torch's CELU backward "
                         "divides by float32(alpha) in every dtype (its gradients would be NaN)")


def _check_hardtanh(p):
    if not p["max_val"] > p["min_val"]:
        raise ValueError(
            f"Hardtanh: max_val ({p['max_val']}) must be greater than min_val ({p['min_val']})"
        )


def _check_rrelu(p):
    lower, upper = p["lower"], p["upper"]
    if not lower <= upper:
        raise ValueError(f"RReLU: lower ({lower}) must be <= upper ({upper})")
    if p["training"]:
        # the slopes are lower + (upper - lower) * u in float64; torch checks the same
        # ("Expected to - from <= std::numeric_limits<T>::max()")
        if not math.isfinite(upper - lower):
            raise ValueError(f"RReLU: upper - lower ({upper} - {lower}) overflows float64")
    elif not math.isfinite((lower + upper) / 2.0):
        # torch would use an infinite slope; gradkern refuses it
        raise ValueError(f"RReLU: the eval-mode slope (lower + upper) / 2 = ({lower} + {upper}) "
                         "/ 2 overflows float64")


def _check_prelu(p):
    if p["num_parameters"] != 1:
        raise ValueError(
            "PReLU: gradkern's chain has one neuron per layer, so num_parameters must be 1"
        )
    if not _fits_float32(p["init"]):
        raise ValueError(f"PReLU: init={p['init']!r} overflows float32, the dtype of torch's "
                         "PReLU weight (torch: 'value cannot be converted to type float "
                         "without overflow')")


def _prelu_round(p):
    # nn.PReLU(init=...) holds its weight as a float32 Parameter, and a float64
    # net made with .to(float64) computes with that float32 value:
    # init=0.1 is 0.10000000149011612 in both dtypes
    return {**p, "init": float(np.float32(p["init"]))}


def _prelu_from_torch(module):
    weight = module.weight.detach().cpu().reshape(-1)
    return {"num_parameters": int(module.num_parameters), "init": _prelu_weight(float(weight[0]))}


def _fits_float32(value):
    with np.errstate(over="ignore"):
        return bool(np.isfinite(np.float32(value)))


def _check_softplus(p):
    if p["beta"] == 0:
        raise ValueError("Softplus: beta must be non-zero (the forward divides by it)")


def _check_softshrink(p):
    if p["lambd"] < 0:
        raise ValueError(f"Softshrink: lambd must be >= 0, got {p['lambd']}")


def _rrelu_params(p, dtype):
    if p["training"]:
        slope_bounds(p["lower"], p["upper"], dtype)  # the slopes' bounds, in dtype
        # slot 0 is filled per sample and layer from the noise array
        return _pack(dtype, 0.0)
    # rrelu_with_noise_out_cpu: negative_slope = (lower + upper) / 2 in double
    return _pack(dtype, (p["lower"] + p["upper"]) / 2.0)


_SPECS = [
    Spec(
        "ELU", {"alpha": 1.0}, S.elu_forward, S.elu_backward,
        lambda p, dt: _elu_params(dt, p["alpha"], 1.0, 1.0, 1.0),
        kinks=lambda p: (0.0,), kernel_names=("alpha",), transcendental=True,
        kink_derivatives=(({}, 0.0, 1.0), ({}, -INF, 0.0)),
        doc="ELU(x) = x if x > 0 else alpha*(exp(x)-1); ELU'(0) = alpha (left branch).",
    ),
    Spec(
        "Hardtanh", {"min_val": -1.0, "max_val": 1.0},
        S.hardtanh_forward, S.hardtanh_backward,
        lambda p, dt: _pack(dt, p["min_val"], p["max_val"]),
        kinks=lambda p: (p["min_val"], p["max_val"]), kernel_names=("min_val", "max_val"),
        check=_check_hardtanh, piecewise_linear=True,
        kink_derivatives=(({}, -1.0, 0.0), ({}, 1.0, 0.0)),
        doc="clamp(x, min_val, max_val); derivative 0 at both kinks.",
    ),
    Spec(
        "LeakyReLU", {"negative_slope": 0.01},
        S.leaky_relu_forward, S.leaky_relu_backward,
        lambda p, dt: _pack(dt, p["negative_slope"]),
        kinks=lambda p: (0.0,), piecewise_linear=True, kernel_names=("negative_slope",),
        kink_derivatives=(({}, 0.0, F32(0.01)), ({}, -0.0, F32(0.01))),
        doc="x if x > 0 else negative_slope*x; derivative at 0 is negative_slope.",
    ),
    Spec(
        "LogSigmoid", {}, S.log_sigmoid_forward, S.log_sigmoid_backward,
        lambda p, dt: _pack(dt), kinks=lambda p: (0.0,), transcendental=True,
        kink_derivatives=(({}, 0.0, 0.5), ({}, INF, 0.0), ({}, -INF, 1.0)),
        doc="log(1/(1+exp(-x))); derivative 1 - sigmoid(x), 0.5 at 0.",
    ),
    Spec(
        "PReLU", {"num_parameters": 1, "init": 0.25},
        S.leaky_relu_forward, S.leaky_relu_backward,
        lambda p, dt: _pack(dt, p["init"]),
        kinks=lambda p: (0.0,), check=_check_prelu, piecewise_linear=True,
        kernel_names=("init",), round_params=_prelu_round, torch_params=_prelu_from_torch,
        kink_derivatives=(({}, 0.0, 0.25),),
        doc="x if x > 0 else weight*x with weight = init rounded to float32 (torch's "
        "weight is a float32 Parameter, also in a float64 net); derivative at 0 is weight.",
    ),
    Spec(
        "ReLU", {}, S.relu_forward, S.relu_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), piecewise_linear=True, uses_output=True, representative=True,
        kink_derivatives=(({}, 0.0, 0.0), ({}, -0.0, 0.0)),
        doc="max(x, 0); derivative from the output, 0 at 0.",
    ),
    Spec(
        "ReLU6", {}, S.hardtanh_forward, S.hardtanh_backward,
        lambda p, dt: _pack(dt, 0.0, 6.0),
        kinks=lambda p: (0.0, 6.0), piecewise_linear=True,
        torch_params=lambda module: {},  # nn.ReLU6 has min_val/max_val, but fixed
        kink_derivatives=(({}, 0.0, 0.0), ({}, 6.0, 0.0)),
        doc="Hardtanh(0, 6); derivative 0 at 0 and at 6.",
    ),
    Spec(
        "RReLU", {"lower": 1.0 / 8, "upper": 1.0 / 3, "training": True},
        S.leaky_relu_forward, S.leaky_relu_backward, _rrelu_params,
        kinks=lambda p: (0.0,), check=_check_rrelu, piecewise_linear=True,
        kernel_names=("(lower + upper) / 2",),
        slope_noise=lambda p: (p["lower"], p["upper"]) if p["training"] else None,
        variants={"RReLU": {"training": False}, "RReLU(training)": {"training": True}},
        module_state=("training",),
        # torch 2.13's vmap has no batching rule for aten::rrelu_with_noise
        torch_vmap=False,
        kink_derivatives=(({"training": False}, 0.0, F32(0.22916667)),),
        doc="training: x*r for x <= 0 with r ~ U[lower, upper] per sample and layer; "
        "eval: LeakyReLU with slope (lower+upper)/2.",
    ),
    Spec(
        "SELU", {}, S.elu_forward, S.elu_backward,
        lambda p, dt: _elu_params(dt, SELU_ALPHA, SELU_SCALE, 1.0, 1.0),
        kinks=lambda p: (0.0,), transcendental=True,
        kink_derivatives=(({}, 0.0, F32(1.7580993)),),
        doc="scale*ELU(x, alpha) with PyTorch's constants; SELU'(0) = alpha*scale.",
    ),
    Spec(
        "CELU", {"alpha": 1.0}, S.elu_forward, S.elu_backward,
        # forward: at::elu(x, alpha, 1, 1./alpha) (double division);
        # backward: elu_backward(.., 1.0/alpha.toFloat()) (via float, in every dtype)
        lambda p, dt: _elu_params(
            dt, p["alpha"], 1.0, 1.0 / p["alpha"], 1.0 / float(np.float32(p["alpha"]))
        ),
        kinks=lambda p: (0.0,), check=_check_celu, transcendental=True,
        kernel_names=("alpha", "scale", "1/alpha", "1/float32(alpha)"),
        kink_derivatives=(({}, 0.0, 1.0),),
        doc="max(0,x) + min(0, alpha*(exp(x/alpha)-1)); CELU'(0) = 1.",
    ),
    Spec(
        "Sigmoid", {}, S.sigmoid_forward, S.sigmoid_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), uses_output=True, transcendental=True,
        kink_derivatives=(({}, 0.0, 0.25),),
        doc="1/(1+exp(-x)); derivative y*(1-y) from the output.",
    ),
    Spec(
        "Softplus", {"beta": 1.0, "threshold": 20.0},
        S.softplus_forward, S.softplus_backward,
        lambda p, dt: _pack(dt, p["beta"], p["threshold"]),
        kinks=lambda p: (p["threshold"] / p["beta"], 0.0), check=_check_softplus,
        kernel_names=("beta", "threshold"), transcendental=True,
        kink_derivatives=(({}, 20.0, 1.0), ({}, 0.0, 0.5), ({}, INF, 1.0)),
        doc="log1p(exp(beta*x))/beta, x itself where beta*x > threshold.",
    ),
    Spec(
        "Softshrink", {"lambd": 0.5}, S.softshrink_forward, S.shrink_backward,
        lambda p, dt: _pack(dt, p["lambd"]),
        kinks=lambda p: (-p["lambd"], p["lambd"]), check=_check_softshrink,
        piecewise_linear=True, kernel_names=("lambd",),
        # inside the band torch gives +0.0 on its SIMD body and x*0 (-0.0 for
        # x < 0) on each thread's scalar tail: the sign depends on position;
        # gradkern gives +0.0
        signed_zero_exempt=("output",),
        kink_derivatives=(({}, 0.5, 0.0), ({}, -0.5, 0.0)),
        doc="x - lambd, x + lambd or 0; derivative 0 on the closed band [-lambd, lambd].",
    ),
    Spec(
        "Softsign", {}, S.softsign_forward, S.softsign_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), kink_derivatives=(({}, 0.0, 1.0),),
        doc="x/(1+|x|); derivative 1/(1+|x|)^2.",
    ),
    Spec(
        "Tanh", {}, S.tanh_forward, S.tanh_backward, lambda p, dt: _pack(dt),
        kinks=lambda p: (0.0,), uses_output=True, transcendental=True, explicit_fma=True,
        representative=True, kink_derivatives=(({}, 0.0, 1.0),),
        doc="tanh(x); derivative 1 - y^2 from the output, fused.",
    ),
    Spec(
        "Tanhshrink", {}, S.tanhshrink_forward, S.tanhshrink_backward,
        lambda p, dt: _pack(dt), kinks=lambda p: (0.0,), transcendental=True,
        explicit_fma=True, kink_derivatives=(({}, 0.0, 0.0),),
        doc="x - tanh(x); derivative tanh(x)^2.",
    ),
    Spec(
        "Hardshrink", {"lambd": 0.5}, S.hardshrink_forward, S.shrink_backward,
        lambda p, dt: _pack(dt, p["lambd"]),
        kinks=lambda p: (-p["lambd"], p["lambd"]), piecewise_linear=True,
        kernel_names=("lambd",), kink_derivatives=(({}, 0.5, 0.0), ({}, -0.5, 0.0)),
        doc="x outside [-lambd, lambd], 0 inside; derivative 0 on the closed band.",
    ),
]


def _gelu_params(p, dtype):
    t = dtype.type
    if p["approximate"] == "tanh":
        # kBeta = M_SQRT2*M_2_SQRTPI*0.5 (double, then rounded); opmath_t(3)*kKappa
        # is formed in the dtype: 0x3E095D4E in float32, one ulp below f32(0.134145)
        return (t(M_SQRT2 * M_2_SQRTPI * 0.5), t(GELU_KAPPA), t(3.0) * t(GELU_KAPPA), t(1.0))
    # torch runs float32 GELU('none') in oneDNN (contiguous, more than one
    # element): slot 2 keeps oneDNN's inf conventions there (scalar.gelu_forward)
    onednn = 1.0 if dtype == np.float32 else 0.0
    return _pack(dtype, M_SQRT1_2, M_2_SQRTPI * M_SQRT1_2 * 0.5, onednn, 0.0)


def _gelu_ops(p):
    if p["approximate"] == "tanh":
        return S.gelu_tanh_forward, S.gelu_tanh_backward
    return S.gelu_forward, S.gelu_backward


# Beyond the seed notebook's 17: the activations of current networks
_SPECS += [
    Spec(
        "GELU", {"approximate": "none"}, S.gelu_forward, S.gelu_backward, _gelu_params,
        ops=_gelu_ops, choices={"approximate": ("none", "tanh")},
        variants={"GELU": {"approximate": "none"}, "GELU(tanh)": {"approximate": "tanh"}},
        transcendental=True, explicit_fma=True,
        kink_derivatives=(({"approximate": "none"}, 0.0, 0.5), ({"approximate": "tanh"}, 0.0, 0.5),
                          ({"approximate": "none"}, 1e30, 1.0),
                          ({"approximate": "none"}, -1e30, 0.0)),
        doc="x*Phi(x) = x/2*(1 + erf(x/sqrt(2))), or with approximate='tanh' "
        "x/2*(1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3))); GELU'(0) = 0.5, no kink.",
    ),
    Spec(
        "SiLU", {}, S.silu_forward, S.silu_backward, lambda p, dt: _pack(dt),
        transcendental=True, explicit_fma=True,
        kink_derivatives=(({}, 0.0, 0.5), ({}, 1e30, 1.0), ({}, -1e30, 0.0)),
        doc="x*sigmoid(x); SiLU'(0) = 0.5, no kink.",
    ),
    Spec(
        "Mish", {}, S.mish_forward, S.mish_backward, lambda p, dt: _pack(dt),
        transcendental=True, explicit_fma=True,
        kink_derivatives=(({}, 0.0, F32(0.6)), ({}, 1e30, 1.0), ({}, -1e30, 0.0)),
        doc="x*tanh(softplus(x)); Mish'(0) = tanh(log 2) = 0.6, no kink.",
    ),
    Spec(
        "Hardswish", {}, S.hardswish_forward, S.hardswish_backward, lambda p, dt: _pack(dt),
        # piecewise quadratic, but like the piecewise-linear ones computed with
        # IEEE operations only (no transcendental, no fma): held to bit identity
        kinks=lambda p: (-3.0, 3.0), piecewise_linear=True,
        kink_derivatives=(({}, -3.0, 0.0), ({}, 3.0, 1.0), ({}, 0.0, 0.5), ({}, -INF, 0.0),
                          ({}, INF, 1.0)),
        doc="x*ReLU6(x + 3)/6; derivative x/3 + 1/2 between the kinks, 0 at -3 and 1 "
        "at 3 (torch 2.13; torch <= 2.6 gave -0.5 and 1.5).",
    ),
    Spec(
        "Hardsigmoid", {}, S.hardsigmoid_forward, S.hardsigmoid_backward,
        # ATen's one_sixth is 1.0f/6.0f, a float32 value, in float64 too
        lambda p, dt: _pack(dt, F32(1.0 / 6.0)),
        kinks=lambda p: (-3.0, 3.0), piecewise_linear=True,
        kink_derivatives=(({}, -3.0, 0.0), ({}, 3.0, 0.0), ({}, 0.0, F32(1.0 / 6.0))),
        doc="ReLU6(x + 3)/6; derivative float32(1/6) strictly between -3 and 3, 0 at both.",
    ),
    Spec(
        "Threshold", {"threshold": REQUIRED, "value": REQUIRED},
        S.threshold_forward, S.threshold_backward,
        lambda p, dt: _pack(dt, p["threshold"], p["value"]),
        kinks=lambda p: (p["threshold"],), piecewise_linear=True,
        kernel_names=("threshold", "value"),
        # torch.nn.Threshold has no defaults; torch's docs' example
        variants={"Threshold": {"threshold": 0.1, "value": 20.0}},
        kink_derivatives=(({"threshold": 0.1, "value": 20.0}, 0.1, 0.0),
                          ({"threshold": 0.1, "value": 20.0}, 0.2, 1.0)),
        doc="x if x > threshold else value; derivative 0 at the threshold.",
    ),
]

#: torch.nn class name -> Spec, in the seed notebook's order
ACTIVATIONS = {s.name: s for s in _SPECS}
_BY_LOWER = {name.lower(): name for name in ACTIVATIONS}


def _prelu_weight(value):
    # a float32 module's weight always is; a float64 module's weight set to,
    # say, 0.1 is not, and gradkern's PReLU would compute with float32(0.1)
    if math.isfinite(value) and _fits_float32(value) and float(np.float32(value)) != value:
        raise ValueError(
            f"PReLU: the module's weight {value!r} is not a float32 value; gradkern's "
            "PReLU, like torch.nn.PReLU(init=...), holds its weight in float32")
    return value
