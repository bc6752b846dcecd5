"""Compile-time budget: the first chain_grad call in a fresh process, with a cold
and with a warm Numba disk cache, ``import gradkern`` included.

    python benchmarks/compile_time.py [--activations all] [--out benchmarks/results/compile-time.json]

Each measurement is its own subprocess; "cold" gets an empty NUMBA_CACHE_DIR,
"warm" the one the cold run filled.  Small N (the serial build) and large N
(the parallel build) are separate kernels, so both are timed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

PROBE = r"""
import time, sys
t0 = time.perf_counter()
import numpy as np
import gradkern as gk
t1 = time.perf_counter()
n = int(sys.argv[2])
x = np.linspace(-3, 3, n, dtype=np.float32)
gk.chain_grad(x, sys.argv[1], [1.0, 1.0, 1.0])
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
"""


def measure(name, n, cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_dir}
    out = subprocess.run([sys.executable, "-c", PROBE, name, str(n)], env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]), float(out[1])


def main(argv=None):
    import gradkern as gk
    from gradkern.bench.cpu import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--activations", default="Tanh,ReLU,ELU,Softplus")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    names = list(gk.ACTIVATIONS) if args.activations == "all" else args.activations.split(",")
    rows = []
    for name in names:
        for n, build in ((1000, "serial"), (10**6, "parallel")):
            with tempfile.TemporaryDirectory() as cache:
                imp_c, call_c = measure(name, n, cache)
                imp_w, call_w = measure(name, n, cache)
            rows.append({"activation": name, "n": n, "build": build,
                         "cold_import_s": imp_c, "cold_first_call_s": call_c,
                         "warm_import_s": imp_w, "warm_first_call_s": call_w,
                         "warm_total_s": imp_w + call_w})
            r = rows[-1]
            print(f"{name:11s} {build:8s} cold: import {imp_c:.2f} s + first call {call_c:.2f} s | "
                  f"warm: import {imp_w:.2f} s + first call {call_w:.3f} s = {r['warm_total_s']:.2f} s",
                  flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"machine": machine_info(), "results": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
