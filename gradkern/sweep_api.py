"""``gradkern.sweep``: gradient statistics over a grid of activations x depths x
input distributions x weights, from the fused streaming kernels.

A grid point is (activation, depth L, distribution, weight w) with weights
``[w] * L``; N samples are drawn in-kernel from the counter-based stream
(:mod:`gradkern.dists`), and each point is computed as consecutive chunks of
whole blocks (:mod:`gradkern.stats`) folded in block order, locally or on Dask
workers, so the numbers depend on (grid, N, seed, dtype) only.
"""
import json
import math
import numbers
import time
from dataclasses import dataclass

import numpy as np

from .activations import ACTIVATIONS, Activation, activation as _activation
from .dists import MAX_SAMPLES, Dist
from .rng import split_seed
from .stats import BLOCK, HIST_BINS, HIST_LO, HIST_WIDTH, LANES, PointStats, fold

__all__ = ["sweep", "SweepResult", "Point", "make_grid", "parse_depths", "SWEEP_BACKENDS"]

SWEEP_BACKENDS = ("auto", "cpu", "cuda")
#: the inputs' and the sums' definition; a directory written under another
#: one is refused on resume.  2: gradkern's own log/cos/sin in the draws,
#: log|g| in the chain's dtype, 64 lanes per block (stats module docstring)
STREAM = "philox4x32-10/gradkern-2"
#: deepest chain of a sweep.  Memory grows with depth: a chunk holds L + 2
#: histograms per block, ~0.7 MB per layer at the default chunk (0.07 GB at
#: depth 100, 7 GB at 10,000); and a float32 gradient has vanished or
#: overflowed long before (|w|^L leaves float32's range at L = 219 for
#: |w| = 1.5, at L = 255 for 2/3)
MAX_DEPTH = 10_000
#: default chunk: 256 blocks = 1,048,576 samples, ~0.1 s of work on 2 cores;
#: memory ~ 256 x channels x 354 x 8 B of histograms (3.6 MB at depth 3)
CHUNK_BLOCKS = 256
#: Dask task timeout: far above a chunk's ~0.1 s and a fresh worker's
#: first-task kernel compile (5-60 s on 2 cores)
TASK_TIMEOUT = 600.0

ROW_COLUMNS = ("point", "activation", "depth", "dist", "weight", "layer", "samples", "seed",
               "dtype", "mean_abs_grad", "mean_grad", "rms_grad", "min_grad", "max_grad",
               "zero_fraction", "nan_fraction", "mean_log10_abs_grad")
_QUANTITIES = (("input_grad", "df/dx"), ("output", "f"))
_STAT_KEYS = ("mean_abs", "mean", "rms", "min", "max", "zero_fraction", "nan_fraction",
              "mean_log10_abs")
POINT_COLUMNS = ("point", "activation", "depth", "dist", "weight", "samples", "seed", "dtype",
                 "seconds", "backend") + tuple(
    f"{q}_{s}" for q, _ in _QUANTITIES for s in _STAT_KEYS)


def act_label(act):
    """``Tanh``, or ``LeakyReLU(negative_slope=0.2)`` when not torch's defaults."""
    return act.name if dict(act.params) == act.spec.defaults else repr(act)


@dataclass(frozen=True)
class Point:
    """One grid point."""

    index: int
    activation: Activation
    depth: int
    dist: Dist
    weight: float

    def weights(self, dtype):
        return np.full(self.depth, self.weight, dtype=np.dtype(dtype))

    def describe(self):
        return {"point": self.index, "activation": act_label(self.activation),
                "params": dict(self.activation.params), "depth": self.depth,
                "dist": str(self.dist), "weight": self.weight}


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
            acts.extend(_activation(n) for n in ACTIVATIONS)
        elif isinstance(a, str) and "," in a:
            acts.extend(_activations(a.split(",")))
        elif isinstance(a, str) and not a.strip():
            continue
        else:
            acts.append(_activation(a.strip() if isinstance(a, str) else a))
    if not acts:
        raise ValueError("no activations given")
    return acts


def _weights(weights):
    values = [weights] if isinstance(weights, (numbers.Real, str)) else weights
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise TypeError(f"weights must be a number or a list of numbers, got "
                        f"{type(weights).__name__}")
    out = []
    for w in values:
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Real):
            raise TypeError(f"weights must be real numbers, got {w!r}")
        try:
            out.append(float(w))
        except OverflowError:
            out.append(math.inf)  # an int beyond float64: reported below
    if not out:
        raise ValueError("need at least one weight")
    if not all(math.isfinite(w) for w in out):
        raise ValueError(f"weights must be finite, got {list(values)!r}")
    return out


def make_grid(activations, depths, dists, weights):
    """The grid points, activation-major (then distribution, weight, depth)."""
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
    weights = _weights(weights)
    pts = []
    for a in acts:
        for d in dists:
            for w in weights:
                for L in depths:
                    pts.append(Point(len(pts), a, L, d, w))
    return pts


def parse_samples(value):
    """1000, 1e9, "1e9", "2_000_000" -> int in [1, 2**62] (must be integral).

    2**62 (:data:`gradkern.dists.MAX_SAMPLES`): sample indices are 64-bit."""
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


def _positive_int(value, what):
    if not _is_int(value):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def _sweep_dtype(dtype):
    try:
        if dtype is None:  # np.dtype(None) would be float64
            raise TypeError
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}") from None
    if dt not in (np.float32, np.float64):
        raise ValueError(f"dtype must be float32 or float64, got {dt}")
    return dt


def _check_runs_in(grid, dtype):
    """Every activation's parameters and every weight finite in dtype
    (ValueError naming it), before any work or file: torch refuses both."""
    for act in {p.activation for p in grid}:
        act.kernel_params(dtype)
    for w in sorted({p.weight for p in grid}):
        with np.errstate(over="ignore"):
            if not np.isfinite(dtype.type(w)):
                raise ValueError(f"weight {w!r} overflows {dtype} (largest {dtype}: "
                                 f"{np.finfo(dtype).max:.6g})")


def _finite_or_none(v):
    return v if isinstance(v, float) and math.isfinite(v) else (None if isinstance(v, float)
                                                                 else v)


def _hist_json(counts):
    nz = np.flatnonzero(counts)
    if nz.size == 0:
        return {"first": 0, "counts": []}
    return {"first": int(nz[0]), "counts": [int(c) for c in counts[nz[0]:nz[-1] + 1]]}


def hist_array(h):
    """Histogram counts (length HIST_BINS) from a point file's ``{"first", "counts"}``."""
    out = np.zeros(HIST_BINS, dtype=np.int64)
    out[h["first"]:h["first"] + len(h["counts"])] = h["counts"]
    return out


def point_record(point, stats, samples, seed, dtype, seconds, backend):
    """The JSON-able record of a finished point (what points/NNNNN.json holds)."""
    L = point.depth
    layers = []
    for k in range(L):
        s = stats[k]
        layers.append({"layer": k + 1, **{key: s[key] for key in _STAT_KEYS},
                       "hist": _hist_json(s["hist"])})
    extra = {q: {**{key: stats[L + j][key] for key in _STAT_KEYS},
                 "hist": _hist_json(stats[L + j]["hist"])}
             for j, (q, _) in enumerate(_QUANTITIES)}
    return {**point.describe(), "samples": samples, "seed": seed, "dtype": str(dtype),
            "seconds": seconds, "backend": backend, "layers": layers, **extra}


class SweepResult:
    """The tidy table of a sweep.

    ``rows``: one dict per grid point and layer (columns :data:`ROW_COLUMNS`,
    statistics of df/dw_layer); ``points``: one dict per point with the
    statistics of df/dx (``input_grad_*``) and of the output (``output_*``);
    ``histograms[(point, layer)]``: counts of log10|df/dw_layer| on
    ``hist_edges`` (layer 0 = df/dx, L+1 = output).  Non-finite statistics
    (no valid sample) are None.
    """

    columns = ROW_COLUMNS
    point_columns = POINT_COLUMNS
    #: inner bin edges of log10|g|; bin 0 is below the first, the last bin above the last
    hist_edges = HIST_LO + HIST_WIDTH * np.arange(HIST_BINS - 1)

    def __init__(self, records):
        self.records = sorted(records, key=lambda r: r["point"])
        self.rows, self.points, self.histograms = [], [], {}
        for r in self.records:
            base = {k: r[k] for k in ("point", "activation", "depth", "dist", "weight")}
            common = {"samples": r["samples"], "seed": r["seed"], "dtype": r["dtype"]}
            for lay in r["layers"]:
                row = {**base, "layer": lay["layer"], **common}
                for col, key in zip(ROW_COLUMNS[9:], _STAT_KEYS):
                    row[col] = _finite_or_none(lay[key])
                self.rows.append(row)
                self.histograms[(r["point"], lay["layer"])] = hist_array(lay["hist"])
            prow = {**base, **common, "seconds": r["seconds"], "backend": r["backend"]}
            for q, _ in _QUANTITIES:
                for key in _STAT_KEYS:
                    prow[f"{q}_{key}"] = _finite_or_none(r[q][key])
            self.points.append(prow)
            self.histograms[(r["point"], 0)] = hist_array(r["input_grad"]["hist"])
            self.histograms[(r["point"], r["depth"] + 1)] = hist_array(r["output"]["hist"])

    def __len__(self):
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def to_pandas(self):
        """The rows as a pandas DataFrame (imports pandas)."""
        import pandas as pd

        return pd.DataFrame(self.rows, columns=list(self.columns))

    def to_json(self):
        return json.dumps({"results": self.rows, "points": self.points}, indent=1)

    def __repr__(self):
        return f"SweepResult({len(self.points)} points, {len(self.rows)} rows)"


# ---------------------------------------------------------------------------
def resolve_backend(backend):
    """The backend a sweep runs on, ``"cpu"`` or ``"cuda"``.

    ``"auto"`` is ``"cuda"`` where a real GPU is usable, else ``"cpu"``.  An
    explicit ``"cuda"`` that cannot run here raises
    :class:`~gradkern.errors.BackendUnavailableError` saying why, before any
    work (as ``chain_grad(backend="cuda")`` does), not numba's error from the
    first launch; numba-cuda's simulator (``NUMBA_ENABLE_CUDASIM=1``) counts
    as a GPU there.
    """
    if backend not in SWEEP_BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; valid: {', '.join(SWEEP_BACKENDS)}")
    if backend == "cuda":
        _require_cuda()
    if backend != "auto":
        return backend
    from . import stats_cuda

    return "cuda" if stats_cuda.gpu_available() else "cpu"


def _require_cuda():
    """BackendUnavailableError unless numba-cuda has a usable GPU (or is the simulator)."""
    from .backend_cuda import CudaUnavailableError, _cuda
    from .errors import BackendUnavailableError

    try:
        _cuda()
    except CudaUnavailableError as exc:
        raise BackendUnavailableError(str(exc)) from None


def _chunk_runner(backend):
    if backend == "cuda":
        from .stats_cuda import run_chunk
    else:
        from .stats_cpu import run_chunk
    return run_chunk


def _task_timeout(value):
    """``task_timeout``: seconds > 0, or None for no limit."""
    if value is None:
        return None
    try:
        t = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"task_timeout must be a number of seconds or None, "
                        f"got {value!r}") from None
    if not t > 0 or math.isinf(t):
        raise ValueError(f"task_timeout must be > 0 seconds and finite, got {value!r}")
    return t


def local_chunks(point, samples, seed, dtype, backend, chunk_blocks):
    """Partials of a point, chunk by chunk, in block order (this process)."""
    run_chunk = _chunk_runner(backend)
    n_blocks = -(-samples // BLOCK)
    w = point.weights(dtype)
    for b0 in range(0, n_blocks, chunk_blocks):
        nb = min(chunk_blocks, n_blocks - b0)
        yield run_chunk(point.activation, point.dist, w, seed, samples, b0, nb, dtype), \
            min((b0 + nb) * BLOCK, samples) - b0 * BLOCK


def sweep(activations="all", depths=3, dists="normal:0,1", weights=1.0, samples=10**6, seed=0,
          *, backend="auto", dtype="float32", out=None, resume=False, progress=False,
          dask=None, threads=None, chunk_blocks=CHUNK_BLOCKS, on_point=None,
          task_timeout=TASK_TIMEOUT):
    """Gradient statistics over a grid, from in-kernel random inputs.

    Parameters
    ----------
    activations : "all", str, Activation or list of them
        ``"all"`` (the 17), names (``"Tanh"``, ``"ReLU,Tanh"``) or
        ``gradkern.activation(...)`` objects.  RReLU is in training mode by
        default, as ``torch.nn.RReLU()``: slopes come from the stream too.
    depths : int, str or list of int
        Chain depths L: ``3``, ``"1-30"``, ``"1,2,5"``, ``[1, 3]``; at most
        :data:`MAX_DEPTH` (10,000).
    dists : str, Dist or list of them
        Input distributions: ``"normal:0,1"``, ``"uniform:-3,3"``,
        ``"laplace:0,1"``, ``"lognormal:0,1"``, ``"student-t:3"``,
        ``"constant:2"``, ``"grid:-5,5"`` (see :mod:`gradkern.dists`).
    weights : float or list of float
        Weight settings; each is used for every layer (``[w] * L``).
    samples : int or str
        Samples N per grid point (``10**9``, ``"1e9"``), 1 <= N <= 2**62
        (sample indices are 64-bit).
    seed : int
        Key of the Philox stream, 0 <= seed < 2**64.
    backend : {"auto", "cpu", "cuda"}
        ``auto`` is ``cuda`` where a CUDA GPU is present, else ``cpu``.
    dtype : {"float32", "float64"}
        Dtype of the chain (statistics are always accumulated in float64).
    out : path, optional
        Directory to write the manifest and each point as it finishes.  It
        is created with its parents if missing; an existing one must be
        empty, or hold a sweep (continued with ``resume``): gradkern never
        writes into a non-empty directory that is not a sweep directory
        (SweepDirectoryError), and there only under its own file names.
    resume : bool
        Continue the sweep in ``out``: finished points are read back, not
        recomputed; the grid, N, seed and dtype must be the same.  Each
        point file is checked against the manifest and its checksum: a
        damaged one is named in a SweepDirectoryWarning and recomputed, a
        foreign file in ``points/`` named and left alone.
    progress : bool
        Progress bar on stderr (only drawn when stderr is a terminal).
    dask : str or distributed.Client, optional
        Run chunks on Dask workers: a scheduler address, ``"local:N"`` for a
        LocalCluster of N single-threaded worker processes on 127.0.0.1, or a
        Client.  Results are bit-identical to a local run.
    threads : int, optional
        Numba threads (locally, or per Dask task).
    chunk_blocks : int
        Blocks of 4096 samples per kernel call (memory; never the results).
    on_point : callable, optional
        Called with each finished point's record (used by the CLI and tests).
    task_timeout : float or None
        With ``dask``: seconds a task may take once the sweep waits for it
        (the first task on a fresh worker compiles kernels, 5-60 s) before it
        is resubmitted to the other workers, at most twice; then
        TaskTimeoutError names the point and chunk (finished points stay in
        ``out`` for ``resume``).  None waits forever.

    Returns
    -------
    SweepResult
        ``.rows`` (one per point and layer), ``.points``, ``.histograms``,
        ``.to_pandas()``.
    """
    dtype = _sweep_dtype(dtype)
    seed = split_seed(seed)
    samples = parse_samples(samples)
    chunk_blocks = _positive_int(chunk_blocks, "chunk_blocks")
    threads = None if threads is None else _positive_int(threads, "threads")
    if on_point is not None and not callable(on_point):
        raise TypeError(f"on_point must be callable, got {type(on_point).__name__}")
    if resume and out is None:
        raise ValueError("resume=True needs out=, the directory of the sweep to continue")
    grid = make_grid(activations, depths, dists, weights)
    _check_runs_in(grid, dtype)
    backend = resolve_backend(backend)
    task_timeout = _task_timeout(task_timeout)
    store, records = None, {}
    if out is not None:
        from .sweep_store import Store

        store = Store(out)
        manifest = {"stream": STREAM, "block": BLOCK, "lanes": LANES, "seed": seed,
                    "samples": samples, "dtype": str(dtype),
                    "grid": [p.describe() for p in grid]}
        records = store.open(manifest, resume)
        if resume:
            # rebuilt from the verified points: rows of a damaged point go
            store.write_tables(SweepResult(records.values()))
    todo = [p for p in grid if p.index not in records]
    # set after the directory's checks, which may raise: only the finally below restores it
    old_threads = None
    if threads is not None and dask is None:
        from . import _threads

        old_threads = _threads.num_threads()
        _threads.set_num_threads(int(threads))

    from .progress import Progress

    bar = Progress(samples * len(grid), len(grid), done=samples * len(records),
                   points_done=len(records), enabled=progress)
    client = None
    try:
        if dask is not None:
            from .sweep_dask import dask_point_chunks, get_client

            client = get_client(dask, threads)
            chunks_of = dask_point_chunks(client, todo, samples, seed, dtype, backend,
                                          chunk_blocks, task_timeout)
        else:
            def chunks_of(p):
                return local_chunks(p, samples, seed, dtype, backend, chunk_blocks)
        for p in todo:
            t0 = time.perf_counter()
            total = PointStats(p.depth + 2)
            for part, n_done in chunks_of(p):
                fold(total, part)
                bar.advance(samples=n_done)
            rec = point_record(p, total.finish(samples), samples, seed, dtype,
                               round(time.perf_counter() - t0, 6), backend)
            records[p.index] = rec
            if store is not None:
                store.write_point(rec)
                store.append_rows(SweepResult([rec]).rows, ROW_COLUMNS)
            if on_point is not None:
                on_point(rec)
            bar.advance(points=1)
    finally:
        bar.close()
        if old_threads is not None:
            _threads.set_num_threads(old_threads)
        if client is not None:
            from .sweep_dask import close_client

            close_client(client)
    result = SweepResult(records.values())
    if store is not None:
        store.write_tables(result)
    return result


def load(path):
    """The SweepResult of the finished points in a sweep directory.

    Each point file is checked against the manifest and its checksum; a
    damaged one is named in a SweepDirectoryWarning and left out, and so is
    a foreign file in ``points/``.  SweepDirectoryError where ``path`` holds
    no sweep.
    """
    from .sweep_store import Store

    return SweepResult(Store(path).load_points().values())
