"""Parity of :func:`gradkern.chain_grad` against the PyTorch autograd reference.

Used by ``gradkern verify`` and by the test suite, so both check the same things:

- **piecewise-linear** activations (ReLU, LeakyReLU, PReLU, RReLU, Hardtanh,
  ReLU6, Softshrink, Hardshrink): every result equal to torch's, in float32 and
  float64 (rows whose chain met a NaN aside: torch's gradient there depends on
  its SIMD/scalar path, gradkern's is NaN);
- **smooth** activations: within ``torch.testing.assert_close``'s default
  tolerances of torch in the same dtype, *and* no less accurate than torch
  float32 itself against a float64 reference run on the same (rounded) inputs.
  Where torch float32 is itself outside that tolerance from float64 (seen:
  Softplus, depth 30, x = 17.2, where 30 factors of 1 - 3e-8 each round), the
  accuracy test alone decides;
- **bit-identical** means the same bits, sign of zero included (NaN payloads aside).

Inputs: random values at several scales plus every special value: 0, -0,
+-1, +-3, 6, +-0.5, the activation's own kinks and their neighbours one ulp
away, Softplus's threshold, +-inf, NaN, huge, denormal.
"""
from dataclasses import dataclass

import numpy as np

from .activations import activation, resolve, variants
from .api import chain_grad

__all__ = ["special_values", "test_inputs", "weight_sets", "compare", "check", "run", "TOLERANCES"]

#: torch.testing.assert_close defaults (torch/testing/_comparison.py _DTYPE_PRECISIONS)
TOLERANCES = {np.dtype(np.float32): (1.3e-6, 1e-5), np.dtype(np.float64): (1e-7, 1e-7)}

#: "no less accurate than torch float32": the kernel's worst error against the
#: float64 reference may exceed torch's worst by at most this factor.  Both run
#: the same float32 products of the chain, so which element rounds worst is
#: luck; measured over 6,912 checks (8 seeds, depths 1-30), wherever the error
#: exceeds the floor below: 1.00 .. 1.35 (slack and floor together admit it).
ACCURACY_SLACK = 1.25

#: Accuracy against float64: a smooth activation may be as far off as torch
#: is plus this many tolerance units: 0.1 x (1e-5 + 1.3e-6 |t|) is ~1.3e-7
#: relative, about 2 float32 ulps, where "worst element" is a coin toss (seen:
#: ELU depth 3, 0.079 vs torch's 0.056 on one seed, 0.5x on others).
ACCURACY_FLOOR = 0.1


def special_values(act, dtype):
    """Kinks, their one-ulp neighbours and IEEE special values, in ``dtype``."""
    dtype = np.dtype(dtype)
    fi = np.finfo(dtype)
    base = [0.0, -0.0, 1.0, -1.0, 3.0, -3.0, 6.0, 0.5, -0.5, 20.0, -20.0, 100.0, -100.0,
            np.inf, -np.inf, np.nan, float(fi.max), -float(fi.max), 1e30, -1e30,
            float(fi.tiny), -float(fi.tiny), float(fi.smallest_subnormal),
            -float(fi.smallest_subnormal), float(fi.tiny) / 8, -float(fi.tiny) / 8]
    kinks = [dtype.type(k) for k in act.kinks()] + [dtype.type(k) for k in (0, 1, -1, 6, 20)]
    near = []
    for k in kinks:
        near += [np.nextafter(k, dtype.type(np.inf)), np.nextafter(k, dtype.type(-np.inf))]
    return np.array(base + kinks + near, dtype=dtype)


def test_inputs(act, dtype, n_random=2000, seed=0):
    """Random normals at scales 1e-3 .. 1e2, then the special values."""
    rng = np.random.default_rng(seed)
    scales = np.repeat([1e-3, 1e-1, 1.0, 3.0, 10.0, 100.0], -(-n_random // 6))[:n_random]
    x = rng.standard_normal(n_random) * scales
    return np.concatenate([x.astype(dtype), special_values(act, dtype)])


def weight_sets(depth, seed=0):
    """Named weight vectors of length ``depth``: ones, mixed signs, with a zero, random."""
    rng = np.random.default_rng(seed + depth)
    signed = np.resize([1.0, -0.5, 1.5, -1.25, 0.75], depth)
    with_zero = np.resize([1.0, -1.0], depth)
    with_zero[depth // 2] = 0.0
    return {
        "ones": np.ones(depth),
        "signed": signed,
        "zero": with_zero,
        "random": rng.normal(0.0, 1.0, depth),
    }


@dataclass
class Comparison:
    """How a kernel result compares with the reference, one field per result."""

    max_abs: float
    max_rel: float
    identical: float  # share of elements bit-identical (sign of zero included)
    close: bool  # within assert_close's default tolerances
    equal: bool  # equal values everywhere compared


def _bit_identical(a, b):
    if a.size == 0:
        return 1.0
    ai = a.view(np.uint32 if a.dtype == np.float32 else np.uint64)
    bi = b.view(ai.dtype)
    both_nan = np.isnan(a) & np.isnan(b)
    return float(np.mean((ai == bi) | both_nan))


def compare(k, r, dtype):
    """Compare one kernel array ``k`` with the reference array ``r``."""
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    k64, r64 = k.astype(np.float64), r.astype(np.float64)
    with np.errstate(invalid="ignore"):
        return _compare(k, r, k64, r64, rtol, atol)


def _compare(k, r, k64, r64, rtol, atol):
    same_nan = np.isnan(k64) == np.isnan(r64)
    same_inf = np.where(np.isinf(r64), k64 == r64, True)
    finite = np.isfinite(k64) & np.isfinite(r64)
    diff = np.abs(k64 - r64)[finite]
    ref = np.abs(r64)[finite]
    max_abs = float(diff.max()) if diff.size else 0.0
    rel = diff / np.where(ref > 0, ref, np.inf)
    max_rel = float(rel.max()) if rel.size else 0.0
    close = bool(same_nan.all() and same_inf.all() and np.all(diff <= atol + rtol * ref))
    equal = bool(np.array_equal(k, r, equal_nan=True))
    return Comparison(max_abs, max_rel, _bit_identical(k, r), close, equal)


def _scaled_error(k, truth, dtype):
    """max |k - truth| / (atol + rtol |truth|) over finite entries: errors in units
    of the dtype's assert_close tolerance."""
    rtol, atol = TOLERANCES[np.dtype(dtype)]
    k64, t64 = k.astype(np.float64), truth.astype(np.float64)
    m = np.isfinite(k64) & np.isfinite(t64)
    if not m.any():
        return 0.0
    return float(np.max(np.abs(k64[m] - t64[m]) / (atol + rtol * np.abs(t64[m]))))


@dataclass
class CheckResult:
    activation: str  # the registry's variant label, e.g. "RReLU(training)"
    dtype: str
    depth: int
    weights: str
    fields: dict  # result name -> Comparison
    accuracy: dict  # result name -> (kernel error, torch error) vs float64, float32 smooth only
    ok: bool
    why: str
    exact: bool = False  # piecewise-linear: held to bit equality, not closeness


def _reference(x, act, w, noise_needed, biases=None):
    from . import reference

    if noise_needed or biases is not None:
        # with biases: eager torch's Linear, not vmap's (reference module doc)
        return reference.batched_grads(x, act, w, biases)
    return reference.per_sample_grads(x, act, w), None


class _Layers:
    """What :func:`check` needs to know of one activation, or of one per layer."""

    def __init__(self, act):
        self.arg = act
        self.acts = list(act) if isinstance(act, (list, tuple)) else [act]
        self.piecewise_linear = all(a.piecewise_linear for a in self.acts)
        self.stochastic = any(a.stochastic for a in self.acts)
        self.signed_zero_exempt = set().union(*(a.spec.signed_zero_exempt for a in self.acts))
        self.label = ",".join(a.label for a in self.acts)


def check(act, dtype, weights, x=None, weights_name="", backend="cpu", biases=None):
    """Run one parity check; returns a :class:`CheckResult`.

    ``act`` may be a sequence, one activation per layer (held to the
    piecewise-linear rule when every layer is piecewise-linear); ``biases``
    (one per layer) adds ``bias_grads`` to the fields compared.  With a layer
    that draws noise and a smooth one, the accuracy test against float64 is
    not run: a float64 torch run would draw other noise.
    """
    dtype = np.dtype(dtype)
    if isinstance(act, (list, tuple)):
        act = [resolve(a) for a in act]
    else:
        act = activation(act) if isinstance(act, str) else act
    layers = _Layers(act)
    if x is None:
        x = test_inputs(layers.acts[0], dtype)
    x = np.asarray(x, dtype=dtype)
    w = np.asarray(weights, dtype=dtype)
    b = None if biases is None else np.asarray(biases, dtype=dtype)
    ref, noise = _reference(x, act, w, layers.stochastic, b)
    res = chain_grad(x, act, w, biases=b, backend=backend, noise=noise)
    nan_rows = np.isnan(ref.output) | np.isnan(res.output)
    keep = ~nan_rows
    fields, problems = {}, []
    if not np.array_equal(np.isnan(ref.output), np.isnan(res.output)):
        problems.append("NaN outputs differ")
    names, got, want = list(res._fields), list(res), list(ref)
    if b is not None:
        names.append("bias_grads")
        got.append(res.bias_grads)
        want.append(ref.bias_grads)
    accuracy = {}
    if not layers.piecewise_linear and dtype == np.float32 and not layers.stochastic:
        truth = _reference(x.astype(np.float64), act, w.astype(np.float64), False,
                           None if b is None else b.astype(np.float64))[0]
        truths = list(truth) + ([truth.bias_grads] if b is not None else [])
        for name, k, r, t in zip(names, got, want, truths):
            accuracy[name] = (_scaled_error(k[keep], t[keep], dtype),
                              _scaled_error(r[keep], t[keep], dtype))
    for name, k, r in zip(names, got, want):
        fields[name] = c = compare(k[keep], r[keep], dtype)
        if layers.piecewise_linear and not c.equal:
            problems.append(f"{name} not equal")
        elif layers.piecewise_linear and c.identical < 1.0 and \
                name not in layers.signed_zero_exempt:
            problems.append(f"{name} not bit-identical ({100 * c.identical:.3f}%)")
        ek, et = accuracy.get(name, (0.0, 0.0))
        if ek > ACCURACY_SLACK * et + ACCURACY_FLOOR:
            problems.append(f"{name} less accurate than torch float32 ({ek:.3g} > {et:.3g})")
        # torch float32 and gradkern can each be within the tolerance of the
        # float64 truth on opposite sides and so 2x the tolerance apart (seen:
        # Softplus, depth 30, x = 17.2: 30 factors of 1 - 3e-8, each rounded).
        # Then closeness to the truth (ek <= 1), with the accuracy test above,
        # decides; likewise where torch itself is outside it (et > 1).
        if not layers.piecewise_linear and not c.close and not (ek <= 1.0 or et > 1.0):
            problems.append(f"{name} outside assert_close tolerance")
        nan_in = np.isnan(x)
        if nan_in.any() and not np.all(np.isnan(k[nan_in])):
            problems.append(f"{name}: NaN input did not give NaN")
    return CheckResult(layers.label, dtype.name, len(w), weights_name, fields, accuracy,
                       not problems, "; ".join(problems), layers.piecewise_linear)


def run(depths=(1, 3, 4, 30), dtypes=(np.float32, np.float64), names=None, backend="cpu",
        seed=0, progress=None):
    """Every registry variant of ``names`` (default: all) x dtypes x depths x
    weight sets.  Yields CheckResults."""
    acts = [act for _, act in variants(names)]
    ahead = prewarm_chains(acts, dtypes) if backend == "cpu" else None
    try:
        for act in acts:
            for dtype in dtypes:
                if ahead is not None:
                    ahead.wait(act, dtype)
                x = test_inputs(act, dtype, seed=seed)
                for depth in depths:
                    for wname, w in weight_sets(depth, seed).items():
                        r = check(act, dtype, w, x=x, weights_name=wname, backend=backend)
                        if progress:
                            progress(r)
                        yield r
    finally:
        if ahead is not None:
            ahead.close()


# -- compiling the chain kernels of a job ahead, in workers (_numba.prewarm) --

def _chain_spec(act, dtype):
    return (act.name, dict(act.params), np.dtype(dtype).name)


def _tiny_chain(spec):
    """``chain_grad`` on 2 samples, depth 3, with spec's activation and dtype:
    the kernel a small-N call of that activation runs (serial; any depth)."""
    from .activations import activation as make

    name, params, dtype = spec
    act = make(name, **params)
    dt = np.dtype(dtype)
    noise = np.ones((2, 3), dt) if act.stochastic else None
    chain_grad(np.zeros(2, dt), act, np.ones(3, dt), noise=noise)


def compile_chain(spec):
    """A worker's task: compile (or load) the small-N chain kernel of
    ``spec`` into the disk cache."""
    _tiny_chain(spec)


class _ChainsAhead:
    def __init__(self, pool, task_of):
        self.pool, self.task_of = pool, task_of

    def wait(self, act, dtype):
        task = self.task_of.get((act.ops(), act.stochastic, np.dtype(dtype).name))
        if task is not None:
            self.pool.wait(task)

    def close(self):
        self.pool.close()


def prewarm_chains(acts, dtypes):
    """Worker processes compiling the small-N chain kernels of ``acts`` x
    ``dtypes`` that the disk cache lacks, or None (``_numba.prewarm``): the
    others are loaded here, now.  ``wait(act, dtype)`` before the first call."""
    from ._numba import prewarm

    if prewarm.max_workers() < 2:
        return None
    keys, specs = [], []
    for act in acts:
        for dtype in dtypes:
            key = (act.ops(), act.stochastic, np.dtype(dtype).name)
            if key not in keys:
                keys.append(key)
                specs.append(_chain_spec(act, dtype))
    todo = prewarm.missing(_tiny_chain, specs)
    pool = prewarm.start(compile_chain, [specs[i] for i in todo])
    if pool is None:
        return None
    return _ChainsAhead(pool, {keys[i]: t for t, i in enumerate(todo)})
