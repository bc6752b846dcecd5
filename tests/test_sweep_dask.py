"""Dask: a LocalCluster on 127.0.0.1 (2 single-threaded worker processes), grid
points and the chunks of one point spread over them; results bit-identical to
the local run."""
import numpy as np
import pytest

import gradkern as gk

distributed = pytest.importorskip("distributed")

GRID = dict(activations="Tanh,RReLU", depths=[2, 3], dists="normal:0,1.5", weights=1.0, seed=21)
N = 5 * 4096 + 3


def test_dask_local_cluster_is_bit_identical():
    local = gk.sweep(samples=N, backend="cpu", **GRID)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       host="127.0.0.1", dashboard_address=None)
    try:
        with distributed.Client(cluster) as client:
            # chunk_blocks=2: each point is 3 tasks, so one point's chunks land on both workers
            remote = gk.sweep(samples=N, backend="cpu", dask=client, chunk_blocks=2, threads=1,
                              **GRID)
    finally:
        cluster.close()
    assert remote.rows == local.rows
    for k, h in local.histograms.items():
        assert np.array_equal(remote.histograms[k], h)
    assert all(p["backend"] == "cpu" for p in remote.points)
