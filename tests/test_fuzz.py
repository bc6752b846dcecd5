"""Property-based fuzz of the public API: bad input of any kind is a ValueError or
a TypeError (never an OverflowError, ZeroDivisionError, a Numba typing error, a
numpy warning...), and the caller's arrays are never written, whatever the call
does.

Examples per test: ``GRADKERN_FUZZ_EXAMPLES`` (default 500: 3,000 in all, ~10 s
with warm kernels).  The long local campaign: ``GRADKERN_FUZZ_EXAMPLES=7700
pytest tests/test_fuzz.py`` (46,200 examples, 2 min; ``--hypothesis-show-statistics``
shows how many calls ran and how many were refused).  Derandomized and without
an example database, so a run is the same on every machine.  Runs stay small
(N <= 12 for chain_grad, <= 5,000 samples, two activations and one distribution
for sweeps, backend "cpu") so that hypothesis explores the arguments, not the
kernels, and no valid-but-huge count is drawn (it would allocate gigabytes).
"""
import math
import os
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, event, given, settings, strategies as st

import gradkern as gk
from gradkern.stream.dists import DIST_KINDS, Dist

EXAMPLES = int(os.environ.get("GRADKERN_FUZZ_EXAMPLES", "500"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
BAD_INPUT = (ValueError, TypeError)

# --- values of every kind ---------------------------------------------------------------

HUGE_INTS = [10**400, -10**400, 2**64, 2**64 - 1, 2**63, -2**63 - 1, 2**62 + 1, 2**62]
SPECIAL_FLOATS = [0.0, -0.0, 1e300, -1e300, 1e-50, -1e-50, 1e-320, 3.4e38, 3.5e38, -3.5e38,
                  7e-46, 1e-40, 1e308, -1e308, math.nan, math.inf, -math.inf]


def mostly(valid, invalid, share=0.8):
    """``valid`` in about ``share`` of the examples, else ``invalid``: most calls
    then get past their first checks, and every argument is sometimes wrong."""
    n_valid = round(20 * share)
    return st.sampled_from([True] * n_valid + [False] * (20 - n_valid)).flatmap(
        lambda ok: valid if ok else invalid)


def scalars():
    """Any scalar a caller might pass: ints of any size, floats of every class,
    numpy scalars, bools, strings, None, and a few other objects."""
    return st.one_of(
        st.integers(-10, 10), st.integers(), st.sampled_from(HUGE_INTS),
        st.floats(), st.sampled_from(SPECIAL_FLOATS),
        st.floats(width=32).map(np.float32), st.sampled_from(SPECIAL_FLOATS).map(np.float64),
        st.integers(-2**63, 2**63 - 1).map(np.int64), st.integers(0, 2**64 - 1).map(np.uint64),
        st.booleans(), st.booleans().map(np.bool_), st.text(max_size=4), st.none(),
        st.just(Fraction(10**400, 3)), st.just(1 + 2j), st.just([1.0]), st.just(object()),
    )


def reals():
    """Mostly ordinary parameter values, so calls get past the first check."""
    return mostly(st.one_of(st.floats(-10, 10), st.integers(-3, 3)),
                  st.one_of(st.sampled_from(SPECIAL_FLOATS), scalars()), 0.7)


def seeds():
    return mostly(st.one_of(st.integers(0, 2**64 - 1), st.integers(0, 5)),
                  st.one_of(st.sampled_from([2**64, -1, 2**70]), scalars()))


def _valid_but_big(v):
    # a count that is valid but would really allocate gigabytes (and be OOM-killed)
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) \
        and 100 < v <= 2**62


def counts(hi=12):
    """Sample counts: small valid ones and every kind of invalid one."""
    return mostly(st.integers(0, hi), st.one_of(
        st.integers(-3, -1), st.sampled_from([2**62 + 1, 2**63, 2**64, 10**30]),
        scalars().filter(lambda v: not _valid_but_big(v))))


def _unchanged(before, value):
    if isinstance(value, np.ndarray):
        assert np.asarray(value).tobytes() == before, "the caller's array was written"


def _snapshot(value):
    return np.asarray(value).tobytes() if isinstance(value, np.ndarray) else None


# --- gk.activation -------------------------------------------------------------------------

NAMES = list(gk.ACTIVATIONS) + [n.lower() for n in gk.ACTIVATIONS] + ["GELU", "", " Tanh"]


@st.composite
def activation_args(draw):
    name = draw(mostly(st.sampled_from(NAMES), scalars(), 0.9))
    spec = gk.ACTIVATIONS.get(name) if isinstance(name, str) else None
    keys = list(spec.defaults) if spec else []
    params = draw(st.dictionaries(st.sampled_from(keys), reals(), max_size=3)) if keys else {}
    if draw(st.sampled_from([False] * 9 + [True])):
        params[draw(st.sampled_from(["alpha", "bogus", "inplace"]))] = draw(reals())
    return name, params


@FUZZ
@given(activation_args(), st.sampled_from([np.float32, np.float64]))
def test_fuzz_activation(args, dtype):
    name, params = args
    try:
        act = gk.activation(name, **params)
    except BAD_INPUT as exc:
        event(f"refused: {type(exc).__name__}")
        return
    repr(act), hash(act), act.kinks()
    try:
        act.kernel_params(dtype)
    except ValueError as exc:  # a parameter beyond dtype: named, with the dtype
        assert np.dtype(dtype).name in str(exc)
        event("refused in dtype")
        return
    event("ran")
    x = np.array([-2.0, -0.0, 0.5, math.nan], dtype)
    kwargs = {"seed": 1} if act.stochastic else {}
    res = gk.chain_grad(x, act, [1.0, -1.0], **kwargs)  # no exception at all here
    assert res.output.dtype == dtype


# --- gk.chain_grad -------------------------------------------------------------------------

X_DTYPES = ["<f4", ">f4", "<f8", ">f8", "f2", "g", "i1", ">i4", "i8", "u1", "u8", "?", "c8",
            "M8[s]"]


@st.composite
def x_values(draw):
    """x as the caller might pass it: arrays of many dtypes, byte orders,
    shapes and strides (empty included), lists, scalars, masked arrays."""
    kind = draw(mostly(st.sampled_from(["array"] * 6 + ["strided", "list"]),
                       st.sampled_from(["2d", "scalar", "masked", "object", "ragged"])))
    n = draw(st.integers(0, 12))
    values = draw(st.lists(st.one_of(st.floats(-5, 5), st.sampled_from(SPECIAL_FLOATS)),
                           min_size=2 * n, max_size=2 * n))
    dtype = np.dtype(draw(mostly(st.sampled_from(X_DTYPES[:6]), st.sampled_from(X_DTYPES))))
    base = np.array(values, dtype=np.float64)
    if dtype.kind in "iub":
        base = np.nan_to_num(base, posinf=7, neginf=-7)
    with np.errstate(all="ignore"):
        base = base.astype(dtype)
    if kind == "array":
        return base[:n].copy()
    if kind == "strided":
        return base[::2]
    if kind == "2d":
        return base.reshape(2, n)
    if kind == "list":
        return values[:n]
    if kind == "scalar":
        return draw(scalars())
    if kind == "masked":
        return np.ma.masked_array(base[:n], mask=[i % 2 for i in range(n)])
    if kind == "object":
        return np.array(values[:n] + ["a"], dtype=object)
    return [[1.0], [1.0, 2.0]]


def weights_values(n_layers):
    return mostly(st.one_of(
        st.lists(st.floats(-3, 3), min_size=n_layers, max_size=n_layers),
        st.lists(st.floats(-3, 3), min_size=n_layers, max_size=n_layers).map(
            lambda w: np.array(w, np.float32)),
    ), st.one_of(
        st.lists(st.sampled_from(SPECIAL_FLOATS + HUGE_INTS), min_size=1, max_size=3),
        st.just([]), st.just([[1.0, 2.0]]), st.just(["x"]), scalars(),
        st.just(np.ma.masked_array([1.0] * n_layers)),
    ))


def _compute_dtype(x):
    if isinstance(x, np.ndarray) and x.dtype.kind == "f" and x.dtype.itemsize == 4:
        return np.dtype(np.float32)
    return np.dtype(np.float64)


@st.composite
def out_values(draw, x, n, n_layers, dtype, noise):
    """out= tuples: right, wrong shapes or dtypes, read-only, masked, strided,
    lists, aliasing x, the noise or each other."""
    kind = draw(st.sampled_from(["none"] * 3 + ["ok"] * 3 + [
        "shape", "dtype", "readonly", "masked", "strided", "list", "short", "not_tuple",
        "alias_x", "alias_noise", "alias_out", "swapped"]))
    if kind == "none":
        return None
    shapes = [(n,), (n, n_layers), (n,)]
    out = [np.zeros(s, dtype) for s in shapes]
    i = draw(st.integers(0, 2))
    if kind == "shape":
        out[i] = np.zeros(shapes[i] + (1,), dtype)
    elif kind == "dtype":
        out[i] = out[i].astype(np.float32 if dtype == np.float64 else np.float64)
    elif kind == "readonly":
        out[i].flags.writeable = False
    elif kind == "masked":
        out[i] = np.ma.masked_array(out[i])
    elif kind == "strided":
        out[1] = np.zeros((n, 2 * n_layers), dtype)[:, ::2]
    elif kind == "list":
        out[i] = out[i].tolist()
    elif kind == "short":
        return tuple(out[:2])
    elif kind == "not_tuple":
        return out
    elif kind == "alias_x":
        if isinstance(x, np.ndarray) and x.dtype != object and x.flags.c_contiguous and \
                x.nbytes >= n * dtype.itemsize:
            out[0] = np.asarray(x).reshape(-1).view(np.uint8)[:n * dtype.itemsize].view(dtype)
    elif kind == "alias_noise":
        if isinstance(noise, np.ndarray) and noise.flags.c_contiguous and \
                noise.nbytes >= n * n_layers * dtype.itemsize:
            flat = np.asarray(noise).reshape(-1).view(np.uint8)[:n * n_layers * dtype.itemsize]
            out[1] = flat.view(dtype).reshape(n, n_layers)
    elif kind == "alias_out":
        out[2] = out[0]
    elif kind == "swapped":
        out[i] = out[i].astype(out[i].dtype.newbyteorder())
    return tuple(out)


@st.composite
def noise_values(draw, n, n_layers):
    kind = draw(st.sampled_from(["none"] * 4 + ["ok", "float32", "shape", "masked", "list",
                                                 "huge", "scalar"]))
    if kind == "none":
        return None
    vals = np.array(draw(st.lists(st.floats(0, 1), min_size=n * n_layers,
                                  max_size=n * n_layers)), np.float64).reshape(n, n_layers)
    return {"ok": vals, "float32": vals.astype(np.float32), "shape": vals.reshape(-1),
            "masked": np.ma.masked_array(vals), "list": vals.tolist(),
            "huge": np.full((n, n_layers), 1e300), "scalar": 0.5}[kind]


ACTS = ["Tanh", gk.activation("RReLU"), gk.activation("RReLU", training=False), "relu",
        gk.activation("RReLU"), gk.activation("RReLU")]


@FUZZ
@given(st.data())
def test_fuzz_chain_grad(data):
    x = data.draw(x_values(), "x")
    flat_list = isinstance(x, list) and not any(isinstance(v, list) for v in x)
    n = len(x) if flat_list or (isinstance(x, np.ndarray) and x.ndim == 1) else 3
    n_layers = data.draw(st.integers(1, 3), "L")
    weights = data.draw(weights_values(n_layers), "weights")
    act = data.draw(mostly(st.sampled_from(ACTS), st.sampled_from(["GELU", 3, None]), 0.95),
                    "act")
    noise = data.draw(noise_values(n, n_layers), "noise")
    dtype = _compute_dtype(x)
    out = data.draw(out_values(x, n, n_layers, dtype, noise), "out")
    seed = data.draw(st.one_of(st.none(), seeds()), "seed")
    backend = data.draw(st.sampled_from(["cpu"] * 16 + ["native", "tpu", None]), "backend")
    stream = data.draw(st.sampled_from([None] * 19 + [0]), "stream")
    kwargs = {k: v for k, v in (("noise", noise), ("seed", seed), ("out", out),
                                ("stream", stream)) if v is not None}
    before = [_snapshot(v) for v in (x, weights, noise)]
    try:
        res = gk.chain_grad(x, act, weights, backend=backend, **kwargs)
    except gk.BackendUnavailableError:
        assert backend == "native"
    except BAD_INPUT as exc:
        event(f"refused: {type(exc).__name__}")
    else:
        event("ran")
        assert res.output.shape == (n,) and res.weight_grads.shape == (n, len(weights))
        assert all(a.dtype == dtype for a in res)
    for b, v in zip(before, (x, weights, noise)):
        _unchanged(b, v)


# --- gk.draw, gk.rrelu_slopes, Dist --------------------------------------------------------

KIND_NAMES = list(DIST_KINDS) + ["Normal", "gaussian", "t", "const", "bogus", ""]
PARAM_TEXTS = ["0", "1", "-3", "3", "0.5", "-0", "1e400", "nan", "inf", "1e308", "-1e308",
               "", " ", "a", "1_0", "0x10", "1e-320"]


@st.composite
def dist_texts(draw):
    kind = draw(mostly(st.sampled_from(list(DIST_KINDS)), st.sampled_from(KIND_NAMES)))
    arity = len(DIST_KINDS[kind][1]) if kind in DIST_KINDS else 2
    n = draw(mostly(st.just(arity), st.integers(0, 3)))
    params = draw(st.lists(mostly(st.sampled_from(["0", "1", "-3", "3", "0.5", "2.5", "-0"]),
                                  st.sampled_from(PARAM_TEXTS)), min_size=n, max_size=n))
    sep = draw(mostly(st.just(":"), st.sampled_from([";", "", "::"])))
    return f"{kind}{sep}{','.join(params)}"


def dists():
    valid = st.sampled_from([f"{k}:{','.join(map(str, ex))}" for k, (_, _, ex) in
                             DIST_KINDS.items()] + [Dist("normal", (0.0, 1.0))])
    return mostly(valid, st.one_of(dist_texts(), st.text(max_size=12), scalars()))


def dtypes():
    return mostly(st.sampled_from([np.float32, np.float64, "float32", "float64"]),
                  st.sampled_from(["float16", "int8", ">f4", "nonsense", None, 3,
                                   np.complex64]))


@FUZZ
@given(dists(), counts(), seeds(), counts(40), st.one_of(st.none(), counts(60)), dtypes())
def test_fuzz_draw(dist, n, seed, start, total, dtype):
    try:
        out = gk.draw(dist, n, seed, start=start, total=total, dtype=dtype)
    except BAD_INPUT as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("ran")
    assert out.shape == (n,) and out.dtype in (np.float32, np.float64)


def bounds():
    return mostly(st.lists(st.floats(-2, 2), min_size=2, max_size=2).map(sorted),
                  st.tuples(reals(), reals()), 0.7)


@FUZZ
@given(counts(), mostly(st.integers(1, 4), counts()), seeds(), bounds(), counts(40), dtypes())
def test_fuzz_rrelu_slopes(n, n_layers, seed, bounds, start, dtype):
    lower, upper = bounds
    try:
        out = gk.rrelu_slopes(n, n_layers, seed, lower, upper, start=start, dtype=dtype)
    except BAD_INPUT as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("ran")
    assert out.shape == (n, n_layers) and np.isfinite(out).all()


@FUZZ
@given(mostly(dist_texts(), st.one_of(st.text(max_size=12), scalars())),
       mostly(st.sampled_from(KIND_NAMES), scalars()),
       mostly(st.lists(mostly(st.floats(0.5, 3), reals()), min_size=1, max_size=2).map(tuple),
              scalars()))
def test_fuzz_dist(text, kind, params):
    for make in (lambda: Dist.parse(text), lambda: Dist(kind, params)):
        try:
            d = make()
        except BAD_INPUT as exc:
            event(f"refused: {type(exc).__name__}")
            continue
        event("made")
        assert d.kind in DIST_KINDS and all(math.isfinite(p) for p in d.params)
        assert Dist.parse(str(d)) == d  # the text form round-trips


# --- gk.sweep's arguments (tiny runs: two activations, one distribution, cpu) --------------

def _pick(valid, invalid):
    return mostly(st.sampled_from(valid), st.sampled_from(invalid), 0.9)


@FUZZ
@given(activations=_pick(["Tanh", "ReLU", "Tanh,ReLU", ["ReLU"], gk.activation("tanh")],
                         ["bogus", "", [], 3, None,
                          gk.activation("LeakyReLU", negative_slope=1e300)]),
       depths=mostly(st.one_of(st.integers(1, 3), st.sampled_from(["1-3", "2,3", [1, 2]])),
                     st.sampled_from(["0", "3-1", "1-1000000000000", "a", "", [0], [2.5],
                                      True, None, 10**6, -1, "1-"]), 0.9),
       dists=_pick(["normal:0,1", ["normal:0,1"], Dist("normal", (0.0, 1.0))],
                   ["normal", "gaussian:0,1", "t:3", "uniform:3,1", 3, None, []]),
       weights=mostly(st.one_of(st.floats(-3, 3), st.lists(st.floats(-3, 3), min_size=1,
                                                          max_size=2)),
                      st.one_of(st.lists(reals(), max_size=2), scalars()), 0.9),
       samples=mostly(st.one_of(st.integers(1, 5000), st.sampled_from(["2_000", "1e3"])),
                      st.sampled_from([0, -1, 2**62 + 1, 10**30, 1e30, "1e30", "abc", 1.5,
                                       True, None, math.nan, math.inf]), 0.9),
       seed=seeds(),
       dtype=_pick(["float32", np.float32], ["float16", "int8", "nonsense", None]),
       chunk_blocks=_pick([256, 1], [0, -1, 1.5, math.inf, "2", True, None]),
       threads=_pick([None, None, 1], [0, -1, 1.5, "2", 10**6]),
       backend=_pick(["cpu"], ["tpu", None, 3]))
def test_fuzz_sweep(activations, depths, dists, weights, samples, seed, dtype, chunk_blocks,
                    threads, backend):
    try:
        res = gk.sweep(activations, depths, dists, weights, samples, seed, backend=backend,
                       dtype=dtype, chunk_blocks=chunk_blocks, threads=threads)
    except BAD_INPUT as exc:
        event(f"refused: {type(exc).__name__}")
        return
    event("ran")
    assert len(res.points) >= 1

