"""First-call time: three jobs from an empty kernel cache and again warm,
and JAX's cold time for the sweep, all measured in one run.

    python benchmarks/cold_start.py [--jobs sweep,vanishing,verify] [--base DIR]
        [--out benchmarks/results/cold-start.json]

Jobs (each run in its own subprocess, as a user starts them):

- ``sweep``: ``gradkern sweep --activations all --depths 3 --samples 1e6``;
- ``vanishing``: ``gradkern vanishing --seed 0`` (``make run``'s job);
- ``verify``: ``gradkern verify``;
- ``jax-sweep``: the same job as ``sweep`` with JAX, as
  ``benchmarks/test_bench_sweep.py`` writes it (jit of the draw +
  vmap(value_and_grad) + the reductions, per activation, 2**20 samples),
  compile included; JAX keeps no compiled code between processes unless
  told to, so every run of it is cold.

"cold" gets an empty ``NUMBA_CACHE_DIR``, "warm" the one the cold run
filled.  ``--base DIR`` runs the gradkern jobs a second time against another
checkout (``PYTHONPATH=DIR``; e.g. ``git worktree add DIR <commit>``), in
the same run, so that before and after are measured under the same load;
the warm sweep throughput (N = 1e7, Tanh and ReLU, float32, depth 3, best
of 3 in one process after a warm-up) is measured for both too.
``--workers-off`` adds a cold run of each job with the compile workers off
(``GRADKERN_COMPILE_WORKERS=0``), to tell their share from the rest.  The machine
is shared, so read the ratios (cold / JAX cold, cold / warm) more than the
seconds.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
#: the subprocesses' working directory: not a checkout, whose gradkern/ would
#: come first on ``python -c``'s path and hide the one under test
NEUTRAL = tempfile.gettempdir()

JOBS = {
    "sweep": ["sweep", "--activations", "all", "--depths", "3", "--samples", "1e6", "--quiet",
              "--backend", "cpu"],
    "vanishing": ["vanishing", "--seed", "0"],
    "verify": ["verify", "--quiet", "--seed", "0"],
}

CLI = "import sys; from gradkern.cli import main; sys.exit(main(sys.argv[1:]))"

JAX = r"""
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import numpy as np
import gradkern as gk
from test_bench_sweep import make_jax, CHUNK
for name in gk.ACTIVATIONS:
    make_jax(name)(CHUNK)
print(time.perf_counter() - t0)
"""

THROUGHPUT = r"""
import sys, time
import gradkern as gk
n = int(float(sys.argv[1]))
out = {}
for name in sys.argv[2].split(","):
    act = gk.activations.fresh(name)
    gk.sweep(act, 3, "normal:0,1", 1.0, 4096, backend="cpu")
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        gk.sweep(act, 3, "normal:0,1", 1.0, n, backend="cpu")
        best = min(best, time.perf_counter() - t)
    out[name] = n / best
print(repr(out))
"""


def _env(cache, src, extra=None):
    env = {**os.environ, "NUMBA_CACHE_DIR": cache, **(extra or {})}
    if src is not None:
        # no empty entry: that would put the working directory (/tmp, where
        # a stray bisect.py broke the standard library) on the path
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


def run_job(args, cache, src=None, extra=None):
    """Wall seconds of one CLI run in a fresh process (CalledProcessError if it fails)."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", CLI, *args], env=_env(cache, src, extra),
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          cwd=NEUTRAL)
    if done.returncode:
        print(done.stderr[-3000:], file=sys.stderr)
        done.check_returncode()
    return time.perf_counter() - t


def jax_cold():
    """Wall seconds of the JAX sweep in a fresh process, or None without JAX."""
    try:
        import jax  # noqa: F401
    except ImportError:
        return None
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", JAX, HERE], check=True, stdout=subprocess.DEVNULL,
                   cwd=NEUTRAL)
    return time.perf_counter() - t


def throughput(cache, src=None, n="1e7", names="Tanh,ReLU"):
    """Warm sweep samples/s per activation (the cache is warmed first)."""
    out = subprocess.run([sys.executable, "-c", THROUGHPUT, n, names], env=_env(cache, src),
                         check=True, capture_output=True, text=True, cwd=NEUTRAL).stdout
    return eval(out.strip().splitlines()[-1], {"__builtins__": {}})  # a dict of floats


def measure(job, src, label, extra=None, warm=True):
    with tempfile.TemporaryDirectory() as cache:
        cold = run_job(JOBS[job], cache, src, extra)
        hot = run_job(JOBS[job], cache, src, extra) if warm else None
    row = {"code": label, "job": job, "command": "gradkern " + " ".join(JOBS[job]),
           "cold_s": round(cold, 2)}
    if hot is not None:
        row.update(warm_s=round(hot, 2), cold_over_warm=round(cold / hot, 2))
    print(f"{label:18s} {job:10s} cold {cold:7.1f} s" +
          (f"  warm {hot:6.1f} s  cold/warm {cold / hot:5.2f}" if hot else ""), flush=True)
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", default="sweep,vanishing,verify")
    ap.add_argument("--base", help="another checkout to measure in the same run (before)")
    ap.add_argument("--no-jax", action="store_true")
    ap.add_argument("--workers-off", action="store_true",
                    help="also a cold run of each job with GRADKERN_COMPILE_WORKERS=0")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--out")
    args = ap.parse_args(argv)
    jobs = [j for j in args.jobs.split(",") if j]
    for j in jobs:
        if j not in JOBS:
            ap.error(f"unknown job {j!r}; valid: {', '.join(JOBS)}")
    codes = [("after", None)] + ([("before", os.path.abspath(args.base))] if args.base else [])
    rows, speed = [], {}
    jax_s = None if args.no_jax else jax_cold()
    if jax_s is not None:
        print(f"jax                sweep      cold {jax_s:7.1f} s", flush=True)
    # job by job, the codes back to back: the machine's load drifts
    for job in jobs:
        for label, src in codes:
            rows.append(measure(job, src, label))
        if args.workers_off:
            rows.append(measure(job, None, "after, no workers",
                                {"GRADKERN_COMPILE_WORKERS": "0"}, warm=False))
    if not args.no_throughput:
        for label, src in codes:
            with tempfile.TemporaryDirectory() as cache:
                speed[label] = throughput(cache, src)
            print(f"{label:7s} warm sweep samples/s: " +
                  ", ".join(f"{k} {v:.3g}" for k, v in speed[label].items()), flush=True)
    if jax_s is not None:
        for r in rows:
            if r["job"] == "sweep":
                r["cold_over_jax_cold"] = round(r["cold_s"] / jax_s, 2)
    table(rows, jax_s, speed)
    if args.out:
        from gradkern.bench.cpu import machine_info

        with open(args.out, "w") as fh:
            json.dump({"machine": machine_info(), "jax_sweep_cold_s": jax_s and round(jax_s, 2),
                       "results": rows, "warm_sweep_samples_per_s": speed,
                       "note": "one run, all rows under the same load; targets: sweep cold "
                               "<= 2x JAX cold, vanishing and verify cold <= 2x warm"},
                      fh, indent=1)
            fh.write("\n")


def table(rows, jax_s, speed):
    print()
    print(f"{'code':18s} {'job':10s} {'cold s':>8s} {'warm s':>8s} {'cold/warm':>10s} "
          f"{'cold/JAX':>9s}")
    for r in rows:
        vs = f"{r['cold_over_jax_cold']:9.2f}" if "cold_over_jax_cold" in r else f"{'':9s}"
        warm = f"{r['warm_s']:8.1f} {r['cold_over_warm']:10.2f}" if "warm_s" in r else \
            f"{'':8s} {'':10s}"
        print(f"{r['code']:18s} {r['job']:10s} {r['cold_s']:8.1f} {warm} {vs}")
    if jax_s is not None:
        print(f"{'jax':18s} {'sweep':10s} {jax_s:8.1f}")
    if len(speed) == 2:
        for name in speed["after"]:
            print(f"warm sweep {name}: after/before throughput "
                  f"{speed['after'][name] / speed['before'][name]:.3f}")


if __name__ == "__main__":
    main()
