"""Dask: a LocalCluster on 127.0.0.1 (2 single-threaded worker processes), grid
points and the chunks of one point spread over them; results bit-identical to
the local run, also when a worker is killed or stopped (SIGSTOP: its tasks
time out and are resubmitted to the other worker); every worker stopped is a
TaskTimeoutError in bounded time; an unreachable scheduler a clear error."""
import os
import signal
import socket
import time

import numpy as np
import pytest

import gradkern as gk
from gradkern.sweeps.dask import get_client

distributed = pytest.importorskip("distributed")

GRID = dict(activations="Tanh,RReLU", depths=[2, 3], dists="normal:0,1.5", weights=1.0, seed=21)
N = 5 * 4096 + 3
#: chunk_blocks=2: each point is 3 tasks, so one point's chunks land on both workers
DASK = dict(samples=N, backend="cpu", chunk_blocks=2, threads=1)


@pytest.fixture(scope="module")
def local():
    return gk.sweep(samples=N, backend="cpu", **GRID)


def _warm():
    # the worker loads the kernels (from the disk cache) before the clock runs
    gk.sweep(samples=4096, backend="cpu", threads=1, **GRID)


@pytest.fixture
def cluster():
    """A Client on 2 warm worker processes, and their pids; every worker is
    continued before the cluster closes, whatever the test did to it."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    pids = {}
    try:
        with distributed.Client(cluster) as client:
            client.run(_warm)
            pids.update(client.run(os.getpid))
            yield client, pids
    finally:
        for pid in pids.values():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        cluster.close()


def _same(remote, local):
    assert remote.rows == local.rows
    for k, h in local.histograms.items():
        assert np.array_equal(remote.histograms[k], h)
    assert all(p["backend"] == "cpu" for p in remote.points)


def test_dask_local_cluster_is_bit_identical(cluster, local):
    client, _ = cluster
    _same(gk.sweep(dask=client, **DASK, **GRID), local)


def test_killed_worker_recovers_bit_identically(cluster, local):
    client, pids = cluster
    victim = pids[sorted(pids)[0]]

    def kill_once(rec):  # after the first point: its window holds tasks on both workers
        if rec["point"] == 0:
            os.kill(victim, signal.SIGKILL)

    _same(gk.sweep(dask=client, on_point=kill_once, **DASK, **GRID), local)


def test_stopped_worker_is_bypassed_bit_identically(cluster, local):
    client, pids = cluster
    os.kill(pids[sorted(pids)[0]], signal.SIGSTOP)
    t0 = time.perf_counter()
    with pytest.warns(gk.GradkernWarning, match="did not finish within 4 s on tcp://.*"
                                                "resubmitted .* to tcp://"):
        remote = gk.sweep(dask=client, task_timeout=4, **DASK, **GRID)
    _same(remote, local)
    assert time.perf_counter() - t0 < 30


def test_all_workers_stopped_is_a_task_timeout(cluster):
    client, pids = cluster
    for pid in pids.values():
        os.kill(pid, signal.SIGSTOP)
    t0 = time.perf_counter()
    with pytest.warns(gk.GradkernWarning, match="resubmitted"), \
            pytest.raises(gk.TaskTimeoutError, match=r"point 0 \(Tanh, depth 2, normal:0,1.5, "
                          r"weight 1\), blocks 0-1 did not finish within 1.5 s"):
        gk.sweep(dask=client, task_timeout=1.5, **DASK, **GRID)
    # three tries of 1.5 s, plus the scheduler's round trips
    assert time.perf_counter() - t0 < 15


def test_task_timeout_is_checked():
    with pytest.raises(ValueError, match="task_timeout"):
        gk.sweep(samples=10, task_timeout=0, **GRID)
    with pytest.raises(TypeError, match="task_timeout"):
        gk.sweep(samples=10, task_timeout="soon", **GRID)


def test_unreachable_scheduler_is_a_clear_timeout():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match=f"cannot reach Dask scheduler at "
                                           f"tcp://127.0.0.1:{port} within 1 s"):
        get_client(f"tcp://127.0.0.1:{port}", timeout=1)
    assert time.perf_counter() - t0 < 10
    with pytest.raises(ValueError, match="bad scheduler address 'bogus://x:1'"):
        get_client("bogus://x:1", timeout=1)  # took 10 s, then an AssertionError
