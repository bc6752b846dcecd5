"""Accuracy of gradkern's vector math against mpmath and torch, float32 tanh
and sigmoid on every input, and what the correctly rounded versions cost.

    .venv/bin/python benchmarks/vecmath_accuracy.py [--base COMMIT] [--quick] [--out FILE]

1. ``every_float32``, ``every_float32_sigmoid``: the working tree's float32
   ``vtanh`` / ``vsigmoid`` (and BASE's tanh / ``1/(1 + vexp(-x))``, the
   sigmoid before) on all 2^32 bit patterns but NaNs.  Truth: float64 tanh
   (glibc; its documented maximum error, 2 float64 ulps, is 2^-28 float32
   ulps) or float64 sigmoid (1/(1 + e), e/(1 + e) below 0, e = exp(-|x|):
   within 3 float64 ulps) decides the correctly rounded float32 wherever it
   lies more than 16 float64 ulps from a float32 midpoint; mpmath (50 digits)
   decides the inputs where it does not.  Reports the inputs not correctly
   rounded and the maximum error in ulps.
2. ``grid``: exp, expm1, log1p, log, tanh and sigmoid, float32 and float64, on
   a dense grid per function (log-spaced magnitudes of both signs up to the
   overflow and down through the subnormals, the neighbours of each switch
   point): gradkern's ``v*`` and torch's CPU op on a contiguous tensor against
   mpmath (50 digits); maximum error in ulps of the true value's binade.
3. ``reported``: Tanh's derivative (1 - y*y from the rounded output, fused as
   torch's build fuses it; truth: 1 - y*y exactly, y the correctly rounded
   tanh), Tanhshrink's forward, and Sigmoid's forward and derivative
   ((1 - y)*y from the rounded output) at the inputs where the previous
   functions were worst, gradkern against torch, in ulps of the true value.
4. ``speed``, ``sigmoid_speed``: ``gk.chain_grad`` on 1e7 float32 samples,
   depth 3, weights 1 (the benchmark's inputs), Tanh and Tanhshrink, resp.
   Sigmoid, with BASE's vector math (the sigmoid before) and the working
   tree's compiled side by side in this process; ns per sample.
5. ``correction_speed``: what the correction steps of exp, expm1 (both
   dtypes), float64 log and float64 tanh cost: a plain loop of each, BASE's
   and the working tree's, and the chains of ELU, SiLU, Softplus and
   LogSigmoid (float32) over BASE's and the working tree's exp and expm1
   (``--parts correction_speed --base`` the commit before them).

Writes a short JSON summary to ``--out`` (``--parts`` runs some parts and
keeps the others from an existing file; ``--funcs`` limits the grid's
functions).  ``--quick``: every 256th float32 pattern in part 1, a 4x sparser
grid, 1e6 samples.
"""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
# the old and new chain kernels are built from functions defined here: a cache
# of this process's own keeps them out of the shared one
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp(prefix="gk-accuracy-")

FUNCS = ["exp", "expm1", "log1p", "log", "tanh", "sigmoid"]
#: the float32 inputs where the previous tanh was worst (through Tanh's
#: derivative, Tanhshrink's forward, a depth-3 chain's df/dw2)
REPORTED = {"Tanh derivative": "-0x1.77301p+1", "Tanhshrink forward": "0x1.84f5cp-1",
            "Tanh forward (chain's worst df/dw2)": "-0x1.24d8b6p+2",
            "Sigmoid forward": "0x1.12d3dp+1", "Sigmoid derivative": "0x1.12d3dp+1"}
MP_DIGITS = 50


# ----------------------------------------------------------------------------- helpers
def _mpmath():
    import mpmath

    mpmath.mp.dps = MP_DIGITS
    return mpmath


def _ulp_error(y, t, dtype, mp):
    """|y - t| in ulps of t's binade in ``dtype`` (its subnormal spacing below
    the smallest normal); t an mpmath number."""
    p, emin = (24, -149) if dtype == np.float32 else (53, -1074)
    if t == 0:
        return 0.0 if y == 0 else math.inf
    _, e = mp.frexp(t)
    return float(abs(mp.mpf(float(y)) - t) / mp.ldexp(1, max(e - p, emin)))


def _round_to(t, dtype, mp):
    """The float of ``dtype`` nearest the mpmath number t."""
    p, emin = (24, -149) if dtype == np.float32 else (53, -1074)
    if t == 0:
        return dtype(0)
    _, e = mp.frexp(t)
    q = max(e - p, emin)
    return dtype(float(mp.nint(mp.ldexp(t, -q)) * mp.ldexp(1, q)))


def _apply(fn):
    import numba

    @numba.njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return apply


# ----------------------------------------------------------------------------- 1. every float32
def _tanh64(x):
    """float64 tanh (glibc, <= 2 float64 ulps = 2^-28 float32 ulps)."""
    return math.tanh(x)


def _sigmoid64(x):
    """float64 sigmoid, 1/(1 + e) for x >= 0 and e/(1 + e) below, e = exp(-|x|):
    with glibc's exp (< 1 ulp) within 3 float64 ulps, 2^-27 float32 ulps."""
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0 else e / (1.0 + e)


#: per function: its float64 truth for part 1 (numba-compiled) and mpmath's
TRUTH64 = {"tanh": _tanh64, "sigmoid": _sigmoid64}


def _mp_sigmoid(x):
    import mpmath

    return 1 / (1 + mpmath.exp(-x))


def _checker(fn, truth):
    """A Numba kernel over float32 bit patterns [lo, hi) (int64 bounds, wrapping
    to int32): counts of inputs where ``fn`` is not correctly rounded and of
    inputs left to mpmath, their patterns (up to ``cap`` each), and the largest
    error in ulps against the float64 value ``truth`` (both float32 -> float32)."""
    import numba

    from gradkern._numba.intrinsics import bits_float

    truth = numba.njit(error_model="numpy")(truth)

    @numba.njit(parallel=True, error_model="numpy")
    def check(lo, hi, step, wrong, unsure):
        chunks = 256
        n_wrong = np.zeros(chunks, np.int64)
        n_unsure = np.zeros(chunks, np.int64)
        worst = np.zeros(chunks)
        worst_at = np.zeros(chunks, np.int64)
        per = (hi - lo + chunks - 1) // chunks
        for c in numba.prange(chunks):
            for i in range(lo + c * per, min(hi, lo + (c + 1) * per), step):
                x = bits_float(np.int32(i))
                if x != x:
                    continue
                y = fn(x)
                yd = truth(np.float64(x))
                ad = abs(yd)
                # the ulp of yd's float32 binade (2^-149 below the normals)
                ulp = 2.0**-149 if ad < 2.0**-126 else math.ldexp(1.0, math.frexp(ad)[1] - 24)
                err = abs(np.float64(y) - yd) / ulp
                if err > worst[c]:
                    worst[c] = err
                    worst_at[c] = i
                frac = ad / ulp
                if abs(frac - math.floor(frac) - 0.5) * ulp < 16 * ad * 2.0**-53:
                    k = n_unsure[c]
                    if k < unsure.shape[1]:
                        unsure[c, k] = i
                    n_unsure[c] += 1
                elif y != np.float32(yd):
                    k = n_wrong[c]
                    if k < wrong.shape[1]:
                        wrong[c, k] = i
                    n_wrong[c] += 1
        at = worst_at[np.argmax(worst)]
        return n_wrong.sum(), n_unsure.sum(), worst.max(), at, n_unsure.max()

    return check


def every_float32(fn, quick, name="tanh"):
    """Part 1 for one float32 function (a jit-only function) named ``name``
    (a key of TRUTH64)."""
    mp = _mpmath()
    check = _checker(fn, TRUTH64[name])
    cap = 4096
    wrong = np.full((256, 64), -1, np.int64)
    unsure = np.full((256, cap), -1, np.int64)
    step = 256 if quick else 1
    t0 = time.time()
    n_wrong, n_unsure, worst, worst_at, most_unsure = check(0, 1 << 32, step, wrong, unsure)
    seconds = time.time() - t0
    if most_unsure > cap:
        raise RuntimeError(f"{most_unsure} inputs for mpmath in one chunk: raise cap")
    apply = _apply(fn)
    listed = unsure[unsure >= 0].astype(np.uint32).view(np.float32)
    got = np.empty_like(listed)
    apply(listed, got)
    mp_fn = {"tanh": mp.tanh, "sigmoid": _mp_sigmoid}[name]
    wrong_unsure = [float(x).hex() for x, y in zip(listed, got)
                    if y != _round_to(mp_fn(mp.mpf(float(x))), np.float32, mp)]
    n_listed = int((wrong >= 0).sum())
    examples = [float(v).hex() for v in wrong[wrong >= 0].astype(np.uint32).view(np.float32)]
    return {"inputs": (1 << 32) // step, "not_correctly_rounded": int(n_wrong) + len(wrong_unsure),
            "decided_by_mpmath": int(n_unsure), "max_ulp": round(float(worst), 9),
            "max_ulp_at": float(np.array([worst_at]).astype(np.uint32).view(np.float32)[0]).hex(),
            "examples": (wrong_unsure + examples)[:8] if n_listed + len(wrong_unsure) > 64
            else wrong_unsure + examples, "seconds": round(seconds, 1)}


# ----------------------------------------------------------------------------- 2. dense grid
def _logspace(lo, hi, n):
    return np.exp(np.linspace(math.log(lo), math.log(hi), n))


def grid(name, dtype, n):
    """The dense grid for ``name`` in ``dtype``, described by the returned
    string: log-spaced magnitudes of both signs where the function is defined,
    through the subnormals and past the overflow, plus switch points' neighbours."""
    f32 = dtype == np.float32
    tiny = float(np.finfo(dtype).smallest_subnormal) * 4
    if name in ("exp", "expm1"):
        top = 105.0 if f32 else 750.0
        mags = _logspace(1e-8, top, n)
        x, what = np.concatenate([mags, -mags]), f"+-[1e-8, {top:g}] log-spaced"
    elif name == "log1p":
        pos = _logspace(1e-8, 1e30, n)
        neg = -_logspace(1e-8, 1.0, n // 2)
        x = np.concatenate([pos, neg, -1 + _logspace(1e-7 if f32 else 1e-15, 1.0, n // 2)])
        what = "[1e-8, 1e30] and -[1e-8, 1) log-spaced, -1 + [eps, 1] log-spaced"
    elif name == "log":
        big = float(np.finfo(dtype).max)
        x = np.concatenate([_logspace(tiny, big, n), 1 + _logspace(1e-7, 0.5, n // 4),
                            1 - _logspace(1e-7, 0.5, n // 4)])
        what = f"[{tiny:.3g}, {big:.3g}] log-spaced, 1 +- [1e-7, 0.5] log-spaced"
    elif name == "sigmoid":
        # float64 sigmoid is torch's 1/(1 + exp(-x)) in both libraries: below
        # -709.78 exp(-x) overflows and both return 0 for a subnormal truth
        top = 110.0 if f32 else 709.0
        mags = np.concatenate([_logspace(1e-8, top, n), _logspace(tiny, 1e-8, n // 10)])
        x, what = np.concatenate([mags, -mags]), f"+-[{tiny:.3g}, {top:g}] log-spaced"
    else:
        top = 12.0 if f32 else 22.0
        mags = np.concatenate([_logspace(1e-8, top, n), _logspace(tiny, 1e-8, n // 10)])
        x, what = np.concatenate([mags, -mags]), f"+-[{tiny:.3g}, {top:g}] log-spaced"
    x = x.astype(dtype)
    # the neighbours (64 ulps either side) of where the methods switch or clamp,
    # saturate or overflow: tanh's 0.625, its float32 reduction steps and 9.0109
    # .. 9.125, float64 tanh's 20; exp's/expm1's clamps and overflow edges
    edges = [0.625, 9.0109, 9.125, 20.0, 88.7228, 89.0, 709.7827, 710.0, -87.3365, -103.9721,
             -104.0, -30.0, -40.0, -745.1332, -746.0, 1.0, 2.0**-126]
    edges += [(k + 0.5) * math.log(2) / 2 for k in range(27)]
    # sigmoid's series switch, its reduction steps, where it rounds to 1 and
    # its results go subnormal (float32), the clamp
    edges += [2.0**-7, 17.328679, 87.33655, 103.97208, 104.0]
    edges += [(k + 0.5) * math.log(2) for k in range(26)]
    u = np.uint32 if f32 else np.uint64
    e = np.array(edges + [-v for v in edges], dtype).view(u)
    near = (e[:, None] + np.arange(-64, 65).astype(u)).ravel().view(dtype)
    x = np.unique(np.concatenate([x, near]))
    x = x[np.isfinite(x)]
    if name == "sigmoid" and not f32:
        x = x[x > -709.78]  # see above
    return x, what + "; 64 ulps around each switch, clamp and overflow point"


def _torch_op(name):
    import torch

    return {"exp": torch.exp, "expm1": torch.expm1, "log1p": torch.log1p, "log": torch.log,
            "tanh": torch.tanh, "sigmoid": torch.sigmoid}[name]


def _mp_op(name, mp):
    return {"exp": mp.exp, "expm1": mp.expm1, "log1p": mp.log1p, "log": mp.log,
            "tanh": mp.tanh, "sigmoid": _mp_sigmoid}[name]


def grid_errors(name, dtype, n):
    """Part 2 for one function and dtype: gradkern's and torch's maximum ulp
    error against mpmath on the grid, and where."""
    import torch

    from gradkern._numba import vecmath

    mp = _mpmath()
    x, what = grid(name, dtype, n)
    fn = _mp_op(name, mp)
    # defined and finite in dtype: the ulp error means something
    inside = np.array([(name not in ("log", "log1p") or v > (0 if name == "log" else -1))
                       for v in x])
    x = x[inside]
    truth = [fn(mp.mpf(float(v))) for v in x]
    big = mp.mpf(float(np.finfo(dtype).max))
    keep = np.array([abs(t) <= big for t in truth])
    x, truth = x[keep], [t for t, k in zip(truth, keep) if k]
    ours = np.empty_like(x)
    _apply(getattr(vecmath, "v" + name))(x, ours)
    theirs = _torch_op(name)(torch.from_numpy(x.copy())).numpy()
    out = {"grid": what, "points": int(x.size)}
    for who, y in (("gradkern", ours), ("torch", theirs)):
        err = np.array([_ulp_error(a, t, dtype, mp) for a, t in zip(y, truth)])
        i = int(np.argmax(err))
        out[who] = {"max_ulp": round(float(err.max()), 4), "at": float(x[i]).hex()}
    return out


# ----------------------------------------------------------------------------- 3. reported inputs
def reported():
    """Part 3: Tanh's derivative and Tanhshrink's forward, gradkern and torch,
    against mpmath applied to the same convention."""
    import torch

    import gradkern as gk

    mp = _mpmath()
    out = {}
    for what, h in REPORTED.items():
        # 64 copies: torch's vectorised path, as on any real tensor (a
        # one-element tensor takes its scalar path, which can round otherwise)
        x = np.full(64, float.fromhex(h), np.float32)
        xt = torch.from_numpy(x.copy()).requires_grad_()
        if what == "Tanhshrink forward":
            ours = gk.activation("Tanhshrink").forward(x)[0]
            theirs = torch.nn.Tanhshrink()(xt).detach().numpy()[0]
            truth = mp.mpf(float(x[0])) - mp.tanh(mp.mpf(float(x[0])))
        elif what == "Sigmoid forward":
            ours = gk.activation("Sigmoid").forward(x)[0]
            theirs = torch.sigmoid(xt).detach().numpy()[0]
            truth = _mp_sigmoid(mp.mpf(float(x[0])))
        elif what == "Sigmoid derivative":
            ours = gk.activation("Sigmoid").derivative(x)[0]
            torch.sigmoid(xt).sum().backward()
            theirs = xt.grad.numpy()[0]
            # torch's convention: (1 - y)*y from the correctly rounded output y
            y = mp.mpf(float(_round_to(_mp_sigmoid(mp.mpf(float(x[0]))), np.float32, mp)))
            truth = (1 - y) * y
        elif what == "Tanh derivative":
            ours = gk.activation("Tanh").derivative(x)[0]
            torch.tanh(xt).sum().backward()
            theirs = xt.grad.numpy()[0]
            # torch's convention: 1 - y*y from the correctly rounded output y
            y = _round_to(mp.tanh(mp.mpf(float(x[0]))), np.float32, mp)
            truth = 1 - mp.mpf(float(y)) ** 2
        else:
            ours = gk.activation("Tanh").forward(x)[0]
            theirs = torch.tanh(xt).detach().numpy()[0]
            truth = mp.tanh(mp.mpf(float(x[0])))
        out[what] = {"x": h, "gradkern": float(ours).hex(), "torch": float(theirs).hex(),
                     "gradkern_ulp": round(_ulp_error(ours, truth, np.float32, mp), 3),
                     "torch_ulp": round(_ulp_error(theirs, truth, np.float32, mp), 3)}
    return out


# ----------------------------------------------------------------------------- 4. speed
def _tanh_ops(vtanh):
    """Tanh's and Tanhshrink's (forward, backward) written over ``vtanh``, as
    gradkern.activations.scalar writes them."""
    import numba

    from gradkern._numba.intrinsics import fma

    jit = numba.njit(error_model="numpy", forceinline=True)

    @jit
    def tanh_forward(x, p):
        return vtanh(x)

    @jit
    def tanh_backward(g, x, y, p):
        return g * fma(-y, y, type(x)(1.0))

    @jit
    def tanhshrink_forward(x, p):
        return x - vtanh(x)

    @jit
    def tanhshrink_backward(g, x, y, p):
        t = vtanh(x)
        return g + (-g) * fma(-t, t, type(x)(1.0))

    return {"Tanh": (tanh_forward, tanh_backward),
            "Tanhshrink": (tanhshrink_forward, tanhshrink_backward)}


def _sigmoid_ops(base_vecmath):
    """Sigmoid's (forward, backward) with the sigmoid before (1/(1 + exp(-x))
    over BASE's exp) and with the working tree's vsigmoid."""
    import numba

    from gradkern._numba import vecmath

    jit = numba.njit(error_model="numpy", forceinline=True)
    base_exp, new_sigmoid = base_vecmath.vexp, vecmath.vsigmoid

    @jit
    def base_sigmoid(x):
        T = type(x)
        return T(1.0) / (T(1.0) + base_exp(-x))

    @jit
    def base_forward(x, p):
        return base_sigmoid(x)

    @jit
    def new_forward(x, p):
        return new_sigmoid(x)

    @jit
    def backward(g, x, y, p):
        T = type(x)
        return (g * (T(1.0) - y)) * y

    return ({"base": {"Sigmoid": (base_forward, backward)},
             "new": {"Sigmoid": (new_forward, backward)}},
            {"base": base_sigmoid, "new": new_sigmoid})


def sigmoid_speed(base_vecmath, n, repeats=15):
    """Part 4 for Sigmoid: chain_grad, float32, depth 3, ns per sample, the
    sigmoid before and after alternating; and a loop of the function alone."""
    trees, plain = _sigmoid_ops(base_vecmath)
    x = np.random.default_rng(0).uniform(-10, 10, 1 << 20).astype(np.float32)
    y = np.empty_like(x)
    loops = {t: _apply(fn) for t, fn in plain.items()}
    best = {}
    for _ in range(2 * repeats):
        for tree, loop in loops.items():
            loop(x[:64], y[:64])
            t0 = time.perf_counter()
            loop(x, y)
            best[tree] = min(best.get(tree, math.inf), time.perf_counter() - t0)
    return {"chain": _chain_speed(trees, ("Sigmoid",), n, repeats),
            "loop_ns_per_element_uniform_-10_10": {t: round(b / x.size * 1e9, 3)
                                                   for t, b in best.items()}}


def _chain_speed(trees, names, n, repeats):
    """Best-of-``repeats`` ns per sample of gk.chain_grad, float32, depth 3,
    for each tree's (forward, backward) of each activation in ``names``."""
    import gradkern as gk
    from gradkern.chain import cpu

    x = (np.random.default_rng(0).standard_normal(n) * 2).astype(np.float32)
    w = np.ones(3, np.float32)
    real_get_kernel = cpu.get_kernel
    out = {}
    for act_name in names:
        act = gk.activation(act_name)
        best = {}
        for _ in range(repeats):
            for tree, ops in trees.items():
                cpu.get_kernel = lambda _ops, **kw: real_get_kernel(ops[act_name], **kw)
                try:
                    gk.chain_grad(x[:1000], act, w)  # compile outside the timing
                    t0 = time.perf_counter()
                    gk.chain_grad(x, act, w)
                    best[tree] = min(best.get(tree, math.inf), time.perf_counter() - t0)
                finally:
                    cpu.get_kernel = real_get_kernel
        ns = {t: best[t] / n * 1e9 for t in best}
        out[act_name] = {"base_ns_per_sample": round(ns["base"], 3),
                         "new_ns_per_sample": round(ns["new"], 3),
                         "cost_ns_per_sample": round(ns["new"] - ns["base"], 3),
                         "ratio": round(ns["new"] / ns["base"], 3)}
    return out


def speed(base_vecmath, n, repeats=15):
    """Part 4: best-of-``repeats`` ns per sample of gk.chain_grad, float32,
    depth 3, with each tree's tanh (alternating, so load drifts hit both)."""
    from gradkern._numba import vecmath

    trees = {"base": _tanh_ops(base_vecmath.vtanh), "new": _tanh_ops(vecmath.vtanh)}
    return _chain_speed(trees, ("Tanh", "Tanhshrink"), n, repeats)


def serial_chain_speed(base_vecmath, n=1 << 20, repeats=15):
    """ns per sample of the serial chain kernel (one thread: a busy machine
    disturbs it less), float32, depth 3, weights 1, x ~ 2 N(0, 1)."""
    import gradkern as gk
    from gradkern.chain import cpu

    from gradkern._numba import vecmath

    x = (np.random.default_rng(0).standard_normal(n) * 2).astype(np.float32)
    w = np.ones(3, np.float32)
    trees = {"base": _tanh_ops(base_vecmath.vtanh), "new": _tanh_ops(vecmath.vtanh)}
    out = {}
    for act_name in ("Tanh", "Tanhshrink"):
        p = gk.activation(act_name).kernel_params(np.float32)
        res = (np.empty(n, np.float32), np.empty((n, 3), np.float32), np.empty(n, np.float32))
        kernels = {t: cpu.get_kernel(ops[act_name], parallel=False) for t, ops in trees.items()}
        best = {}
        for _ in range(repeats):
            for tree, kernel in kernels.items():
                kernel(x[:300], w, p, x[:0], *(r[:300] for r in res), 1)
                t0 = time.perf_counter()
                kernel(x, w, p, x[:0], *res, 1)
                best[tree] = min(best.get(tree, math.inf), time.perf_counter() - t0)
        ns = {t: best[t] / n * 1e9 for t in best}
        out[act_name] = {"base_ns_per_sample": round(ns["base"], 3),
                         "new_ns_per_sample": round(ns["new"], 3),
                         "cost_ns_per_sample": round(ns["new"] - ns["base"], 3),
                         "ratio": round(ns["new"] / ns["base"], 3)}
    return out


def tanh_loop_speed(base_vecmath, n=1 << 20, repeats=30):
    """ns per element of ``out[i] = tanh(x[i])`` (float32, uniform in [-5, 5])."""
    from gradkern._numba import vecmath

    x = np.random.default_rng(0).uniform(-5, 5, n).astype(np.float32)
    return _loop_ns(x, {"base": base_vecmath.vtanh, "new": vecmath.vtanh}, repeats)


def _loop_ns(x, fns, repeats):
    """{tree: best ns per element} of ``out[i] = fn(x[i])`` for each of
    ``fns`` ({tree: jitted scalar function}), the trees alternating."""
    y = np.empty_like(x)
    loops = {tree: _apply(fn) for tree, fn in fns.items()}
    best = {}
    for _ in range(repeats):
        for tree, loop in loops.items():
            loop(x[:64], y[:64])
            t0 = time.perf_counter()
            loop(x, y)
            best[tree] = min(best.get(tree, math.inf), time.perf_counter() - t0)
    return {t: round(b / x.size * 1e9, 3) for t, b in best.items()}


# ----------------------------------------------------------------------------- 5. correction steps
#: the functions that took a correction step, with the dtypes it applies to
CORRECTED = {"exp": ("float32", "float64"), "expm1": ("float32", "float64"),
             "log": ("float64",), "tanh": ("float64",)}
#: loop inputs per function: where each is used
LOOP_RANGE = {"exp": (-10.0, 10.0), "expm1": (-10.0, 10.0), "log": (1e-3, 1e3),
              "tanh": (-5.0, 5.0)}


def _exp_ops(vexp, vexpm1, vlog1p):
    """ELU's, SiLU's, Softplus' and LogSigmoid's (forward, backward) written
    over the given exp and expm1, as gradkern.activations.scalar writes them."""
    import numba

    from gradkern._numba.intrinsics import fma

    jit = numba.njit(error_model="numpy", forceinline=True)

    @jit
    def elu_forward(x, p):
        return vexpm1(x * p[2]) * p[0] if x < type(x)(0.0) else x * p[1]

    @jit
    def elu_backward(g, x, y, p):
        if x <= type(x)(0.0):
            return ((g * p[3]) * p[0]) * vexp(x * p[3])
        return g * p[1]

    @jit
    def silu_forward(x, p):
        return x / (type(x)(1.0) + vexp(-x))

    @jit
    def silu_backward(g, x, y, p):
        T = type(x)
        s = T(1.0) / (T(1.0) + vexp(-x))
        return (g * s) * fma(x, T(1.0) - s, T(1.0))

    @jit
    def softplus_forward(x, p):
        xb = x * p[0]
        smooth = vlog1p(vexp(xb)) / p[0]
        return x if xb > p[1] else smooth

    @jit
    def softplus_backward(g, x, y, p):
        xb = x * p[0]
        if xb > p[1]:
            return g
        z = vexp(xb)
        return (g * z) / (z + type(x)(1.0))

    @jit
    def log_sigmoid_forward(x, p):
        T = type(x)
        m = T(0.0) if x >= T(0.0) else x
        return m - vlog1p(vexp(-abs(x)))

    @jit
    def log_sigmoid_backward(g, x, y, p):
        T = type(x)
        b = vexp(-abs(x))
        q = b / (T(1.0) + b)
        if x < T(0.0):
            return (T(1.0) - q) * g
        return (T(0.0) + q) * g

    return {"ELU": (elu_forward, elu_backward), "SiLU": (silu_forward, silu_backward),
            "Softplus": (softplus_forward, softplus_backward),
            "LogSigmoid": (log_sigmoid_forward, log_sigmoid_backward)}


def correction_speed(base_vecmath, n, repeats=15):
    """Part 5: what the correction steps cost.  A plain loop ``y[i] = f(x[i])``
    (2^20 elements, uniform in LOOP_RANGE) with BASE's and the working tree's
    function alternating, ns per element; and gk.chain_grad (float32, depth 3)
    of the activations built on exp/expm1, with BASE's and the working tree's."""
    from gradkern._numba import vecmath

    loops = {}
    for name, dtypes in CORRECTED.items():
        for dt in dtypes:
            lo, hi = LOOP_RANGE[name]
            x = np.random.default_rng(0).uniform(lo, hi, 1 << 20).astype(dt)
            loops[f"{name}/{dt}"] = _loop_ns(x, {"base": getattr(base_vecmath, "v" + name),
                                                 "new": getattr(vecmath, "v" + name)}, repeats)
            print(name, dt, loops[f"{name}/{dt}"], flush=True)
    trees = {"base": _exp_ops(base_vecmath.vexp, base_vecmath.vexpm1, base_vecmath.vlog1p),
             "new": _exp_ops(vecmath.vexp, vecmath.vexpm1, vecmath.vlog1p)}
    return {"loop_ns_per_element": loops,
            "chain": _chain_speed(trees, ("ELU", "SiLU", "Softplus", "LogSigmoid"), n, repeats)}


# ----------------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="c53abfe", help="the commit with the previous tanh")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                  "vecmath-accuracy.json"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--parts", default="every_float32,every_float32_sigmoid,grid,reported,"
                                       "speed,sigmoid_speed")
    ap.add_argument("--funcs", default=",".join(FUNCS), help="the grid's functions")
    args = ap.parse_args(argv)
    parts = set(args.parts.split(","))

    import llvmlite
    import numba
    import torch
    from vecmath_bits import _extract, _load_base_vecmath

    import gradkern
    from gradkern._numba import vecmath

    base = _load_base_vecmath(_extract(args.base, tempfile.mkdtemp(prefix="gk-base-")))
    summary = {}
    if os.path.exists(args.out):  # the parts not run this time are kept
        with open(args.out) as f:
            summary = json.load(f)
    summary |= {
        "what": "gradkern._numba.vecmath against mpmath (50 digits) and torch's CPU ops; "
                "float32 tanh and sigmoid on every input; benchmarks/vecmath_accuracy.py",
        "base": args.base, "quick": args.quick, "machine": platform.machine(),
        "cpu": _cpu_name(), "numba": numba.__version__, "llvmlite": llvmlite.__version__,
        "torch": torch.__version__, "numpy": np.__version__, "gradkern": gradkern.__version__,
        "ulp": "of the true value's binade in the result dtype (subnormal spacing below the "
               "smallest normal)",
    }
    if "every_float32" in parts:
        summary["every_float32_tanh"] = {
            "truth": "float64 tanh (glibc, <= 2 float64 ulps = 2^-28 float32 ulps) where it is "
                     "more than 16 float64 ulps from a float32 midpoint; mpmath elsewhere",
            "new": every_float32(vecmath.vtanh, args.quick),
            "base": every_float32(base.vtanh, args.quick)}
        print(json.dumps(summary["every_float32_tanh"], indent=1), flush=True)
    if "every_float32_sigmoid" in parts:
        trees, plain = _sigmoid_ops(base)
        summary["every_float32_sigmoid"] = {
            "truth": "float64 sigmoid (1/(1 + e), e/(1 + e) below 0, e = glibc exp(-|x|): within "
                     "3 float64 ulps) where it is more than 16 float64 ulps from a float32 "
                     "midpoint; mpmath elsewhere",
            "base_is": "1/(1 + exp(-x)) over BASE's exp, the float32 sigmoid before",
            "new": every_float32(vecmath.vsigmoid, args.quick, "sigmoid"),
            "base": every_float32(plain["base"], args.quick, "sigmoid")}
        print(json.dumps(summary["every_float32_sigmoid"], indent=1), flush=True)
    if "grid" in parts:
        n = 2500 if args.quick else 10000
        summary.setdefault("grid", {})
        for name in args.funcs.split(","):
            for dt in (np.float32, np.float64):
                key = f"{name}/{np.dtype(dt).name}"
                summary["grid"][key] = grid_errors(name, dt, n)
                print(key, json.dumps(summary["grid"][key]), flush=True)
    if "reported" in parts:
        summary["reported_inputs"] = reported()
        print(json.dumps(summary["reported_inputs"], indent=1), flush=True)
    if "speed" in parts:
        n = 1_000_000 if args.quick else 10_000_000
        summary["speed"] = {
            "what": f"gk.chain_grad, float32, N={n:g}, depth 3, weights 1, x ~ 2 N(0, 1), "
                    f"{numba.get_num_threads()} threads, best of 15, base and new alternating",
            "load_average_before": round(os.getloadavg()[0], 2),
            "chain": speed(base, n),
            "chain_serial_one_thread_n_2e20": serial_chain_speed(base),
            "tanh_loop_ns_per_element": tanh_loop_speed(base),
            "load_average_after": round(os.getloadavg()[0], 2)}
        print(json.dumps(summary["speed"], indent=1), flush=True)
    if "sigmoid_speed" in parts:
        n = 1_000_000 if args.quick else 10_000_000
        summary["sigmoid_speed"] = {
            "what": f"gk.chain_grad, float32, N={n:g}, depth 3, weights 1, x ~ 2 N(0, 1), "
                    f"{numba.get_num_threads()} threads, best of 15, base (1/(1 + exp(-x))) "
                    "and new (correctly rounded) alternating; the loop: y[i] = sigmoid(x[i])",
            "load_average_before": round(os.getloadavg()[0], 2),
            **sigmoid_speed(base, n),
            "load_average_after": round(os.getloadavg()[0], 2)}
        print(json.dumps(summary["sigmoid_speed"], indent=1), flush=True)
    if "correction_speed" in parts:
        n = 1_000_000 if args.quick else 10_000_000
        summary["correction_speed"] = {
            "what": f"BASE's vecmath (before the correction steps) and the working tree's: a "
                    f"plain loop y[i] = f(x[i]), 2^20 elements, and gk.chain_grad, float32, "
                    f"N={n:g}, depth 3, weights 1, x ~ 2 N(0, 1), {numba.get_num_threads()} "
                    "threads; best of 15, base and new alternating",
            "base_commit": args.base,
            "load_average_before": round(os.getloadavg()[0], 2),
            **correction_speed(base, n),
            "load_average_after": round(os.getloadavg()[0], 2)}
        print(json.dumps(summary["correction_speed"], indent=1), flush=True)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print("wrote", args.out)


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
