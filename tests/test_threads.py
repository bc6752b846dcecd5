"""Threads in the field: fork-started pools after a parallel call, every start
method, every threading layer, concurrent Python threads.

Each case runs in a fresh interpreter, because the threading layer is chosen
once per process and fork inherits whatever the parent has started.  A hang
(GNU OpenMP after fork) shows up as the timeout; an abort as the exit code.
"""
import json
import os
import subprocess
import sys
import textwrap

import pytest

CHILD = textwrap.dedent(r"""
    import concurrent.futures as cf, json, multiprocessing as mp, sys, threading
    import numpy as np
    import gradkern as gk

    def chain(n):
        x = np.linspace(-3.0, 3.0, n, dtype=np.float32)
        r = gk.chain_grad(x, "Tanh", [1.0, -0.5, 2.0])
        return [float(r.output.sum()), float(r.weight_grads.sum()), float(r.input_grad.sum())]

    def sweep(seed):
        s = gk.sweep("ReLU", depths=2, dists="normal:0,1", samples=70000, seed=seed,
                     backend="cpu")
        return [r["mean_abs_grad"] for r in s.rows]

    def job(arg):
        kind, value = arg
        return chain(value) if kind == "chain" else sweep(value)

    if __name__ == "__main__":
        method, pool = sys.argv[1], sys.argv[2]
        jobs = [("chain", 200_000), ("chain", 70_000), ("chain", 1000), ("sweep", 3)]
        parent = [job(j) for j in jobs]  # the parent has run parallel kernels first
        ctx = mp.get_context(method)
        if pool == "pool":
            with ctx.Pool(2) as p:
                children = p.map(job, jobs)
        elif pool == "executor":
            with cf.ProcessPoolExecutor(2, mp_context=ctx) as ex:
                children = list(ex.map(job, jobs))
        else:  # Python threads of one process, all in parallel kernels at once
            with cf.ThreadPoolExecutor(4) as ex:
                children = list(ex.map(job, jobs * 2))[:len(jobs)]
        from gradkern._numba import threads as _threads
        print(json.dumps({"parent": parent, "children": children, "layer": _threads.layer()}))
""")


@pytest.fixture(scope="module")
def script(tmp_path_factory):
    # a file, not ``python -c``: spawn and forkserver children import __main__
    path = tmp_path_factory.mktemp("threads") / "child.py"
    path.write_text(CHILD)
    return str(path)


def _run(script, *args, layer=None, timeout=240):
    env = dict(os.environ)
    env.pop("NUMBA_THREADING_LAYER", None)
    if layer:
        env["NUMBA_THREADING_LAYER"] = layer
    try:
        proc = subprocess.run([sys.executable, script, *args], env=env, text=True,
                              capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{args} with layer {layer}: hung for {timeout} s")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tbb_loads():
    from gradkern._numba import threads as _threads

    return any(os.path.exists(p) for p in _threads._tbb_candidates())


@pytest.mark.parametrize("pool", ["pool", "executor"])
def test_fork_after_parallel_calls(script, pool):
    """fork is Python's default start method on Linux before 3.14: children
    of a parent that already ran parallel kernels must run them too."""
    res = _run(script, "fork", pool)
    assert res["children"] == res["parent"]
    if _tbb_loads():
        assert res["layer"] == "tbb"


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_other_start_methods(script, method):
    res = _run(script, method, "pool")
    assert res["children"] == res["parent"]


def test_fork_after_gnu_openmp_runs_serial_kernels(script):
    """A user who forces GNU OpenMP still gets a working fork Pool: libgomp
    cannot start threads after fork, so the children run the serial kernels
    (the same numbers: the split never changes a result)."""
    res = _run(script, "fork", "pool", layer="omp")
    assert res["layer"] == "omp"
    assert res["children"] == res["parent"]


@pytest.mark.parametrize("layer", [None, "workqueue"])
def test_concurrent_python_threads(script, layer):
    """workqueue aborts the process when two threads enter it at once;
    gradkern serialises those calls.  The default layer takes them as they come."""
    res = _run(script, "fork", "threads", layer=layer)
    assert res["children"] == res["parent"]


def test_tbb_chosen_even_when_the_first_call_is_serial():
    """A first call below the parallel threshold still asks Numba for its
    thread count, which starts the threading layer: TBB must be loadable by
    then (it was not: a first call of 10 samples fixed GNU OpenMP, and with
    it the 60x busy-machine cost, for the whole process)."""
    if not _tbb_loads():
        pytest.skip("no tbb wheel in this environment")
    code = ("import numpy as np, gradkern as gk; from gradkern._numba import threads as _threads; "
            "gk.chain_grad(np.ones(10, np.float32), 'ReLU', [1.0]); "
            "gk.chain_grad(np.ones(200_000, np.float32), 'ReLU', [1.0]); print(_threads.layer())")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_THREADING_LAYER"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "tbb"
