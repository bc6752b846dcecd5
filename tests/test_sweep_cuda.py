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
