"""Dask for sweeps that outgrow one machine.

Each task is one chunk of whole blocks of one point (the unit ``stats_cpu``
computes locally), so both the grid points and the chunks of one huge point
spread over the workers.  Tasks return per-block partials; the client folds
them in block order exactly as a local run does, which is why results are
bit-identical to a local run for any number of workers, and whichever worker
ran (or re-ran) a task.

Tasks are submitted in grid order through a window of ~2 per worker thread,
so the client holds O(window) partials, not O(points x chunks).

A worker that stops answering (SIGSTOP, a hung filesystem, swapping) is not
noticed by Dask for 5 minutes (its worker TTL) and its tasks then wait; a
task the sweep has waited on for ``task_timeout`` seconds is therefore
resubmitted, with the unfinished tasks of its worker, to the other workers;
after ``TASK_RETRIES`` resubmissions the sweep stops with TaskTimeoutError.
A killed worker is left to Dask, which reschedules its tasks.
"""
import os
import warnings
from collections import deque

from ..errors import GradkernWarning, TaskTimeoutError
from .stats import BLOCK, Partials

__all__ = ["get_client", "close_client", "dask_point_chunks", "CONNECT_TIMEOUT",
           "TASK_RETRIES"]

#: seconds to reach a scheduler (Dask's own default is 30 s, then a raw OSError)
CONNECT_TIMEOUT = 10.0
#: resubmissions of one timed-out task before the sweep stops
TASK_RETRIES = 2


class _Handle:
    def __init__(self, client, cluster, own, threads):
        self.client, self.cluster, self.own, self.threads = client, cluster, own, threads


def get_client(spec, threads=None, timeout=CONNECT_TIMEOUT):
    """A handle on a Dask client from an address, ``"local:N"`` or a Client.

    ``local:N`` starts a LocalCluster of N worker processes with one thread
    each on 127.0.0.1 (no dashboard); each task then runs Numba with
    ``cores // N`` threads so N workers do not oversubscribe the machine.
    An address that cannot be reached within ``timeout`` seconds raises
    TimeoutError (an OSError) naming it.
    """
    from distributed import Client, LocalCluster

    if isinstance(spec, Client):
        return _Handle(spec, None, False, threads)
    spec = str(spec)
    if spec.startswith("local:") or spec == "local":
        n = int(spec.partition(":")[2] or os.cpu_count() or 1)
        if n < 1:
            raise ValueError(f"--dask local:N needs N >= 1, got {n}")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None)
        client = Client(cluster)
        if threads is None:
            threads = max(1, (os.cpu_count() or 1) // n)
        return _Handle(client, cluster, True, threads)
    return _Handle(_connect(spec, timeout), None, True, threads)


def _connect(address, timeout):
    from distributed import Client
    from distributed.comm import parse_address
    from distributed.comm.registry import get_backend

    try:
        # an unknown scheme fails only after 10 s, as an AssertionError
        get_backend(parse_address(address)[0])
        return Client(address, timeout=timeout)
    except ValueError as exc:  # unknown scheme, no port
        raise ValueError(f"dask: bad scheduler address {address!r}: {exc}") from None
    except OSError as exc:  # distributed: "Timed out trying to connect to ... after N s"
        raise TimeoutError(
            f"cannot reach Dask scheduler at {address} within {timeout:g} s") from exc
    except MemoryError as exc:
        # another service answered (an HTTP server, a proxy): distributed read
        # its reply's first bytes as a frame length of 3 EiB
        raise ConnectionError(f"{address} answered, but not as a Dask scheduler") from exc


def close_client(handle):
    if handle.own:
        handle.client.close()
        if handle.cluster is not None:
            handle.cluster.close()


def _task(act_name, act_params, dist, weights, seed, samples, block0, n_blocks, dtype, backend,
          threads):
    """One chunk on a worker: (F, MM, H) of blocks block0 .. block0+n_blocks-1."""
    import numba

    from .._numba import threads as _threads
    from ..activations import activation

    if threads is None:
        # one worker per machine: its threads share the cores
        try:
            from distributed import get_worker

            threads = max(1, (os.cpu_count() or 1) // get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            threads = numba.config.NUMBA_NUM_THREADS
    _threads.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    if backend == "cuda":
        from .cuda import run_chunk
    else:
        from .cpu import run_chunk
    p = run_chunk(activation(act_name, **act_params), dist, weights, seed, samples, block0,
                  n_blocks, dtype)
    return p.F, p.MM, p.H


def _label(setting):
    """A weight or bias setting in a message: 1.5, or its distribution."""
    return f"{setting:g}" if isinstance(setting, float) else str(setting)


class _Chunk:
    """One chunk of one point: its task arguments, current future, resubmissions,
    and whether that future may run on any worker."""

    def __init__(self, point, block0, n_blocks, args):
        self.point, self.block0, self.n_blocks, self.args = point, block0, n_blocks, args
        self.future, self.retries, self.anywhere = None, 0, True

    def describe(self):
        p = self.point
        d = p.describe()
        bias = "" if p.bias is None else f", bias {_label(p.bias)}"
        return (f"point {p.index} ({d['activation']}, depth {p.depth}, {p.dist}, "
                f"weight {_label(p.weight)}{bias}), blocks {self.block0}-"
                f"{self.block0 + self.n_blocks - 1}")


class _DaskChunks:
    """The window of in-flight chunk tasks, consumed in grid and block order."""

    def __init__(self, handle, todo, samples, seed, dtype, backend, chunk_blocks, timeout):
        self.client, self.timeout, self.samples = handle.client, timeout, samples
        n_blocks = -(-samples // BLOCK)
        self.pending = iter(
            _Chunk(p, b0, min(chunk_blocks, n_blocks - b0),
                   (p.activation.name, dict(p.activation.params), p.dist, p.weights(dtype), seed,
                    samples, b0, min(chunk_blocks, n_blocks - b0), str(dtype), backend,
                    handle.threads))
            for p in todo for b0 in range(0, n_blocks, chunk_blocks))
        self.window = 2 * (sum(self.client.nthreads().values()) or 1) + 2
        self.queue = deque()
        self.suspects = set()  # workers holding a task that timed out

    def fill(self):
        while len(self.queue) < self.window:
            chunk = next(self.pending, None)
            if chunk is None:
                return
            self.submit(chunk)
            self.queue.append(chunk)

    def submit(self, chunk):
        """Submit (or resubmit) ``chunk``, to the unsuspected workers if any."""
        old = chunk.future
        healthy = sorted(set(self.client.nthreads()) - self.suspects) if self.suspects else []
        kw = {"workers": healthy, "allow_other_workers": False} if healthy else {}
        chunk.future = self.client.submit(_task, *chunk.args, pure=False, **kw)
        chunk.anywhere = not healthy
        if old is not None:
            old.cancel()

    def result(self, chunk):
        """The chunk's (F, MM, H), resubmitting it when it times out."""
        while True:
            try:
                return chunk.future.result(timeout=self.timeout)
            except TimeoutError:
                if chunk.future.status == "error":  # the task's own TimeoutError
                    raise
            if chunk.retries >= TASK_RETRIES:
                raise TaskTimeoutError(
                    f"Dask task of {chunk.describe()} did not finish within {self.timeout:g} s "
                    f"(task_timeout), submitted {chunk.retries + 1} times; points finished "
                    "before it are kept in the sweep directory (resume continues)")
            self.on_timeout(chunk)

    def on_timeout(self, head):
        """Suspect the workers of ``head``; resubmit it, and the unfinished
        chunks of suspected workers or of none yet, to the other workers."""
        where = self.workers_of(list(self.queue))
        stuck = where[head.future.key]
        self.suspects |= stuck
        head.retries += 1
        moved = [c for c in self.queue if c is head or (
            c.anywhere and where[c.future.key] <= self.suspects)]
        for c in moved:
            self.submit(c)
        on = ", ".join(sorted(stuck)) or "no worker"
        to = ", ".join(sorted(set(self.client.nthreads()) - self.suspects)) or "any worker"
        warnings.warn(GradkernWarning(
            f"Dask task of {head.describe()} did not finish within {self.timeout:g} s on {on}; "
            f"resubmitted with {len(moved) - 1} other task(s) to {to}"), stacklevel=2)

    def workers_of(self, chunks):
        """{future key: the workers processing it or holding its result}."""
        where = {c.future.key: set() for c in chunks}
        for worker, keys in self.client.processing().items():
            for k in keys:
                if k in where:
                    where[k].add(worker)
        for k, workers in self.client.who_has([c.future for c in chunks]).items():
            if k in where:
                where[k].update(workers)
        return where

    def chunks_of(self, point, n_chunks):
        for _ in range(n_chunks):
            self.fill()
            chunk = self.queue[0]
            assert chunk.point.index == point.index, "dask tasks out of grid order"
            F, MM, H = self.result(chunk)
            self.queue.popleft()
            self.fill()
            end = min((chunk.block0 + chunk.n_blocks) * BLOCK, self.samples)
            yield Partials(chunk.block0, F, MM, H), end - chunk.block0 * BLOCK


def dask_point_chunks(handle, todo, samples, seed, dtype, backend, chunk_blocks,
                      task_timeout=None):
    """A function ``chunks_of(point)`` yielding (Partials, samples in it) in
    block order, computed on the Dask workers; a task not finished within
    ``task_timeout`` seconds (None: no limit) is resubmitted (see the module)."""
    runner = _DaskChunks(handle, todo, samples, seed, dtype, backend, chunk_blocks, task_timeout)
    n_chunks = -(-(-(-samples // BLOCK)) // chunk_blocks)

    def chunks_of(point):
        return runner.chunks_of(point, n_chunks)

    return chunks_of
