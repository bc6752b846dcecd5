"""Mish's chain speed against its peers, and against Mish's previous formulas.

    .venv/bin/python benchmarks/mish_speed.py [--n 10000000] [--repeats 5] [--out FILE]

One process, float32, depth 3, weights 1, x ~ 2 N(0, 1) (the benchmark's
inputs): ``gk.chain_grad`` with the working tree's Mish, the same kernel
built from Mish's previous scalar functions (torch's formulas over
exp/log1p/tanh, kept below), torch batched autograd and JAX
jit(vmap(value_and_grad)) (``gradkern.bench.cpu.LIBS``).  The libraries take
turns, ``--repeats`` rounds, best time each, so that a drifting load hits
all of them.  Prints and writes ns per sample and the ratios the speed
target asks for (gradkern against JAX and against torch batched).
"""
import argparse
import json
import math
import os
import sys
import time

import numba
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _previous_mish():
    """Mish's (forward, backward) as they were: x*tanh(log1p(exp(x))) (x <= 0) or
    x - x*q (x > 0); tsp + x*s*(1 - tsp^2) with two exps, log1p and tanh."""
    from gradkern._numba.intrinsics import fma
    from gradkern._numba.vecmath import vexp, vlog1p, vtanh

    jit = numba.njit(error_model="numpy", forceinline=True)

    @jit
    def forward(x, p):
        T = type(x)
        e = vexp(x)
        n = e * (e + T(2.0))
        q = T(2.0) / (n + T(2.0))
        positive = x if q == T(0.0) else fma(-x, q, x)
        return positive if x > T(0.0) else x * vtanh(vlog1p(e))

    @jit
    def backward(g, x, y, p):
        T = type(x)
        s = T(1.0) / (T(1.0) + vexp(-x))
        tsp = vtanh(vlog1p(vexp(x)))
        return g * fma(x * s, fma(-tsp, tsp, T(1.0)), tsp)

    return forward, backward


def _gradkern_run(x, act, w, ops=None):
    """``gradkern.bench.cpu``'s gradkern-cpu run() (preallocated out=); ``ops``
    replaces the activation's (forward, backward) in the kernel."""
    from gradkern.bench.cpu import LIBS
    from gradkern.chain import cpu

    real = cpu.get_kernel

    def patched(fn):
        def call():
            if ops is not None:
                cpu.get_kernel = lambda _ops, **kw: real(ops, **kw)
            try:
                return fn()
            finally:
                cpu.get_kernel = real
        return call

    run = patched(lambda: LIBS["gradkern-cpu"].make(x, act, w)[0])()  # compiles
    return patched(run)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=10_000_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "mish-speed.json"))
    args = ap.parse_args(argv)

    import gradkern as gk
    from gradkern.bench.cpu import LIBS, machine_info

    act = gk.activation("Mish")
    x = (np.random.default_rng(0).standard_normal(args.n) * 2).astype(np.float32)
    w = np.ones(3, np.float32)
    runs = {"gradkern": _gradkern_run(x, act, w),
            "gradkern-previous-mish": _gradkern_run(x, act, w, _previous_mish())}
    for lib in ("torch-batched", "jax"):
        runs[lib] = LIBS[lib].make(x, act, w)[0]
        runs[lib]()  # warm (JAX compiles here)
    best = {k: math.inf for k in runs}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, run in runs.items():
            t = time.perf_counter()
            run()
            best[name] = min(best[name], time.perf_counter() - t)
    ns = {k: v / args.n * 1e9 for k, v in best.items()}
    doc = {
        "what": f"gk.chain_grad and peers, Mish, float32, N={args.n:g}, depth 3, weights 1, "
                f"x ~ 2 N(0, 1), best of {args.repeats} rounds taken in turn "
                "(benchmarks/mish_speed.py)",
        "machine": machine_info(), "threads": numba.get_num_threads(),
        "load_average_before": round(load, 2), "load_average_after": round(os.getloadavg()[0], 2),
        "ns_per_sample": {k: round(v, 3) for k, v in ns.items()},
        "ratios": {f"{peer}/{ours}": round(ns[peer] / ns[ours], 2)
                   for ours in ("gradkern", "gradkern-previous-mish")
                   for peer in ("jax", "torch-batched")},
    }
    print(json.dumps(doc, indent=1))
    with open(args.out, "w") as fh:
        json.dump(doc, fh, indent=1)
        fh.write("\n")
    print("wrote", args.out, file=sys.stderr)


if __name__ == "__main__":
    main()
