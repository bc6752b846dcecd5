"""``gradkern.sweep``: gradient statistics over a grid of activations x depths x
input distributions x weights (x biases), from the fused streaming kernels.

A grid point is (activation, depth L, distribution, weight w[, bias b]) with
weights ``[w] * L``, or per-sample weights and biases drawn from a
distribution (:mod:`gradkern.sweeps.layers`); N samples are drawn in-kernel from the counter-based stream
(:mod:`gradkern.stream.dists`), and each point is computed as consecutive chunks of
whole blocks (:mod:`gradkern.sweeps.stats`) folded in block order, locally or on Dask
workers, so the numbers depend on (grid, N, seed, dtype) only.
"""
import math
import time

import numpy as np

from ..stream.dists import float_dtype
from ..stream.philox import split_seed
from .grid import _is_int, make_grid, parse_samples
from .layers import n_channels
from .stats import BLOCK, LANES, PointStats, fold
from .table import SweepResult, point_record

__all__ = ["sweep", "SWEEP_BACKENDS", "STREAM", "CHUNK_BLOCKS", "gpu_chunk_blocks",
           "TASK_TIMEOUT"]

SWEEP_BACKENDS = ("auto", "cpu", "cuda")
#: the inputs' and the sums' definition; a directory written under another
#: one is refused on resume.  2: gradkern's own log/cos/sin in the draws,
#: log|g| in the chain's dtype, 64 lanes per block (stats module docstring)
STREAM = "philox4x32-10/gradkern-2"
#: default chunk: 256 blocks = 1,048,576 samples, ~0.1 s of work on 2 cores;
#: memory ~ 256 x channels x 354 x 8 B of histograms (3.6 MB at depth 3)
CHUNK_BLOCKS = 256
#: on a GPU one thread walks one block, so a chunk of 256 blocks would run 256
#: threads on a device that holds 132 SMs x 2048 = 270,336 (H100/H200): a GPU
#: chunk is up to 2**19 blocks (about two such waves, 2.1e9 samples), fewer
#: where its per-block partials (6 float64 per channel, depth + 2 channels)
#: would pass 512 MB
GPU_CHUNK_BLOCKS, GPU_CHUNK_BYTES = 1 << 19, 512 << 20


def gpu_chunk_blocks(depth):
    """The default chunk, in blocks, of a CUDA sweep whose deepest chain has ``depth`` layers."""
    return max(CHUNK_BLOCKS, min(GPU_CHUNK_BLOCKS, GPU_CHUNK_BYTES // (48 * (depth + 2))))

#: Dask task timeout: far above a chunk's ~0.1 s and a fresh worker's
#: first-task kernel compile (5-60 s on 2 cores)
TASK_TIMEOUT = 600.0


def _positive_int(value, what):
    if not _is_int(value):
        raise TypeError(f"{what} must be an integer, got {type(value).__name__}")
    if int(value) < 1:
        raise ValueError(f"{what} must be >= 1, got {value}")
    return int(value)


def _check_runs_in(grid, dtype):
    """Every activation's parameters and every weight finite in dtype
    (ValueError naming it), before any work or file: torch refuses both."""
    for act in {p.activation for p in grid}:
        act.kernel_params(dtype)
    for what, values in (("weight", {p.weight for p in grid}), ("bias", {p.bias for p in grid})):
        for w in sorted(v for v in values if isinstance(v, float)):
            with np.errstate(over="ignore"):
                if not np.isfinite(dtype.type(w)):
                    raise ValueError(f"{what} {w!r} overflows {dtype} (largest {dtype}: "
                                     f"{np.finfo(dtype).max:.6g})")


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
    from ..chain.cuda import gpu_usable

    return "cuda" if gpu_usable() else "cpu"


def _require_cuda():
    """BackendUnavailableError unless numba-cuda has a usable GPU (or is the simulator)."""
    from ..chain.cuda import CudaUnavailableError, _cuda
    from ..errors import BackendUnavailableError

    try:
        _cuda()
    except CudaUnavailableError as exc:
        raise BackendUnavailableError(str(exc)) from None


def _chunk_runner(backend):
    if backend == "cuda":
        from .cuda import run_chunk
    else:
        from .cpu import run_chunk
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


class _Waiter:
    """The points' view of a :class:`~gradkern._numba.prewarm.Prewarm`: wait
    for the task of a point's kernel."""

    def __init__(self, prewarm, task_of):
        self.prewarm, self.task_of = prewarm, task_of

    def wait(self, point):
        task = self.task_of.get(point.index)
        if task is not None:
            self.prewarm.wait(task)

    def close(self):
        self.prewarm.close()


def _prewarm(points, dtype):
    """Worker processes compiling the CPU kernels that ``points`` need and the
    disk cache lacks (two or more: ``_numba.prewarm``), or None."""
    from .._numba import prewarm
    from .cpu import compile_kernel, is_compiled, kernel_spec

    if prewarm.max_workers() < 2:
        return None
    specs, task_of = {}, {}
    for p in points:
        key, spec = kernel_spec(p, dtype)
        if key not in specs:
            specs[key] = (len(specs), spec, is_compiled(spec))
        task_of[p.index] = specs[key]
    missing = [(i, spec) for i, spec, done in specs.values() if not done]
    started = prewarm.start(compile_kernel, [spec for _, spec in missing])
    if started is None:
        return None
    task = {i: t for t, (i, _) in enumerate(missing)}
    return _Waiter(started, {index: task[i] for index, (i, _, done) in task_of.items()
                             if not done})


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
          *, biases=None, backend="auto", dtype="float32", out=None, resume=False, progress=False,
          dask=None, threads=None, chunk_blocks=None, on_point=None,
          task_timeout=TASK_TIMEOUT):
    """Gradient statistics over a grid, from in-kernel random inputs.

    Parameters
    ----------
    activations : "all", str, Activation or list of them
        ``"all"`` (every registry activation; Threshold, which has no torch.nn
        defaults, as ``Threshold(0.1, 20)``), names (``"Tanh"``, ``"ReLU,Tanh"``) or
        ``gradkern.activation(...)`` objects.  RReLU is in training mode by
        default, as ``torch.nn.RReLU()``: slopes come from the stream too.
    depths : int, str or list of int
        Chain depths L: ``3``, ``"1-30"``, ``"1,2,5"``, ``[1, 3]``; at most
        :data:`MAX_DEPTH` (10,000).
    dists : str, Dist or list of them
        Input distributions: ``"normal:0,1"``, ``"uniform:-3,3"``,
        ``"laplace:0,1"``, ``"lognormal:0,1"``, ``"student-t:3"``,
        ``"constant:2"``, ``"grid:-5,5"`` (see :mod:`gradkern.stream.dists`).
    weights : float, str or Dist, or a list of them
        Weight settings: a number w is used for every layer (``[w] * L``); a
        distribution (``"normal:0,1.5"``, any kind of ``dists``) draws each
        sample's own w_1 .. w_L in the kernel, from Philox counter family 1
        (stream k for layer k + 1), so the inputs do not change;
        :func:`gradkern.draw_weights` materialises them.
    samples : int or str
        Samples N per grid point (``10**9``, ``"1e9"``), 1 <= N <= 2**62
        (sample indices are 64-bit).
    seed : int
        Key of the Philox stream, 0 <= seed < 2**64.
    biases : float, str, Dist or a list of them, optional
        Bias settings, another axis of the grid: a number b for every layer,
        or a distribution drawn per sample and layer (counter family 2,
        :func:`gradkern.draw_biases`).  Each layer then computes
        ``act(w_k * a + b_k)`` as a ``Linear(1, 1)`` with bias, and the table
        gains the statistics of df/db_k.  None (default): no biases, the
        numbers of a sweep without them.
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
    chunk_blocks : int, optional
        Blocks of 4096 samples per kernel call (memory; never the results).
        Default: :data:`CHUNK_BLOCKS` (256, ~0.1 s on 2 cores) on the CPU;
        on a GPU, which runs one thread per block, :func:`gpu_chunk_blocks`
        (2**19 at depth 3, enough threads to fill the device).
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
    dtype = float_dtype(dtype)
    seed = split_seed(seed)
    samples = parse_samples(samples)
    if chunk_blocks is not None:
        chunk_blocks = _positive_int(chunk_blocks, "chunk_blocks")
    threads = None if threads is None else _positive_int(threads, "threads")
    if on_point is not None and not callable(on_point):
        raise TypeError(f"on_point must be callable, got {type(on_point).__name__}")
    if resume and out is None:
        raise ValueError("resume=True needs out=, the directory of the sweep to continue")
    grid = make_grid(activations, depths, dists, weights, biases)
    _check_runs_in(grid, dtype)
    backend = resolve_backend(backend)
    if chunk_blocks is None:
        chunk_blocks = (gpu_chunk_blocks(max(p.depth for p in grid)) if backend == "cuda"
                        else CHUNK_BLOCKS)
    task_timeout = _task_timeout(task_timeout)
    store, records = None, {}
    if out is not None:
        from .store import Store

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
        from .._numba import threads as _threads

        old_threads = _threads.num_threads()
        _threads.set_num_threads(int(threads))

    from ..progress import Progress

    bar = Progress(samples * len(grid), len(grid), done=samples * len(records),
                   points_done=len(records), enabled=progress)
    client = prewarm = None
    try:
        if dask is not None:
            from .dask import dask_point_chunks, get_client

            client = get_client(dask, threads)
            chunks_of = dask_point_chunks(client, todo, samples, seed, dtype, backend,
                                          chunk_blocks, task_timeout)
        else:
            if backend == "cpu":
                prewarm = _prewarm(todo, dtype)

            def chunks_of(p):
                if prewarm is not None:
                    prewarm.wait(p)
                return local_chunks(p, samples, seed, dtype, backend, chunk_blocks)
        for p in todo:
            t0 = time.perf_counter()
            total = PointStats(n_channels(p.depth, p.bias is not None))
            for part, n_done in chunks_of(p):
                fold(total, part)
                bar.advance(samples=n_done)
            rec = point_record(p, total.finish(samples), samples, seed, dtype,
                               round(time.perf_counter() - t0, 6), backend)
            records[p.index] = rec
            if store is not None:
                store.write_point(rec)
                one = SweepResult([rec])
                store.append_rows(one.rows, one.columns)
            if on_point is not None:
                on_point(rec)
            bar.advance(points=1)
    finally:
        bar.close()
        if prewarm is not None:
            prewarm.close()
        if old_threads is not None:
            _threads.set_num_threads(old_threads)
        if client is not None:
            from .dask import close_client

            close_client(client)
    result = SweepResult(records.values())
    if store is not None:
        store.write_tables(result)
    return result
