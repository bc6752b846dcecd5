"""float32 accuracy of gradkern and of torch against mpmath truth, in ulps.

    .venv/bin/python benchmarks/accuracy_table.py [--n-log 10000] [--jax] [--out FILE]

For every smooth activation of the registry (each variant that is not
piecewise-linear), on float32 inputs: log-uniform magnitudes 1e-8 .. 1e2 of
both signs, the kinks, saturation and overflow edges (where exp, tanh and the
sigmoid round to 0, 1 or inf, the vector math's switch points) with their
neighbours, and denormals.  Columns:

- ``forward``, ``derivative``: ``act.forward`` / ``act.derivative`` against
  the torch.nn module on one contiguous float32 tensor and its autograd;
- ``output``, ``input_grad``, ``dw1`` .. ``dw3``: ``gk.chain_grad`` at depth 3
  with weights 1 against ``gradkern.reference.per_sample_grads`` (SimpleNet).

``--jax`` adds JAX's errors on the same inputs beside them (``"jax"`` in each
column, and ``"jax_normal"``, its maximum where the input and the truth are
normal float32 numbers: XLA on the CPU flushes subnormals to zero; the bench
extra): the elementwise columns from ``jax.vmap`` of the
activation and of its ``jax.grad``, the chain columns from
``jit(vmap(value_and_grad))`` of the same chain as the throughput benchmark's
``jax`` peer (``gradkern.bench.peers``).  A peer that is faster by computing
less accurately is then seen to be so.

Truth: the activation's math at 128 bits (mpmath), with the parameters the
kernels use (``act.kernel_params(float32)``, as torch rounds them).
Derivatives follow torch's convention: where the backward reads the output
(Tanh, Sigmoid: ``Spec.uses_output``) the truth is the exact derivative as a
function of the *correctly rounded* float32 output, 1 - rn(tanh z)^2, since
that is what both libraries are asked to compute (from the exact output, a
derivative where tanh rounds to 1 would be off by millions of ulps in both).
In the chain every layer's pre-activation is exact, only that output is
rounded.

Error in ulps: ``|got - truth| / ulp(truth)``, ulp the float32 spacing at the
truth's magnitude (2^-149 below the normal range); 0 where got and truth are
the same infinity, inf where got is NaN or on the wrong side of float32's
overflow.  The test suite (``tests/test_accuracy.py``) runs :func:`measure`
on fewer inputs and asserts the rules; this script writes the maxima to
``benchmarks/results/accuracy-float32.json``, which ``benchmarks/docs_tables.py``
turns into the table in docs/verification.md.
"""
import argparse
import json
import math
import os
import platform
import sys
import time

import mpmath
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results", "accuracy-float32.json")

#: working precision of the truth, bits: Tanhshrink's x - tanh(x) at x = 1e-8
#: cancels 55 bits, leaving 73 for a 24-bit answer
PREC = 128
DEPTH = 3
COLUMNS = ("forward", "derivative", "output", "input_grad") + tuple(
    f"dw{k}" for k in range(1, DEPTH + 1))
ELEMENTWISE = ("forward", "derivative")
#: log-uniform magnitudes per sign: with the edges, ~22,000 inputs per activation
N_LOG = 10_000

F32_MAX_EXP = 128  # 2^128: the first power of two beyond float32
F32_MIN_EXP = -126  # the smallest normal exponent
F32_MANT = 23

#: where float32 results saturate, overflow or switch formula, as |x|: exp(x)
#: at 2^23, 2^24, 2^25 (1 + exp(-x) and 1 - exp(-x) round to 1), at the
#: smallest normal and subnormal and at overflow; tanh rounding to 1 (1 - tanh
#: = 2e^-2x at 2^-24 .. 2^-26); gradkern's vector math: tanh's polynomial up to
#: 0.625 and its 1 from 10, expm1's -1 below -30, exp's clamps at 89 and 104
EDGES = tuple(sorted({
    *(k * math.log(2.0) for k in (23, 24, 25, 126, 128, 149)),
    *(k * math.log(2.0) / 2 for k in (24, 25, 26)),
    0.625, 10.0, 30.0, 89.0, 104.0,
}))


# ---------------------------------------------------------------------------
# truth: the math of each scalar function pair, at PREC bits; p = the kernel's
# parameters as exact mpf values (scalar.py documents each slot)

def _elu(x, p):
    return p[0] * mpmath.expm1(x * p[2]) if x < 0 else p[1] * x


def _elu_d(x, y, p):
    return p[3] * p[0] * mpmath.exp(x * p[3]) if x <= 0 else p[1]


def _log_sigmoid(x, p):
    return -mpmath.log1p(mpmath.exp(-x))


def _log_sigmoid_d(x, y, p):
    return 1 / (1 + mpmath.exp(x))


def _sigmoid(x, p):
    return 1 / (1 + mpmath.exp(-x))


def _sigmoid_d(x, y, p):  # from the (rounded) output, as torch
    return y * (1 - y)


def _softplus(x, p):
    beta, threshold = p[0], p[1]
    return x if x * beta > threshold else mpmath.log1p(mpmath.exp(x * beta)) / beta


def _softplus_d(x, y, p):
    beta, threshold = p[0], p[1]
    if x * beta > threshold:
        return mpmath.mpf(1)
    return 1 / (1 + mpmath.exp(-x * beta))


def _softsign(x, p):
    return x / (1 + abs(x))


def _softsign_d(x, y, p):
    return 1 / (1 + abs(x)) ** 2


def _tanh(x, p):
    return mpmath.tanh(x)


def _tanh_d(x, y, p):  # from the (rounded) output, as torch
    return 1 - y * y


def _tanhshrink(x, p):
    return x - mpmath.tanh(x)


def _tanhshrink_d(x, y, p):
    return mpmath.tanh(x) ** 2


# erfc, not 1 + erf: below x = -9.3, 1 + erf(x/sqrt 2) is under 2^-128 and
# cancels to 0 even at PREC bits
def _gelu(x, p):
    return x / 2 * mpmath.erfc(-x / mpmath.sqrt(2))


def _gelu_d(x, y, p):
    return mpmath.erfc(-x / mpmath.sqrt(2)) / 2 + x * mpmath.npdf(x)


#: GELU('tanh')'s constants exact (torch and gradkern both round them to the
#: dtype, so that rounding is part of both errors)
_K_BETA, _K_KAPPA = mpmath.sqrt(2 / mpmath.pi), mpmath.mpf("0.044715")


def _gelu_tanh(x, p):
    return x / 2 * (1 + mpmath.tanh(_K_BETA * (x + _K_KAPPA * x ** 3)))


def _gelu_tanh_d(x, y, p):
    t = mpmath.tanh(_K_BETA * (x + _K_KAPPA * x ** 3))
    return (1 + t) / 2 + x / 2 * (1 - t * t) * _K_BETA * (1 + 3 * _K_KAPPA * x * x)


def _silu(x, p):
    return x / (1 + mpmath.exp(-x))


def _silu_d(x, y, p):
    s = 1 / (1 + mpmath.exp(-x))
    return s * (1 + x * (1 - s))


def _mish(x, p):
    return x * mpmath.tanh(mpmath.log1p(mpmath.exp(x)))


def _mish_d(x, y, p):
    t = mpmath.tanh(mpmath.log1p(mpmath.exp(x)))
    return t + x * (1 - t * t) / (1 + mpmath.exp(-x))


#: scalar forward's name -> (f(x, p), f'(x, y, p)); y is the correctly rounded
#: float32 output where the registry says the backward reads it (uses_output)
TRUTH = {
    "elu_forward": (_elu, _elu_d),
    "log_sigmoid_forward": (_log_sigmoid, _log_sigmoid_d),
    "sigmoid_forward": (_sigmoid, _sigmoid_d),
    "softplus_forward": (_softplus, _softplus_d),
    "softsign_forward": (_softsign, _softsign_d),
    "tanh_forward": (_tanh, _tanh_d),
    "tanhshrink_forward": (_tanhshrink, _tanhshrink_d),
    "gelu_forward": (_gelu, _gelu_d),
    "gelu_tanh_forward": (_gelu_tanh, _gelu_tanh_d),
    "silu_forward": (_silu, _silu_d),
    "mish_forward": (_mish, _mish_d),
}


def truth_of(act):
    """(f, f') in mpmath for ``act``; KeyError naming what to add if none."""
    name = getattr(act.ops()[0], "__name__", str(act.ops()[0]))
    if name not in TRUTH:
        raise KeyError(f"{act.label}: no mpmath truth for scalar function {name!r}; add its "
                       "math to TRUTH in benchmarks/accuracy_table.py")
    return TRUTH[name]


def smooth_variants():
    """``[(label, Activation)]`` of every registry variant that is not
    piecewise-linear (activations added later join by themselves)."""
    import gradkern as gk

    return [(label, act) for label, act in gk.activations.variants()
            if not act.piecewise_linear]


# ---------------------------------------------------------------------------
# float32 rounding and ulps

def rn32(v):
    """``v`` (mpf) correctly rounded to float32 (ties to even), as a float."""
    if not v:
        return 0.0
    _, e = mpmath.frexp(v)  # v = m 2^e, 1/2 <= |m| < 1
    q = max(int(e) - 1, F32_MIN_EXP) - F32_MANT  # the float32 spacing there is 2^q
    r = mpmath.ldexp(mpmath.nint(mpmath.ldexp(v, -q)), q)  # nint: ties to even
    if abs(r) >= mpmath.ldexp(1, F32_MAX_EXP):
        return math.copysign(math.inf, float(v))
    return float(r)


def ulp32(t):
    """The float32 spacing at |t| (float64 array); 2^-149 at and below the
    normal range, 2^104 at and beyond float32's largest binade."""
    t = np.abs(np.asarray(t, np.float64))
    _, e = np.frexp(t)  # t = m 2^e, 1/2 <= m < 1; frexp(0) gives e = 0, so zeros are
    e = np.where(t == 0, F32_MIN_EXP, e.astype(np.int64) - 1)  # set to the bottom
    q = np.clip(e, F32_MIN_EXP, F32_MAX_EXP - 1) - F32_MANT
    return np.ldexp(1.0, q)


def ulp_error(got, truth):
    """|got - truth| in ulps of the truth in float32 (see the module doc)."""
    got = np.asarray(got, np.float64)
    truth = np.asarray(truth, np.float64)
    f32_max = float(np.finfo(np.float32).max)
    half_top = 2.0 ** (F32_MAX_EXP - F32_MANT - 2)  # half the spacing at the top
    to_inf = np.abs(truth) >= f32_max + half_top  # rounds to float32's infinity
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(got - truth) / ulp32(truth)
        inf_ok = np.isinf(got) & to_inf & (np.sign(got) == np.sign(truth))
        err = np.where(inf_ok, 0.0, err)
        err = np.where(np.isinf(got) & ~inf_ok, np.inf, err)
    return np.where(np.isnan(got), np.inf, err)


# ---------------------------------------------------------------------------
# inputs

def inputs(act, n_log=N_LOG, seed=0):
    """Sorted distinct float32 inputs (see the module doc); ``n_log`` log-uniform
    magnitudes 1e-8 .. 1e2, each with both signs."""
    rng = np.random.default_rng(seed)
    mags = 10.0 ** rng.uniform(-8.0, 2.0, n_log)
    f32 = np.float32
    points = [mags, -mags]
    tiny = float(np.finfo(f32).tiny)
    den = tiny * rng.uniform(0.0, 1.0, 100)
    points += [den, -den, [0.0, tiny, -tiny, float(np.finfo(f32).smallest_subnormal)]]
    centres = [*EDGES, *(-e for e in EDGES), *act.kinks(), 0.5, -0.5, 1.0, -1.0, 3.0, -3.0]
    for c in centres:
        c32 = f32(c)
        steps = np.arange(-16, 17, dtype=np.int64)
        if c32 != 0:  # 33 consecutive floats, then a few within +-2 %
            bits = c32.view(np.int32).astype(np.int64) + steps
            points.append(bits.astype(np.int32).view(f32).astype(np.float64))
        points.append(np.linspace(c * 0.98, c * 1.02, 24))
    x = np.concatenate([np.asarray(p, np.float64) for p in points]).astype(f32)
    x = x[np.isfinite(x)]
    return np.unique(x)


# ---------------------------------------------------------------------------
# measuring

def truth_columns(act, x):
    """float64 arrays of the truth for each of :data:`COLUMNS` at ``x``."""
    f, d = truth_of(act)
    uses_output = act.spec.uses_output
    with mpmath.workprec(PREC):
        p = [mpmath.mpf(float(v)) for v in act.kernel_params(np.float32)]
        cols = {c: np.empty(x.size) for c in COLUMNS}
        for i, xi in enumerate(x.tolist()):
            a = [mpmath.mpf(xi)]  # a_0 .. a_L, exact (weights 1: z_k = a_{k-1})
            local = []
            for _ in range(DEPTH):
                y = f(a[-1], p)
                yd = mpmath.mpf(rn32(y)) if uses_output else y
                local.append(d(a[-1], yd, p))
                a.append(y)
            g = mpmath.mpf(1)
            for k in range(DEPTH - 1, -1, -1):  # layer k + 1
                g = g * local[k]
                cols[f"dw{k + 1}"][i] = float(g * a[k])
            cols["forward"][i] = float(a[1])
            cols["derivative"][i] = float(local[0])
            cols["output"][i] = float(a[DEPTH])
            cols["input_grad"][i] = float(g)
    return cols


def torch_columns(act, x):
    """The same columns from torch: the module on one contiguous tensor with
    autograd, and SimpleNet through ``reference.per_sample_grads``."""
    import torch

    from gradkern import reference

    module = reference.to_torch(act)
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    y = module(xt)
    y.backward(torch.ones_like(y))
    chain = reference.per_sample_grads(x, act, np.ones(DEPTH, np.float32))
    return _columns(y.detach().numpy(), xt.grad.numpy(), chain)


def gradkern_columns(act, x):
    import gradkern as gk

    chain = gk.chain_grad(x, act, np.ones(DEPTH, np.float32))
    return _columns(act.forward(x), act.derivative(x), chain)


def _columns(forward, derivative, chain):
    cols = {"forward": forward, "derivative": derivative, "output": chain.output,
            "input_grad": chain.input_grad}
    cols.update({f"dw{k + 1}": chain.weight_grads[:, k] for k in range(DEPTH)})
    return cols


def jax_columns(act, x):
    """The same columns from JAX: the activation elementwise and its grad, and
    the chain as the ``jax`` throughput peer runs it."""
    import jax
    import jax.numpy as jnp

    from gradkern.bench.cpu import _jax
    from gradkern.bench.peers import jax_activation

    f = jax_activation(act)
    one = jax.jit(jax.vmap(lambda z: f(z, None)))
    grad = jax.jit(jax.vmap(jax.grad(lambda z: f(z, None))))
    xj = jnp.asarray(x)
    run, convert = _jax(x, act, np.ones(DEPTH, np.float32))
    return _columns(np.asarray(one(xj)), np.asarray(grad(xj)), convert(run()))


def measure(act, x, with_jax=False, truth=None):
    """{column: (gradkern's ulp errors, torch's)} at the float32 inputs ``x``;
    ``with_jax``: (gradkern's, torch's, JAX's).  ``truth``: the
    :func:`truth_columns` of ``x``, if already computed."""
    truth = truth_columns(act, x) if truth is None else truth
    libs = [gradkern_columns(act, x), torch_columns(act, x)]
    if with_jax:
        libs.append(jax_columns(act, x))
    return {c: tuple(ulp_error(lib[c], truth[c]) for lib in libs) for c in COLUMNS}


def normal_only(x, truth):
    """{column: mask} of the inputs where x and the truth (:func:`truth_columns`)
    are normal float32 numbers: XLA on the CPU flushes subnormals to zero, an
    error of up to 2^23 ulp that says nothing of its formulas' rounding."""
    tiny = float(np.finfo(np.float32).tiny)
    return {c: (np.abs(x) >= tiny) & (np.abs(truth[c]) >= tiny) for c in COLUMNS}


def pointwise_bound(torch_err):
    """The most error gradkern may have where torch has ``torch_err``
    (elementwise columns): twice torch's, and at least 4 ulp."""
    return np.maximum(2.0 * torch_err, 4.0)


def summary(x, errors, normal=None):
    """JSON-ready maxima per column: gradkern's and torch's worst error and
    where, and how many inputs break the pointwise bound (and how many would
    break it with the libraries' roles swapped)."""
    out = {}
    for c, (ek, et, *ej) in errors.items():
        i, j = int(np.argmax(ek)), int(np.argmax(et))
        row = {"gradkern": float(ek[i]), "torch": float(et[j]),
               "gradkern_at": float(x[i]).hex(), "torch_at": float(x[j]).hex()}
        if ej:
            worst = int(np.argmax(ej[0]))
            row.update(jax=float(ej[0][worst]), jax_at=float(x[worst]).hex())
            if normal is not None:
                row["jax_normal"] = float(np.max(ej[0][normal[c]], initial=0.0))
        if c in ELEMENTWISE:
            row["above_pointwise_bound"] = int(np.sum(ek > pointwise_bound(et)))
            # the same rule the other way round, for scale: torch against gradkern
            row["torch_above_pointwise_bound"] = int(np.sum(et > pointwise_bound(ek)))
        out[c] = row
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-log", type=int, default=N_LOG,
                    help=f"log-uniform magnitudes, each with both signs (default {N_LOG})")
    ap.add_argument("--jax", action="store_true", help="JAX's errors beside them")
    ap.add_argument("--out", default=OUT)
    args = ap.parse_args(argv)
    import gradkern as gk
    import numba
    import torch

    results = {}
    for label, act in smooth_variants():
        x = inputs(act, args.n_log)
        t = time.time()
        truth = truth_columns(act, x)
        normal = normal_only(x, truth) if args.jax else None
        results[label] = {"inputs": int(x.size),
                          **summary(x, measure(act, x, args.jax, truth), normal)}
        print(f"{label}: {x.size} inputs, {time.time() - t:.1f} s", file=sys.stderr)
    doc = {
        "what": "float32 max error in ulps against mpmath (benchmarks/accuracy_table.py)",
        "depth": DEPTH, "weights": "ones", "n_log": args.n_log, "truth_bits": PREC,
        "machine": platform.machine(), "numba": numba.__version__,
        "torch": torch.__version__, "gradkern": gk.__version__, "activations": results,
    }
    if args.jax:
        import jax

        doc["jax"] = jax.__version__
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
