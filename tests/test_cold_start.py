"""First-call time: how the sweep's kernels are built and compiled from an
empty cache (docs/performance.md, "First call"), and that the workers that
compile them ahead can fail without the job failing or hanging."""
import json
import os
import subprocess
import sys
import time

import pytest

import gradkern as gk
from gradkern._numba import prewarm


def test_sweep_kernels_are_serial_nogil_kernels():
    """A ``parallel=True`` (parfor) stats kernel took 4.0 s to compile per
    activation, the serial nogil one that threads drive 1.5 s: the sweep
    kernels must stay serial, and release the GIL for the threads."""
    from gradkern.stream.dists import Dist
    from gradkern.sweeps.cpu import get_sample_stats_kernel, get_stats_kernel

    act = gk.activation("Softsign")
    code = Dist.parse("normal:0,1").code
    for kernel in (get_stats_kernel(act.ops(), False, code),
                   get_sample_stats_kernel(act.ops(), False, code, 0, 5, False)):
        assert not kernel.targetoptions.get("parallel")
        assert kernel.targetoptions.get("nogil")


PROBE = r"""
import json, sys
import gradkern as gk
from gradkern.sweeps import cpu
res = gk.sweep("Softsign,Hardtanh", 1, "normal:0,1", 1.0, 4096, backend="cpu")
hits = misses = 0
for k in cpu._KERNELS.values():
    hits += sum(k.stats.cache_hits.values())
    misses += sum(k.stats.cache_misses.values())
print(json.dumps({"hits": hits, "misses": misses,
                  "means": [r["mean_abs_grad"] for r in res.rows]}))
"""


def _probe(tmp_path, workers):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / f"cache{workers}"),
           "GRADKERN_COMPILE_WORKERS": str(workers)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_a_sweeps_missing_kernels_are_compiled_in_workers(tmp_path):
    """From an empty cache, a two-activation sweep's kernels are compiled by
    worker processes into the disk cache: the sweep's own process loads
    both (two cache hits, no compile), and its numbers are those of a sweep
    that compiled them itself."""
    got = _probe(tmp_path, 2)
    assert (got["hits"], got["misses"]) == (2, 0)
    alone = _probe(tmp_path, 0)
    assert (alone["hits"], alone["misses"]) == (0, 2)
    assert got["means"] == alone["means"]


@pytest.mark.parametrize("target, specs", [(os._exit, [3, 3]), (int, ["x", "y"])],
                         ids=["worker dies", "task raises"])
def test_a_failed_worker_never_holds_the_job(target, specs, monkeypatch):
    """A worker that dies or whose task raises ends the wait: the job then
    compiles the kernel itself (the cache decides what is loaded)."""
    monkeypatch.setenv("GRADKERN_COMPILE_WORKERS", "2")
    pool = prewarm.start(target, specs)
    assert pool is not None
    t = time.perf_counter()
    try:
        pool.wait(0, timeout=60)
        pool.wait(1, timeout=60)
    finally:
        pool.close()
    assert time.perf_counter() - t < 60


def test_no_workers_when_turned_off_or_too_few_tasks(monkeypatch):
    monkeypatch.setenv("GRADKERN_COMPILE_WORKERS", "0")
    assert prewarm.start(int, ["1", "2"]) is None
    monkeypatch.setenv("GRADKERN_COMPILE_WORKERS", "2")
    assert prewarm.start(int, ["1"]) is None


CHAINS = r"""
import json
import numpy as np
import gradkern as gk
from gradkern import verify
from gradkern._numba import prewarm
acts = [gk.activation("Softsign"), gk.activation("Hardtanh")]
specs = [verify._chain_spec(a, np.float32) for a in acts]
before = prewarm.missing(verify._tiny_chain, specs)
ahead = verify.prewarm_chains(acts, [np.float32])
started = ahead is not None
for a in acts:
    ahead.wait(a, np.float32)
ahead.close()
print(json.dumps([before, started, prewarm.missing(verify._tiny_chain, specs)]))
"""


def test_chain_kernels_a_job_lacks_are_found_and_compiled_in_workers(tmp_path):
    """``vanishing`` and ``verify`` ask which chain kernels the cache lacks by
    calling each on a tiny input under ``load_only`` (a miss raises instead
    of compiling), and have workers compile those: afterwards none is missing."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path), "GRADKERN_COMPILE_WORKERS": "2"}
    out = subprocess.run([sys.executable, "-c", CHAINS], env=env, capture_output=True,
                         text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [[0, 1], True, []]
