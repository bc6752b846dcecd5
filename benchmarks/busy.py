"""chain_grad on a quiet and on a busy machine, for each threading layer.

    python benchmarks/busy.py [--out benchmarks/results/busy-machine.json]

"Busy" is two other CPU-bound processes (Python busy loops) on the machine;
"quiet" is none.  Each configuration -- threading layer (tbb, the default,
or GNU OpenMP) x threads (all cores, or 1) -- runs in its own process, and
times the median of repeated ``chain_grad`` calls (ReLU, depth 3, float32)
at N = 1e3 .. 1e7, with a little other NumPy work between calls as a loop
in the user's code would do: back-to-back calls hide the cost of waking
threads that went to sleep.  The figures to read are the ratios in the same
run: busy parallel / busy single-thread (the target is <= 2 at every N) and
quiet parallel / quiet GNU OpenMP (today's speed kept).  GNU OpenMP's stall is
bimodal -- a process either loses a time slice per call or never, depending on
where the scheduler puts its threads -- so each configuration runs in several
processes and the slowest process is reported beside the median.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

SIZES = [10**3, 10**4, 10**5, 10**6, 10**7]

PROBE = r"""
import json, statistics, sys, time
import numpy as np
import gradkern as gk
from gradkern._numba import threads as _threads

out = {}
for n in json.loads(sys.argv[1]):
    x = np.random.default_rng(0).standard_normal(n).astype(np.float32)
    other = np.linspace(0, 1, 1000)
    gk.chain_grad(x, "ReLU", [1.0, 1.0, 1.0])  # compile / load, wake the threads
    reps = 200 if n <= 10**5 else (40 if n <= 10**6 else 10)
    times = []
    for _ in range(reps):
        np.sin(other)  # the caller's own work between calls
        t = time.perf_counter()
        gk.chain_grad(x, "ReLU", [1.0, 1.0, 1.0])
        times.append(time.perf_counter() - t)
    out[n] = statistics.median(times)
print(json.dumps({"median_s": out, "layer": _threads.layer()}))
"""

CONFIGS = {  # name -> environment
    "tbb": {},
    "tbb-1thread": {"NUMBA_NUM_THREADS": "1"},
    "omp": {"NUMBA_THREADING_LAYER": "omp"},
}


def _probe(env_extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_THREADING_LAYER", "NUMBA_NUM_THREADS")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", PROBE, json.dumps(SIZES)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _load(n_procs):
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"])
             for _ in range(n_procs)]
    time.sleep(1.0)
    return procs


def run(rounds):
    """{"situation/config": {"median_s": {N: s}, "layer": ...}}: for each N the
    median over ``rounds`` processes of each one's median call (the machine's
    noise moves single runs by ~10%)."""
    runs = {}
    for situation, n_load in (("quiet", 0), ("busy", 2)):
        procs = _load(n_load)
        try:
            for _ in range(rounds):
                for name, env in CONFIGS.items():  # interleaved: drift hits all alike
                    r = _probe(env)
                    runs.setdefault(f"{situation}/{name}", []).append(r)
                    print(f"{situation:5s} {name:12s} layer {r['layer']:9s} " + "  ".join(
                        f"{int(n):.0e}: {t * 1e3:8.3f} ms" for n, t in r["median_s"].items()),
                        flush=True)
        finally:
            for p in procs:
                p.kill()
                p.wait()
    return {key: {"layer": rs[0]["layer"],
                  "median_s": {n: statistics.median(r["median_s"][n] for r in rs)
                               for n in rs[0]["median_s"]},
                  "worst_s": {n: max(r["median_s"][n] for r in rs) for n in rs[0]["median_s"]}}
            for key, rs in runs.items()}


def summarise(results):
    rows = []
    for n in SIZES:
        key = str(n)

        def t(name, which="median_s"):
            return results[name][which][key]

        rows.append({
            "n": n,
            "quiet_tbb_ms": t("quiet/tbb") * 1e3, "quiet_omp_ms": t("quiet/omp") * 1e3,
            "quiet_1thread_ms": t("quiet/tbb-1thread") * 1e3,
            "busy_tbb_ms": t("busy/tbb") * 1e3, "busy_omp_ms": t("busy/omp") * 1e3,
            "busy_1thread_ms": t("busy/tbb-1thread") * 1e3,
            "busy_tbb_over_1thread": t("busy/tbb") / t("busy/tbb-1thread"),
            "busy_omp_over_1thread": t("busy/omp") / t("busy/tbb-1thread"),
            # the slowest process of each: GNU OpenMP's stall is bimodal (a
            # process either waits a time slice per call or not at all)
            "busy_tbb_worst_over_1thread": t("busy/tbb", "worst_s") / t("busy/tbb-1thread"),
            "busy_omp_worst_over_1thread": t("busy/omp", "worst_s") / t("busy/tbb-1thread"),
            "quiet_tbb_over_omp": t("quiet/tbb") / t("quiet/omp"),
        })
    return rows


def main(argv=None):
    from gradkern.bench.cpu import machine_info

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out")
    ap.add_argument("--rounds", type=int, default=5, help="processes per configuration")
    args = ap.parse_args(argv)
    results = run(args.rounds)
    rows = summarise(results)
    print("\n       N  busy tbb/1-thread (worst)  busy omp/1-thread (worst)  quiet tbb/omp")
    for r in rows:
        print(f"{r['n']:8.0e}  {r['busy_tbb_over_1thread']:10.2f} ({r['busy_tbb_worst_over_1thread']:6.2f})"
              f"     {r['busy_omp_over_1thread']:10.2f} ({r['busy_omp_worst_over_1thread']:6.2f})"
              f"     {r['quiet_tbb_over_omp']:13.2f}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"machine": machine_info(), "workload": "chain_grad ReLU depth 3 float32, "
                       "median of repeated calls; busy = 2 other CPU-bound processes; "
                       f"median over {args.rounds} processes per configuration",
                       "summary": rows,
                       "layers": {k: v["layer"] for k, v in results.items()}}, fh, indent=1)


if __name__ == "__main__":
    main()
