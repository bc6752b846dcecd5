"""The CUDA fused kernel on the Numba CUDA simulator: the same statistics as
the CPU kernel, bit for bit (one GPU thread per block of 4096 samples, the same
scalar functions and Philox stream).  Run in a subprocess because the simulator
must be chosen before numba.cuda is first imported."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("numba.cuda")

SCRIPT = r"""
import json, numpy as np, gradkern as gk
kw = dict(activations="Tanh,RReLU,Softplus", depths=[1, 3], dists=["normal:0,2", "grid:-3,3"],
          weights=[1.0, -0.75], samples=4096 + 37, seed=99)
cpu = gk.sweep(backend="cpu", **kw)
gpu = gk.sweep(backend="cuda", **kw)
hist = all(np.array_equal(cpu.histograms[k], gpu.histograms[k]) for k in cpu.histograms)
print(json.dumps({"same_rows": cpu.rows == gpu.rows, "same_hist": hist,
                  "backends": sorted({p["backend"] for p in gpu.points}),
                  "auto": gk.sweep("ReLU", 1, samples=10).points[0]["backend"]}))
"""


def test_cuda_kernel_on_the_simulator_matches_cpu():
    env = {**os.environ, "NUMBA_ENABLE_CUDASIM": "1"}
    r = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out == {"same_rows": True, "same_hist": True, "backends": ["cuda"], "auto": "cpu"}


def test_default_chunk_fills_a_gpu_and_stays_small_on_the_cpu(monkeypatch):
    # one GPU thread walks one block: the CPU's 256-block chunk would launch 256
    # threads on a device that holds 270,336; the GPU default fills it, and
    # shrinks with depth so the per-block partials stay within 512 MB
    from gradkern.sweeps import run

    assert run.gpu_chunk_blocks(3) == 1 << 19
    assert run.gpu_chunk_blocks(64) == (512 << 20) // (48 * 66)
    assert run.gpu_chunk_blocks(1_000_000) == run.CHUNK_BLOCKS
    seen = []

    def spy(point, samples, seed, dtype, backend, chunk_blocks):
        seen.append((backend, chunk_blocks))
        return iter(())

    monkeypatch.setattr(run, "local_chunks", spy)
    monkeypatch.setattr(run, "resolve_backend", lambda backend: backend)
    monkeypatch.setattr(run, "_prewarm", lambda todo, dtype: None)
    for backend in ("cuda", "cpu"):
        run.sweep("ReLU", depths=[3, 5], samples=10, backend=backend)
    run.sweep("ReLU", depths=3, samples=10, backend="cuda", chunk_blocks=7)
    assert seen == [("cuda", run.gpu_chunk_blocks(5))] * 2 + [("cpu", 256)] * 2 + [("cuda", 7)]
