"""Dask for sweeps that outgrow one machine.

Each task is one chunk of whole blocks of one point (the unit ``stats_cpu``
computes locally), so both the grid points and the chunks of one huge point
spread over the workers.  Tasks return per-block partials; the client folds
them in block order exactly as a local run does, which is why results are
bit-identical to a local run for any number of workers.

Tasks are submitted in grid order through a window of ~2 per worker thread,
so the client holds O(window) partials, not O(points x chunks).
"""
import os
from collections import deque

from .stats import BLOCK, Partials

__all__ = ["get_client", "close_client", "dask_point_chunks"]


class _Handle:
    def __init__(self, client, cluster, own, threads):
        self.client, self.cluster, self.own, self.threads = client, cluster, own, threads


def get_client(spec, threads=None):
    """A handle on a Dask client from an address, ``"local:N"`` or a Client.

    ``local:N`` starts a LocalCluster of N worker processes with one thread
    each on 127.0.0.1 (no dashboard); each task then runs Numba with
    ``cores // N`` threads so N workers do not oversubscribe the machine.
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
    return _Handle(Client(spec), None, True, threads)


def close_client(handle):
    if handle.own:
        handle.client.close()
        if handle.cluster is not None:
            handle.cluster.close()


def _task(act_name, act_params, dist, weights, seed, samples, block0, n_blocks, dtype, backend,
          threads):
    """One chunk on a worker: (F, MM, H) of blocks block0 .. block0+n_blocks-1."""
    import numba

    from .activations import activation

    if threads is None:
        # one worker per machine: its threads share the cores
        try:
            from distributed import get_worker

            threads = max(1, (os.cpu_count() or 1) // get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            threads = numba.config.NUMBA_NUM_THREADS
    numba.set_num_threads(max(1, min(int(threads), numba.config.NUMBA_NUM_THREADS)))
    if backend == "cuda":
        from .stats_cuda import run_chunk
    else:
        from .stats_cpu import run_chunk
    p = run_chunk(activation(act_name, **act_params), dist, weights, seed, samples, block0,
                  n_blocks, dtype)
    return p.F, p.MM, p.H


def dask_point_chunks(handle, todo, samples, seed, dtype, backend, chunk_blocks):
    """A function ``chunks_of(point)`` yielding (Partials, samples in it) in
    block order, computed on the Dask workers."""
    client = handle.client
    n_blocks = -(-samples // BLOCK)
    tasks = [(p, b0, min(chunk_blocks, n_blocks - b0))
             for p in todo for b0 in range(0, n_blocks, chunk_blocks)]
    n_threads = sum(client.nthreads().values()) or 1
    window = 2 * n_threads + 2
    pending = iter(tasks)
    queue = deque()

    def fill():
        while len(queue) < window:
            t = next(pending, None)
            if t is None:
                return
            p, b0, nb = t
            fut = client.submit(_task, p.activation.name, dict(p.activation.params), p.dist,
                                p.weights(dtype), seed, samples, b0, nb, str(dtype), backend,
                                handle.threads, pure=False)
            queue.append((p.index, b0, nb, fut))

    def chunks_of(point):
        for _ in range(-(-n_blocks // chunk_blocks)):
            fill()
            index, b0, nb, fut = queue.popleft()
            assert index == point.index, "dask tasks out of grid order"
            F, MM, H = fut.result()
            fill()
            yield Partials(b0, F, MM, H), min((b0 + nb) * BLOCK, samples) - b0 * BLOCK

    return chunks_of
