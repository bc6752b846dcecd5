"""One command that validates a GPU: build, GPU tests, throughput, numba-cuda against native, sweeps.

    make gpu-check                                   # .venv with the cuda extra, then this
    make gpu-check GPU_PYTHON=python3                # an environment that has numba-cuda already
    python -m gradkern.bench.gpu_check [--out DIR] [--n 1e8] [--budget-s 420]
    python -m gradkern.bench.gpu_check --dry-run     # no GPU: numba-cuda's simulator, tiny sizes

Stages, in order, each timed and recorded even when it fails (a failed stage
never stops the next one, and nothing is left out silently):

1. ``environment``: device, driver, CUDA and package versions.
2. ``build``: ``make -C cuda`` (the native host and CUDA libraries, the native benchmark).
3. ``tests``: the GPU tests (numba-cuda and native-cuda parity against the CPU
   kernels and torch autograd: ``tests/test_cuda.py``, ``test_sweep_cuda.py``,
   ``test_native.py`` and the cuda cases of the parity files), run by pytest.
4. ``chain``: ``chain_grad(backend="cuda")`` on device arrays, every activation:
   bytes moved per second against the device-to-device copy bandwidth measured
   on the same GPU, and against torch batched autograd on that GPU.
5. ``native``: the native CUDA library's own benchmark (``cuda/build/bench``)
   at the same N; numba-cuda's time over native's, per activation and dtype.
6. ``sweep``: ``gradkern.sweep(backend="cuda")`` samples per second for ReLU
   and Tanh at depth 3.

Targets (the project's, for an H100/H200): >= 80% of the copy bandwidth,
>= 10x torch on the GPU, numba-cuda within 10% of native CUDA, sweeps >= 1e11
samples/s.  Results go to ``DIR/gpu-check.json`` and ``DIR/summary.md`` (the
table printed last), with the pytest log and the native benchmark's JSON
beside them.  The whole run keeps to ``--budget-s`` seconds of measurement
(default 420, so that set-up included it stays under 8 minutes): work that
does not fit is recorded as skipped for the budget, never dropped silently.

A dry run (``--dry-run``) exercises every stage on the CPU with numba-cuda's
simulator and tiny sizes, writes to a temporary folder unless ``--out`` is
given, and marks every figure as a simulator figure: it checks the script,
not a GPU.  Without ``--dry-run`` and without a GPU the script exits with
status 2 and writes nothing.
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

__all__ = ["TARGETS", "GPU_TESTS", "main", "run", "summary_table", "verdicts"]

#: The targets each figure is read against.
TARGETS = {
    "share_of_copy_bandwidth": 0.80,   # chain_grad bytes/s over the device's copy bytes/s
    "speedup_vs_torch": 10.0,          # samples/s over torch batched autograd on the same GPU
    "numba_over_native": 1.10,         # numba-cuda seconds over native CUDA seconds, at most
    "sweep_samples_per_s": 1e11,       # gradkern.sweep(backend="cuda"), depth 3
}

#: The test files with GPU cases, and the -k that keeps, in the parity files,
#: only the cuda/native-cuda cases (the CPU ones run in CI already).
GPU_TESTS = ("tests/test_cuda.py", "tests/test_sweep_cuda.py", "tests/test_native.py",
             "tests/test_parity.py", "tests/test_chain_bias.py", "tests/test_sweep_weights.py")
GPU_TESTS_K = "cuda or gpu or native"

REPO = Path(__file__).resolve().parents[2]
SWEEP_ACTIVATIONS = ("ReLU", "Tanh")


class Budget:
    """Seconds left of the run's measurement budget."""

    def __init__(self, seconds):
        self.deadline = time.monotonic() + seconds

    def left(self):
        return self.deadline - time.monotonic()


def _stage(record, name, fn, *args):
    """Run one stage; its result, status and seconds go into ``record["stages"]``."""
    t0 = time.perf_counter()
    entry = {"status": "ok"}
    try:
        entry["result"] = fn(*args)
    except _Skip as why:
        entry = {"status": "skipped", "why": str(why)}
    except Exception as exc:  # noqa: BLE001 - a failed stage is recorded, the next one runs
        entry = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    record["stages"][name] = entry
    print(f"[gpu-check] {name}: {entry['status']} ({entry['seconds']} s)"
          + (f" - {entry.get('why') or entry.get('error')}" if entry["status"] != "ok" else ""),
          flush=True)
    return entry.get("result")


class _Skip(Exception):
    """A stage that cannot run here (said why, recorded as skipped)."""


def _cmd(args, timeout=60, **kw):
    """stdout of a command, or None when it is missing or fails."""
    try:
        return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                              check=True, **kw).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None


def environment(dry_run):
    import numba
    import numpy as np

    env = {"python": platform.python_version(), "numpy": np.__version__,
           "numba": numba.__version__, "host": platform.node(),
           "cpu_count": os.cpu_count(), "dry_run": dry_run}
    for pkg in ("numba_cuda", "torch", "cupy", "jax"):
        try:
            from importlib.metadata import version

            env[pkg] = version(pkg.replace("_", "-"))
        except Exception:  # noqa: BLE001 - absent is a fact worth recording
            env[pkg] = None
    env["nvidia_smi"] = _cmd(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,"
                              "clocks.max.sm,clocks.max.mem", "--format=csv,noheader"])
    nvcc = _cmd([shutil.which("nvcc") or "nvcc", "--version"])
    env["nvcc"] = nvcc.splitlines()[-1] if nvcc else None
    from numba import cuda

    env["simulator"] = _simulator()
    try:
        dev = cuda.get_current_device()
        env["device"] = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        env["compute_capability"] = list(getattr(dev, "compute_capability", ()))
    except Exception as exc:  # noqa: BLE001 - recorded; the stages that need it fail by name
        env["device"] = f"none ({type(exc).__name__}: {exc})"
    try:
        import torch

        env["torch_cuda"] = torch.version.cuda
        env["torch_sees_gpu"] = torch.cuda.is_available()
    except ImportError:
        pass
    return env


def build(dry_run, budget):
    """``make -C cuda``: the host library, and with nvcc the CUDA library and bench."""
    if shutil.which("make") is None:
        raise RuntimeError("make not found")
    proc = subprocess.run(["make", "-C", str(REPO / "cuda")], capture_output=True, text=True,
                          timeout=max(30.0, min(300.0, budget.left())))
    tail = (proc.stdout + proc.stderr)[-2000:]
    if proc.returncode:
        raise RuntimeError(f"make -C cuda failed ({proc.returncode}):\n{tail}")
    built = sorted(p.name for p in (REPO / "cuda" / "build").glob("*") if p.is_file())
    return {"built": built, "log_tail": tail[-500:]}


def _junit_counts(path):
    """passed/failed/error/skipped counts and the names of failures from a JUnit file."""
    root = ET.parse(path).getroot()
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    failures, skip_reasons = [], {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        kinds = {child.tag for child in case}
        if "failure" in kinds or "error" in kinds:
            counts["failed" if "failure" in kinds else "error"] += 1
            failures.append(name)
        elif "skipped" in kinds:
            counts["skipped"] += 1
            why = case.find("skipped").get("message", "")[:120]
            skip_reasons[why] = skip_reasons.get(why, 0) + 1
        else:
            counts["passed"] += 1
    return counts, failures[:30], skip_reasons


def gpu_tests(out, dry_run, selection, budget):
    """The GPU test files under pytest, in parallel processes where pytest-xdist is there."""
    if budget.left() < 30:
        raise _Skip(f"budget: {budget.left():.0f} s left")
    junit = out / "tests.xml"
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
            f"--junitxml={junit}", "-o", "junit_family=xunit2"]
    args += list(selection) if selection else [*GPU_TESTS, "-k", GPU_TESTS_K]
    workers = min(8, os.cpu_count() or 1)
    if not dry_run and workers > 1 and _has_module("xdist"):
        args += ["-n", str(workers)]
    env = dict(os.environ)
    env.setdefault("PYTHONPATH", str(REPO))
    timeout = max(20.0, budget.left() * 0.5)
    try:
        proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                              env=env)
        log, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        log = (exc.stdout or b"").decode(errors="replace") if isinstance(exc.stdout, bytes) \
            else (exc.stdout or "")
        (out / "tests.log").write_text(log)
        raise RuntimeError(f"pytest passed its {timeout:.0f} s share of the budget") from None
    (out / "tests.log").write_text(log)
    if not junit.exists():
        raise RuntimeError(f"pytest wrote no report (exit {rc}): {log[-500:]}")
    counts, failures, skipped = _junit_counts(junit)
    return {"returncode": rc, **counts, "failures": failures, "skip_reasons": skipped,
            "command": " ".join(args[1:])}


def _has_module(name):
    from importlib.util import find_spec

    return find_spec(name) is not None


def chain_throughput(n, dtypes, acts, budget, torch_n):
    """chain_grad on device arrays per activation and dtype, against the copy
    bandwidth and torch batched autograd on the same GPU."""
    from ..activations import ACTIVATIONS, fresh
    from . import gpu

    bw = gpu.copy_bandwidth(nbytes=min(1 << 30, max(1 << 16, 8 * n)))
    rows, skipped = [], []
    for name in acts or ACTIVATIONS:
        # torch.nn's defaults, RReLU in training mode (its noise read from memory
        # and counted in the bytes), as the native benchmark runs it
        act = fresh(name)
        for dt in dtypes:
            if budget.left() < 20:
                skipped.append(f"{name}/{dt}")
                continue
            t = gpu.time_gradkern(act, n, dt, 3, repeats=10)
            moved = gpu.bytes_moved(n, 3, dt, act.stochastic)
            row = {"activation": name, "dtype": dt, "n": n, "seconds": t,
                   "samples_per_s": n / t, "GBps": moved / t / 1e9,
                   "share_of_copy_bandwidth": moved / t / bw}
            tt = gpu.time_torch(act, torch_n, dt, 3, repeats=3) if torch_n else None
            if tt is not None:
                row["torch_samples_per_s"] = torch_n / tt
                row["speedup_vs_torch"] = (n / t) / (torch_n / tt)
            rows.append(row)
    return {"copy_bandwidth_GBps": bw / 1e9, "rows": rows,
            "skipped_for_budget": skipped}


def native_vs_numba(out, n, chain, dry_run, budget):
    """The native library's benchmark at the same N; numba-cuda seconds over native's."""
    if dry_run:
        raise _Skip("dry run: the native CUDA benchmark needs a GPU")
    exe = REPO / "cuda" / "build" / "bench"
    if not exe.exists():
        raise RuntimeError(f"{exe} not built (the build stage failed or nvcc is missing)")
    if not chain or not chain.get("rows"):
        raise _Skip("no numba-cuda figures to compare with (the chain stage did not run)")
    if budget.left() < 20:
        raise _Skip(f"budget: {budget.left():.0f} s left")
    path = out / "native-cuda.json"
    proc = subprocess.run([str(exe), str(path), str(n), "3", "10"], capture_output=True,
                          text=True, timeout=max(20.0, budget.left() * 0.8))
    (out / "native-cuda.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode:
        raise RuntimeError(f"cuda/build/bench exit {proc.returncode}: {proc.stderr[-300:]}")
    native = {(r["activation"], r["dtype"]): r for r in json.loads(path.read_text())["results"]}
    rows = []
    for r in chain["rows"]:
        key = (r["activation"], "float" if r["dtype"] == "float32" else "double")
        if key in native:
            nat_s = native[key]["ms"] / 1e3
            rows.append({"activation": r["activation"], "dtype": r["dtype"],
                         "numba_s": r["seconds"], "native_s": nat_s,
                         "numba_over_native": r["seconds"] / nat_s,
                         "native_bit_identical_to_host": native[key]["bit_identical_to_host"]})
    return {"rows": rows}


def sweep_throughput(samples, chunk_blocks, budget):
    """samples/s of ``gradkern.sweep(backend="cuda")`` at depth 3, warm (compiled first)."""
    from .. import sweep

    rows = []
    for name in SWEEP_ACTIVATIONS:
        if budget.left() < 15:
            rows.append({"activation": name, "skipped": "budget"})
            continue
        kw = dict(depths=3, backend="cuda", chunk_blocks=chunk_blocks)
        sweep(name, samples=4096, **kw)  # compile and warm
        # a probe sizes the timed run to ~3 s (or ``samples``, if fewer)
        probe = min(samples, chunk_blocks * 4096)
        t0 = time.perf_counter()
        sweep(name, samples=probe, **kw)
        rate = probe / (time.perf_counter() - t0)
        n = int(min(samples, max(probe, rate * min(3.0, budget.left() / 4))))
        t0 = time.perf_counter()
        res = sweep(name, samples=n, **kw)
        dt = time.perf_counter() - t0
        rows.append({"activation": name, "depth": 3, "samples": n, "seconds": dt,
                     "samples_per_s": n / dt, "chunk_blocks": chunk_blocks,
                     "rows_returned": len(res)})
    return {"rows": rows}


def verdicts(record):
    """Each target's verdict: the worst measured value, and whether it meets the target."""
    st = record["stages"]
    out = {}

    def worst(stage, key, fn):
        rows = ((st.get(stage) or {}).get("result") or {}).get("rows") or []
        vals = [r[key] for r in rows if key in r]
        return fn(vals) if vals else None

    checks = (("share_of_copy_bandwidth", "chain", min, lambda v, t: v >= t),
              ("speedup_vs_torch", "chain", min, lambda v, t: v >= t),
              ("numba_over_native", "native", max, lambda v, t: v <= t),
              ("sweep_samples_per_s", "sweep", min, lambda v, t: v >= t))
    for key, stage, fn, ok in checks:
        rows_key = "samples_per_s" if key == "sweep_samples_per_s" else key
        v = worst(stage, rows_key, fn)
        out[key] = {"target": TARGETS[key], "worst": v,
                    "met": None if v is None else bool(ok(v, TARGETS[key]))}
    return out


def _fmt(v, pct=False):
    if v is None:
        return "-"
    if pct:
        return f"{100 * v:.0f}%"
    if abs(v) >= 1e5:
        return f"{v:.3g}"
    return f"{v:.2f}"


def summary_table(record):
    """The Markdown summary: device line, stages, per-activation figures, verdicts."""
    env = (record["stages"].get("environment") or {}).get("result") or {}
    lines = []
    if record["dry_run"]:
        lines.append("**DRY RUN on numba-cuda's simulator: these are not GPU figures.**")
        lines.append("")
    lines.append(f"gpu-check on {env.get('device', '?')} (cc {env.get('compute_capability')}), "
                 f"driver/smi: {env.get('nvidia_smi') or '-'}; numba {env.get('numba')}, "
                 f"numba-cuda {env.get('numba_cuda')}, torch {env.get('torch')}; "
                 f"{record['started']}")
    lines.append("")
    lines.append("| stage | status | seconds | note |")
    lines.append("|---|---|---|---|")
    for name, s in record["stages"].items():
        note = s.get("why") or s.get("error") or ""
        if name == "tests" and s["status"] == "ok":
            r = s["result"]
            note = (f"{r['passed']} passed, {r['failed']} failed, {r['error']} errors, "
                    f"{r['skipped']} skipped")
        lines.append(f"| {name} | {s['status']} | {s['seconds']} | {note.splitlines()[0][:100] if note else ''} |")
    chain = (record["stages"].get("chain") or {}).get("result")
    native = (record["stages"].get("native") or {}).get("result") or {}
    nat = {(r["activation"], r["dtype"]): r for r in native.get("rows", [])}
    if chain:
        lines += ["", f"chain_grad, depth 3, N = {chain['rows'][0]['n'] if chain['rows'] else '-'}; "
                  f"copy bandwidth {chain['copy_bandwidth_GBps']:.0f} GB/s (read + write)", "",
                  "| activation | dtype | samples/s | GB/s | of copy | x torch | numba/native |",
                  "|---|---|---|---|---|---|---|"]
        for r in chain["rows"]:
            nr = nat.get((r["activation"], r["dtype"]), {})
            lines.append(f"| {r['activation']} | {r['dtype']} | {_fmt(r['samples_per_s'])} | "
                         f"{_fmt(r['GBps'])} | {_fmt(r['share_of_copy_bandwidth'], pct=True)} | "
                         f"{_fmt(r.get('speedup_vs_torch'))} | {_fmt(nr.get('numba_over_native'))} |")
    sweep_rows = ((record["stages"].get("sweep") or {}).get("result") or {}).get("rows") or []
    if sweep_rows:
        lines += ["", "| sweep | samples | seconds | samples/s |", "|---|---|---|---|"]
        for r in sweep_rows:
            if "skipped" in r:
                lines.append(f"| {r['activation']} | skipped ({r['skipped']}) | - | - |")
            else:
                lines.append(f"| {r['activation']}, depth 3 | {r['samples']:.3g} | "
                             f"{r['seconds']:.2f} | {r['samples_per_s']:.3g} |")
    lines += ["", "| target | wanted | worst measured | met |", "|---|---|---|---|"]
    for key, v in record["verdicts"].items():
        wanted = ("<= " if key == "numba_over_native" else ">= ") + _fmt(v["target"])
        met = {True: "yes", False: "NO", None: "not measured"}[v["met"]]
        lines.append(f"| {key} | {wanted} | {_fmt(v['worst'])} | {met} |")
    return "\n".join(lines) + "\n"


def run(out, *, dry_run=False, n=10**8, dtypes=("float32", "float64"), acts=None,
        sweep_samples=10**11, chunk_blocks=1 << 19, budget_s=420.0, build_native=True,
        test_selection=None, torch_n=None):
    """All stages; writes ``out/gpu-check.json`` and ``out/summary.md``; returns the record."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    budget = Budget(budget_s)
    record = {"dry_run": dry_run, "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "targets": TARGETS, "budget_s": budget_s, "stages": {}}
    _stage(record, "environment", environment, dry_run)
    if build_native:
        _stage(record, "build", build, dry_run, budget)
    else:
        record["stages"]["build"] = {"status": "skipped", "why": "--no-build", "seconds": 0.0}
    _stage(record, "tests", gpu_tests, out, dry_run, test_selection, budget)
    torch_n = n // 10 if torch_n is None else torch_n  # torch's graph needs ~20x the memory
    chain = _stage(record, "chain", chain_throughput, n, dtypes, acts, budget, torch_n)
    _stage(record, "native", native_vs_numba, out, n, chain, dry_run, budget)
    _stage(record, "sweep", sweep_throughput, sweep_samples, chunk_blocks, budget)
    record["verdicts"] = verdicts(record)
    (out / "gpu-check.json").write_text(json.dumps(record, indent=1, default=str))
    (out / "summary.md").write_text(summary_table(record))
    return record


def _simulator():
    from ..chain.cuda import _simulated

    return _simulated()


def _enable_simulator():
    """Switch numba-cuda to its simulator (numba reads the variable when its
    config loads: reload it if numba is imported already, as gradkern may)."""
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    if "numba.cuda" in sys.modules and not _simulator():
        raise SystemExit("gpu-check --dry-run: numba.cuda was imported before the simulator "
                         "could be enabled; run it as its own process")
    if "numba" in sys.modules:  # numba's own config too; numba-cuda's loads with numba.cuda
        from numba.core import config

        config.reload_config()


def _gpu_present():
    from numba import cuda

    try:
        return cuda.is_available() and not _simulator()
    except Exception:  # noqa: BLE001 - any driver trouble means no usable GPU
        return False


def _positive_int(text):
    v = float(text)
    if not (v >= 1 and v == int(v)):
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(v)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m gradkern.bench.gpu_check",
                                description=__doc__.splitlines()[0])
    p.add_argument("--out", help="output folder (default benchmarks/results/gpu-check-<device>; "
                   "a dry run: a new temporary folder)")
    p.add_argument("--dry-run", action="store_true",
                   help="no GPU needed: numba-cuda's simulator and tiny sizes; checks the script")
    p.add_argument("--n", type=_positive_int, default=None,
                   help="chain samples per call (default 1e8; dry run 2048)")
    p.add_argument("--dtypes", default="float32,float64")
    p.add_argument("--activations", default="", help="comma-separated names (default all)")
    p.add_argument("--sweep-samples", type=_positive_int, default=None,
                   help="most samples per timed sweep (default 1e11; dry run 8192)")
    p.add_argument("--chunk-blocks", type=_positive_int, default=None,
                   help="sweep chunk in blocks of 4096 samples (default 2**19: ~2e9 samples, "
                        "about 4 waves of threads on a 132-SM GPU; dry run 2)")
    p.add_argument("--budget-s", type=float, default=420.0,
                   help="seconds of measurement after set-up (default 420)")
    p.add_argument("--no-build", action="store_true", help="skip make -C cuda")
    p.add_argument("--tests", default="",
                   help="pytest node ids to run instead of the GPU test files (comma-separated)")
    a = p.parse_args(argv)

    dtypes = tuple(s for s in a.dtypes.split(",") if s)
    for dt in dtypes:
        if dt not in ("float32", "float64"):
            p.error(f"--dtypes: unknown dtype {dt!r}; valid: float32, float64")
    acts = [s for s in a.activations.split(",") if s] or None
    if acts:
        from ..activations import ACTIVATIONS

        bad = [s for s in acts if s not in ACTIVATIONS]
        if bad:
            p.error(f"--activations: unknown {bad}; valid: {', '.join(ACTIVATIONS)}")
    if a.dry_run:
        _enable_simulator()
    elif not _gpu_present():
        print("gpu-check: no CUDA GPU here (numba.cuda.is_available() is False): nothing "
              "measured, nothing written. Use --dry-run to check the script on the simulator.",
              file=sys.stderr)
        return 2
    out = a.out
    if out is None:
        if a.dry_run:
            out = tempfile.mkdtemp(prefix="gradkern-gpu-check-dry-")
        else:
            from numba import cuda

            name = cuda.get_current_device().name
            name = name.decode() if isinstance(name, bytes) else str(name)
            out = REPO / "benchmarks" / "results" / ("gpu-check-" + name.replace(" ", "_"))
    small = a.dry_run
    record = run(out, dry_run=a.dry_run, n=a.n or (2048 if small else 10**8), dtypes=dtypes,
                 acts=acts, sweep_samples=a.sweep_samples or (8192 if small else 10**11),
                 chunk_blocks=a.chunk_blocks or (2 if small else 1 << 19),
                 budget_s=a.budget_s, build_native=not a.no_build,
                 test_selection=[s for s in a.tests.split(",") if s] or None,
                 torch_n=0 if small else None)
    print(f"\nwritten {Path(out) / 'gpu-check.json'} and summary.md\n")
    print(summary_table(record), end="")
    failed = [k for k, s in record["stages"].items() if s["status"] == "failed"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
