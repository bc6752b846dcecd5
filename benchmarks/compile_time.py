"""Compile-time budget: the first chain_grad call in a fresh process, with a cold
and with a warm Numba disk cache, ``import gradkern`` included; and where a
kernel's compile time goes.

    python benchmarks/compile_time.py [--activations all] [--out benchmarks/results/compile-time.json]
    python benchmarks/compile_time.py --breakdown [--base DIR] [--out FILE]
    python benchmarks/compile_time.py --jobs [--out benchmarks/results/compile-jobs.json]

Each measurement is its own subprocess; "cold" gets an empty NUMBA_CACHE_DIR,
"warm" the one the cold run filled.  Small N (the serial build) and large N
(the parallel build) are separate kernels, so both are timed.

``--breakdown``: per kernel of a small sweep (one per activation) and of
small-N ``chain_grad`` calls, from an empty cache in one fresh process
(compile workers off), Numba's own timers: the whole compile
(``compiler_lock``), LLVM's share (``llvm_lock``: optimisation and machine
code, the parfor body's included) and the seconds of the main pipeline
passes (type inference, which includes compiling the scalar functions a
kernel first calls; IR inlining; parfor passes and parfor lowering; native
lowering).  ``--base DIR`` measures another checkout in the same run.

``--jobs``: what ``gradkern vanishing`` and ``gradkern verify`` compile,
each from an empty cache in a fresh process with the compile workers off:
how many kernels, their compile seconds in all (Numba's ``compiler_lock``
timers) and the job's wall time.  And would one kernel for many activations
compile faster than one kernel each?  The serial chain kernels of the seed
notebook's activations (vanishing's; one per distinct pair of scalar
functions) one after another, against one per-layer kernel
(``chain.layers.LayerPlan``) holding all of them as slots, the layer's slot
chosen at run time.
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


BREAKDOWN = r"""
import json, os, sys, tempfile, time
import numpy as np
import gradkern as gk
from gradkern.sweeps import cpu as scpu
from gradkern.chain import cpu as ccpu

GROUPS = {"type_inference": ("nopython_type_inference",),
          "ir_inlining": ("inline_inlinables", "inline_closure_likes"),
          "parfor": ("parfor_pass", "parfor_fusion_pass", "parfor_prelowering_pass",
                     "native_parfor_lowering"),
          "native_lowering": ("native_lowering",)}


def passes(kernel):
    out = []
    for sig in kernel.signatures:
        md = kernel.get_metadata(sig)
        row = {k: round(v, 3) for k, v in md["timers"].items()}
        run = {}
        for pipe in md["pipeline_times"].values():
            for name, t in pipe.items():
                name = name.split("_", 1)[1]
                run[name] = run.get(name, 0.0) + t.run
        for group, names in GROUPS.items():
            row[group] = round(sum(run.get(n, 0.0) for n in names), 3)
        out.append(row)
    return out


rows = []
for job in sys.argv[2].split(","):
    for name in sys.argv[1].split(","):
        act = gk.activations.fresh(name)
        table = scpu._KERNELS if job == "sweep" else ccpu._KERNELS
        before = set(table)
        t = time.perf_counter()
        if job == "sweep":
            gk.sweep(act, 3, "normal:0,1", 1.0, 4096, backend="cpu")
        else:
            gk.chain_grad(np.zeros(1000, np.float32), act, np.ones(3, np.float32))
        wall = time.perf_counter() - t
        for key in set(table) - before:
            for row in passes(table[key]):
                rows.append({"job": job, "activation": name, "wall_s": round(wall, 3), **row})
print(json.dumps(rows))
"""


ONE_KERNEL = r"""
import json, sys, time
import numpy as np
import gradkern as gk
from gradkern.activations import fresh
from gradkern.chain.cpu import get_layered_kernel
from gradkern.chain.layers import LayerPlan
from gradkern.experiments import SEED_ACTIVATIONS

acts, seen = [], set()
for name in SEED_ACTIVATIONS:
    act = fresh(name)
    if (*act.ops(), act.stochastic) not in seen:
        seen.add((*act.ops(), act.stochastic))
        acts.append(act)
n = 200
x = np.linspace(-3, 3, n, dtype=np.float32)
w = np.ones(3, np.float32)
t = time.perf_counter()
if sys.argv[1] == "separate":
    for act in acts:
        gk.chain_grad(x, act, w, seed=0 if act.stochastic else None)
else:
    plan = LayerPlan(acts, False)
    kernel = get_layered_kernel(plan, parallel=False)
    noise = np.ones((n, 3), np.float32)
    out = (np.empty(n, np.float32), np.empty((n, 3), np.float32), np.empty(n, np.float32),
           np.empty((0, 3), np.float32))
    kernel(x, w, np.zeros(3, np.float32), np.zeros(3, np.int64), plan.slot_params(np.float32),
           noise, *out, 1)
print(json.dumps({"kernels": len(acts), "seconds": time.perf_counter() - t}))
"""


JOB_TALLY = r"""
import json, sys, time
t0 = time.perf_counter()
from gradkern.cli import main
from gradkern.chain import cpu as ccpu
try:
    main(sys.argv[1:])
except SystemExit:
    pass
wall = time.perf_counter() - t0
sigs = [k.get_metadata(s)["timers"].get("compiler_lock", 0.0)
        for k in ccpu._KERNELS.values() for s in k.signatures]
print(json.dumps({"kernels": len(sigs), "compile_s": sum(sigs), "wall_s": wall}))
"""

JOBS = {"vanishing": ["vanishing", "--seed", "0"], "verify": ["verify", "--quiet", "--seed", "0"]}


def _cold_json(script, *args, src=None):
    """The JSON that ``script`` prints last, run as ``python -c script args``
    in a fresh process with an empty cache and the compile workers off
    (``src``: another checkout's gradkern instead)."""
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "GRADKERN_COMPILE_WORKERS": "0"}
        if src:
            # no empty entry: that would put the working directory (/tmp, where
            # a stray bisect.py broke the standard library) on the path
            env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        # cwd: a checkout's gradkern/ would come first on ``python -c``'s path
        out = subprocess.run([sys.executable, "-c", script, *args], env=env,
                             capture_output=True, text=True, check=True,
                             cwd=tempfile.gettempdir()).stdout
    return json.loads(out.strip().splitlines()[-1])


def job_tally(job):
    """Kernels, compile seconds and wall seconds of ``job`` (a key of JOBS)
    from an empty cache, compile workers off."""
    return _cold_json(JOB_TALLY, *JOBS[job])


def one_kernel():
    """Seconds to compile the seed activations' chain kernels one each, and
    as one kernel with a slot each (fresh processes, empty caches)."""
    return {how: _cold_json(ONE_KERNEL, how) for how in ("separate", "one")}


def breakdown(names, src=None):
    return _cold_json(BREAKDOWN, ",".join(names), "sweep,chain", src=src)


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
    ap.add_argument("--breakdown", action="store_true",
                    help="where each kernel's compile time goes (Numba's pass timers)")
    ap.add_argument("--base", help="with --breakdown: another checkout, measured in the same run")
    ap.add_argument("--jobs", action="store_true",
                    help="what vanishing and verify compile; one kernel each or one shared")
    args = ap.parse_args(argv)
    names = list(gk.ACTIVATIONS) if args.activations == "all" else args.activations.split(",")
    if args.breakdown:
        return main_breakdown(names, args)
    if args.jobs:
        return main_jobs(args)
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


def main_breakdown(names, args):
    from gradkern.bench.cpu import machine_info

    result = {"machine": machine_info(), "activations": names,
              "note": "seconds per kernel from an empty cache, one process per code, "
                      "compile workers off; the first kernel of a process also compiles "
                      "the shared scalar functions (type_inference)"}
    for label, src in [("after", None)] + ([("before", os.path.abspath(args.base))]
                                           if args.base else []):
        rows = breakdown(names, src)
        result[label] = rows
        for r in rows:
            print(f"{label:6s} {r['job']:5s} {r['activation']:11s} compile "
                  f"{r['compiler_lock']:5.2f} s: LLVM {r['llvm_lock']:5.2f}, types "
                  f"{r['type_inference']:5.2f}, IR inlining {r['ir_inlining']:5.2f}, parfor "
                  f"{r['parfor']:5.2f}, lowering {r['native_lowering']:5.2f}", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")


def main_jobs(args):
    from gradkern.bench.cpu import machine_info

    result = {"machine": machine_info(),
              "what": "from an empty cache, fresh processes, compile workers off: each job's "
                      "chain kernels (count, compile seconds in all, the job's wall seconds); "
                      "and the seed notebook's activations' float32 serial chain kernels "
                      "compiled one each against one per-layer kernel holding them all as slots",
              "jobs": {}}
    for job in JOBS:
        r = result["jobs"][job] = {k: round(v, 2) for k, v in job_tally(job).items()}
        print(f"{job}: {r['kernels']} kernels, {r['compile_s']:.2f} s compiling, "
              f"{r['wall_s']:.2f} s in all", flush=True)
    res = one_kernel()
    sep, one = res["separate"], res["one"]
    result.update(one_each_s=round(sep["seconds"], 2), one_kernel_s=round(one["seconds"], 2),
                  one_kernel_slots=one["kernels"])
    print(f"{sep['kernels']} chain kernels (float32, serial build): one each "
          f"{sep['seconds']:.2f} s, one kernel with {one['kernels']} slots {one['seconds']:.2f} s")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
