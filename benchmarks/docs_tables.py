"""Rewrite the generated regions of README.md and docs/*.md.

    python benchmarks/docs_tables.py            # rewrite every region in place
    python benchmarks/docs_tables.py --check    # exit 1 and show a diff if one is stale

A region is the text between ``<!-- generated: NAME -->`` and
``<!-- end generated -->``; NAME is one of :data:`REGIONS`.  Each comes from a
saved result (``benchmarks/results/*.json``, ``docs/sweep/run-1e9/``), from
gradkern's registries (activations, backends, the CLI's parser), or from a
fast command whose output is the same on every machine (gradkern's own
numbers, a piecewise-linear chain whose autograd is exact).  Nothing that
depends on the machine the check runs on is generated, so the check passes on
any machine with the environment `make` builds.

``tests/test_docs.py`` runs ``--check``.
"""
import argparse
import csv
import difflib
import functools
import json
import math
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
RUN_1E9 = ROOT / "docs" / "sweep" / "run-1e9"
sys.path.insert(0, str(HERE))  # report.py and sweep_report.py, the table makers

import report  # noqa: E402
import sweep_report  # noqa: E402

BEGIN = re.compile(r"<!-- generated: ([\w-]+) -->\n")
END = "<!-- end generated -->"
REGIONS = {}


def region(name):
    """Register a function returning the markdown of region ``name``."""
    def register(fn):
        REGIONS[name] = functools.cache(fn)
        return fn
    return register


# ---------------------------------------------------------------------------
# helpers


def _load(name):
    with open(RESULTS / name) as fh:
        return json.load(fh)


def _machine(m):
    """One line naming the machine of a results file."""
    parts = [m.get("cpu", "unknown CPU"), f"{m['cores']} cores" if "cores" in m else None]
    versions = [f"{k} {m[k]}" for k in ("numba", "torch", "jax") if k in m]
    threads = m.get("numba_threads")
    line = ", ".join(p for p in parts if p)
    if versions:
        line += "; " + ", ".join(versions)
    if threads:
        line += f"; {threads} threads"
    return line


def _ratio_range(values, suffix="x"):
    lo, hi = min(values), max(values)
    return f"{lo:.1f}{suffix}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}-{hi:.1f}{suffix}"


def _sci(v):
    """3.4e8, the README's compact form."""
    mant, exp = f"{v:.1e}".split("e")
    return f"{mant}e{int(exp)}"


def _sci_range(values):
    lo, hi = _sci(min(values)), _sci(max(values))
    return lo if lo == hi else f"{lo}-{hi}"


def _pct_range(values):
    lo, hi = (f"{100 * v:.0f}" for v in (min(values), max(values)))
    return f"{lo}%" if lo == hi else f"{lo}-{hi}%"


def _fmt_n(n):
    return f"1e{round(math.log10(n))}" if n > 0 and 10 ** round(math.log10(n)) == n else str(n)


def _md_table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _gradkern():
    import gradkern

    return gradkern


@functools.cache
def _cpu_rows(dtype):
    rows, machine = report.load([RESULTS / f"cpu-1e7-{dtype}.json"])
    by_act = {}
    for r in rows:
        by_act.setdefault(r["activation"], {})[r["lib"]] = r["samples_per_s"]
    return by_act, machine


@functools.cache
def _scaling():
    rows, machine = report.load([RESULTS / "cpu-scaling-float32.json"])
    table = {}
    for r in rows:
        table.setdefault((r["activation"], r["n"]), {})[r["lib"]] = r["samples_per_s"]
    return table, machine


PEERS = ("jax", "torch-batched", "torch-func", "torch-compile")


def _losses(threshold=1.05):
    """(activation, N, peer, ratio) where gradkern is below ``threshold`` x a peer."""
    table, _ = _scaling()
    out = []
    for (act, n), libs in sorted(table.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        ours = libs.get("gradkern-cpu")
        for peer in PEERS:
            if ours and libs.get(peer) and ours / libs[peer] < threshold:
                out.append((act, n, peer, ours / libs[peer]))
    return out


# ---------------------------------------------------------------------------
# README


def _signature(spec):
    """``k=default, ...`` as torch.nn's constructor has it; a parameter without
    a default (Threshold's) by its name alone."""
    gk = _gradkern()
    return ", ".join(k if v is gk.activations.REQUIRED else f"{k}={v!r}"
                     for k, v in spec.defaults.items())


@region("readme-activations")
def readme_activations():
    gk = _gradkern()

    def entry(spec):
        return f"`{spec.name}({_signature(spec)})`"

    pl = [entry(s) for s in gk.ACTIVATIONS.values() if s.piecewise_linear]
    smooth = [entry(s) for s in gk.ACTIVATIONS.values() if not s.piecewise_linear]
    text = (f"{len(gk.ACTIVATIONS)} activations (`gk.ACTIVATIONS`), with torch.nn's names, "
            f"parameters and defaults. Bit-identical to torch ({len(pl)}: piecewise-linear, "
            f"and Hardswish): {', '.join(pl)}. "
            f"Smooth ({len(smooth)}): {', '.join(smooth)}.")
    return textwrap.fill(text, 96, break_long_words=False, break_on_hyphens=False)


@region("readme-cli")
def readme_cli():
    rows = [[f"`gradkern {name}`", help_] for name, help_, _ in _commands()]
    return _md_table(["command", "what it does"], rows)


@region("cli-chain-example")
def cli_chain_example():
    return "```\n$ " + " ".join(CHAIN_EXAMPLE) + "\n" + _run_cli(CHAIN_EXAMPLE[1:]) + "```"


#: a piecewise-linear chain: gradkern and autograd are exact, so the output is
#: the same on every machine
CHAIN_EXAMPLE = ("gradkern", "chain", "--activation", "LeakyReLU", "--param",
                 "negative_slope=0.1", "--x", "-2", "--weights", "1,-0.5,2")


def _run_cli(args):
    env = {**os.environ, "COLUMNS": "100"}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    out = subprocess.run([sys.executable, "-m", "gradkern", *args], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return out.stdout


@region("readme-performance")
def readme_performance():
    gk = _gradkern()
    by_act, machine = _cpu_rows("float32")
    groups = [("piecewise-linear", [n for n, s in gk.ACTIVATIONS.items() if s.piecewise_linear]),
              ("smooth", [n for n, s in gk.ACTIVATIONS.items() if not s.piecewise_linear])]
    rows = []
    for label, names in groups:
        libs = [by_act[n] for n in names if n in by_act]
        ours = [v["gradkern-cpu"] for v in libs]
        rows.append([f"{label} ({len(libs)})", _sci_range(ours),
                     _ratio_range([_ratio(v, "jax") for v in libs]),
                     _ratio_range([_ratio(v, "jax-grad") for v in libs]),
                     _ratio_range([_ratio(v, "torch-batched") for v in libs]),
                     _pct_range([_ratio(v, "memory-floor") for v in libs])])
    table = _md_table(["N = 1e7, float32, depth 3", "gradkern samples/s", "x JAX",
                       "x JAX grad (df/dw only)", "x torch batched", "of memory floor"], rows)
    slow = sorted(((v["gradkern-cpu"] / v["torch-batched"], n) for n, v in by_act.items()),
                  key=lambda t: t[0])[:2]
    losses = _losses()
    lose = "; ".join(f"{a} {r:.2f}x {p} at N = {_fmt_n(n)}" for a, n, p, r in losses)
    sweep = _sweep_rates("sweep-cpu-1e8.json")
    sweep_ratio = _ratio_range([r["gradkern"] / r["jax"] for r in sweep.values()])
    lines = [
        f"Machine: {_machine(machine)}.{_note('float32')}", "", table, "",
        f"- **Where it loses or ties** (below 1.05x its best peer; Tanh and ReLU, N = 1e3 to "
        f"1e8, against JAX and torch): {lose}.",
        f"- Slowest against torch batched autograd: "
        f"{', '.join(f'{n} ({r:.1f}x)' for r, n in slow)} "
        "([why](docs/performance.md#the-chain-gradients-n--1e7)).",
        f"- Sweeps (statistics of 1e8 samples, inputs drawn in the kernel): {sweep_ratio} "
        "JAX for every activation.",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# the CLI


def _commands():
    """(name, one-line help, parser) of each gradkern command, in the parser's order."""
    os.environ["COLUMNS"] = "100"  # argparse wraps usage lines at the terminal's width
    from gradkern import cli

    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in subs._choices_actions}
    return [(name, helps[name], p) for name, p in subs.choices.items()]


@region("cli-usage")
def cli_usage():
    out = []
    for name, help_, p in _commands():
        out += [f"### `gradkern {name}`", "", f"{help_[0].upper()}{help_[1:]}.", "",
                "```", f"$ gradkern {name} --help", p.format_help().rstrip(), "```", ""]
    return "\n".join(out).rstrip()


# ---------------------------------------------------------------------------
# activations


def _kink_values(act):
    """gradkern's derivative at each kink in float32 and float64 (torch's values:
    tests/test_activations.py checks them against torch)."""
    ks = act.kinks()
    out = []
    for dt in (np.float32, np.float64):
        d = act.derivative(np.array(ks, dt))
        out.append([str(v) for v in d])
    return ks, out


@region("activations-table")
def activations_table():
    gk = _gradkern()
    rows = []
    for name, spec in gk.ACTIVATIONS.items():
        args = _signature(spec) or "—"
        act = gk.activations.fresh(name)
        kinks = ", ".join(f"{k:g}" for k in act.kinks()) or "—"
        if any(v is gk.activations.REQUIRED for v in spec.defaults.values()):
            kinks += f" (`{act!r}`)"
        rule = "bit-identical" if spec.piecewise_linear else "close"
        rows.append([f"[`{name}`](https://pytorch.org/docs/stable/generated/torch.nn.{name}.html)",
                     f"`{args}`", kinks, rule])
    return _md_table(["torch.nn class", "parameters (defaults)", "kinks (defaults)",
                      "parity with torch"], rows)


@region("activations-detail")
def activations_detail():
    gk = _gradkern()
    out = []
    for name, spec in gk.ACTIVATIONS.items():
        act = gk.activations.fresh(name)
        note = ""
        if act.stochastic:  # the kink's slope is random in training mode: show eval's
            note = (" In training mode (the default) the slope at a kink is the sample's "
                    "random slope; the values shown are eval mode's.")
            act = gk.activation(name, **{**act.params, "training": False})
        ks, (v32, v64) = _kink_values(act)
        args = _signature(spec)
        call = ", ".join(f"{k}={v!r}" for k, v in act.params.items() if k in spec.defaults
                         and spec.defaults[k] is gk.activations.REQUIRED) or args
        kinks = "; ".join(f"x = {k:g}: {a} (float32), {b} (float64)"
                          for k, a, b in zip(ks, v32, v64))
        if call != args:
            kinks += f" (for `{act!r}`)"
        rule = ("bit-identical to torch" if spec.piecewise_linear
                else "smooth: within torch's tolerance")
        out += [f"### {name}", "",
                f"`gk.activation(\"{name}\"{', ' if call else ''}{call})`, as "
                f"`torch.nn.{name}({args})`; {rule}.", "",
                f"{spec.doc}", "",
                (f"Derivative at the kinks: {kinks}." if ks else
                 "No kink: one formula everywhere.") + note, ""]
    return "\n".join(out).rstrip()


# ---------------------------------------------------------------------------
# performance


def _ratio(v, peer):
    """gradkern with ``peer``'s outputs over ``peer`` (report.REFERENCE), or None."""
    mine = v.get(report._ours(peer))
    return mine / v[peer] if mine and v.get(peer) else None


def _targets_table(dtype):
    by_act, machine = _cpu_rows(dtype)
    present = lambda lib: any(lib in v for v in by_act.values())  # noqa: E731
    peers = [p for p in ("jax", "jax-grad", "torch-batched", "torch-func") if present(p)]
    floors = [f for f in ("memory-floor", "memory-floor-w") if present(f)]
    names = {"jax": "x JAX", "jax-grad": "x JAX grad (df/dw)", "torch-batched": "x torch batched",
             "torch-func": "x torch.func", "memory-floor": "of floor",
             "memory-floor-w": "of floor (df/dw)"}
    rows = []
    for act, v in by_act.items():
        g = v["gradkern-cpu"]
        cells = [act, report.fmt(g), f"{1e9 / g:.2f}"]
        if present("gradkern-cpu-w"):
            cells.append(f"{1e9 / v['gradkern-cpu-w']:.2f}" if v.get("gradkern-cpu-w") else "—")
        cells += ["—" if _ratio(v, p) is None else f"{_ratio(v, p):.2f}x" for p in peers]
        cells += ["—" if _ratio(v, f) is None else f"{100 * _ratio(v, f):.0f}%" for f in floors]
        rows.append(cells)
    head = ["activation", "gradkern samples/s", "ns/sample"]
    if present("gradkern-cpu-w"):
        head.append("ns/sample, df/dw only")
    head += [names[p] for p in peers + floors]
    return (f"Machine: {_machine(machine)}.{_note(dtype)}\n\n" + _md_table(head, rows) + "\n\n"
            + _targets_note(by_act))


def _note(dtype):
    """The results file's own note on how it was measured (e.g. a shared machine), if any."""
    note = _load(f"cpu-1e7-{dtype}.json").get("note")
    return f" Note: {note}." if note else ""


#: the CPU targets: gradkern / peer with the same outputs, N = 1e7
TARGETS = report.TARGETS


def _misses(by_act):
    """[(activation, peer, ratio)] of every ratio below its target in TARGETS."""
    return [(act, peer, _ratio(v, peer)) for act, v in by_act.items()
            for peer, t in TARGETS.items()
            if _ratio(v, peer) is not None and _ratio(v, peer) < t]


def _targets_note(by_act):
    gk = _gradkern()
    misses = [f"{act} ({ratio:.2f}x {peer})" for act, peer, ratio in _misses(by_act)]
    shares = []
    for label, pl in (("piecewise-linear", True), ("smooth", False)):
        f = [_ratio(v, "memory-floor") for a, v in by_act.items()
             if gk.ACTIVATIONS[a].piecewise_linear == pl and _ratio(v, "memory-floor")]
        shares.append(f"{label} {_pct_range(f)}")
    target = ", ".join(f">= {t:g}x {p}" for p, t in TARGETS.items()
                       if any(p in v for v in by_act.values()))
    return (f"Below the targets ({target}): {', '.join(misses) or 'none'}. "
            f"Share of the memory floor: {'; '.join(shares)}.")


@region("perf-cpu-float32")
def perf_cpu_float32():
    return _targets_table("float32")


@region("perf-cpu-float64")
def perf_cpu_float64():
    return _targets_table("float64")


@region("perf-floor")
def perf_floor():
    by_act, _ = _cpu_rows("float32")
    out = []
    # x read and, of the results, (3 + L) * 4 = 24 bytes or, df/dw alone, (1 + L) * 4 = 16
    for lib, nbytes, what in (("memory-floor", 24, "all three results"),
                              ("memory-floor-w", 16, "df/dw alone")):
        floor = [v[lib] for v in by_act.values() if lib in v]
        if floor:
            gbs = [f * nbytes / 1e9 for f in floor]
            out.append(f"{_sci_range(floor)} samples/s = {min(gbs):.0f}-{max(gbs):.0f} GB/s "
                       f"for {what} ({nbytes} bytes per sample)")
    return "The memory floor ran at " + "; ".join(out) + " on this machine."


@region("perf-scaling")
def perf_scaling():
    table, machine = _scaling()
    libs = ["gradkern-cpu", "jax", "torch-batched", "torch-func", "torch-compile", "seed-loop",
            "memory-floor"]
    rows = []
    for (act, n), v in sorted(table.items()):
        g = v.get("gradkern-cpu")
        best = max((v[p], p) for p in PEERS if p in v)
        rows.append([act, _fmt_n(n)] + [report.fmt(v.get(lib)) for lib in libs]
                    + [f"{g / best[0]:.2f}x ({best[1]})"])
    head = ["activation", "N", *libs, "gradkern / best peer"]
    return f"Machine: {_machine(machine)}.\n\n" + _md_table(head, rows)


@region("perf-losses")
def perf_losses():
    rows = [[a, _fmt_n(n), p, f"{r:.2f}x"] for a, n, p, r in _losses()]
    return _md_table(["activation", "N", "peer", "gradkern / peer"], rows)


def _sweep_rates(name):
    rate, _, _ = sweep_report.load([RESULTS / name])
    return rate


@region("perf-sweep")
def perf_sweep():
    out = []
    for name in ("sweep-cpu-1e8.json", "sweep-cpu-torch-1e7.json"):
        rate, machine, n = sweep_report.load([RESULTS / name])
        out += [f"`benchmarks/results/{name}`: N = {_fmt_n(n)} per activation. "
                f"Machine: {_machine(machine)}.", "", sweep_report.table(rate), ""]
    return "\n".join(out).rstrip()


@region("perf-compile-time")
def perf_compile_time():
    data = _load("compile-time.json")
    rows = []
    for build in ("serial", "parallel"):
        rs = [r for r in data["results"] if r["build"] == build]
        cold = [r["cold_first_call_s"] for r in rs]
        warm = [r["warm_total_s"] for r in rs]
        rows.append([f"{build} build (N = {_fmt_n(rs[0]['n'])})",
                     f"{np.median(cold):.2f} s median, {max(cold):.2f} s max",
                     f"{np.median(warm):.2f} s median, {max(warm):.2f} s max"])
    imp = np.median([r["warm_import_s"] for r in data["results"]])
    table = _md_table(["", "cold first call", "warm: import + first call"], rows)
    return (f"Machine: {_machine(data['machine'])}; {len(data['results'])} measurements "
            f"(activation x build), each a fresh process.\n\n{table}\n\n"
            f"`import gradkern` (warm): {imp:.2f} s median.")


@region("perf-busy")
def perf_busy():
    data = _load("busy-machine.json")
    rows = [[_fmt_n(r["n"]), f"{r['quiet_tbb_ms']:.3g} ms", f"{r['quiet_omp_ms']:.3g} ms",
             f"{r['busy_1thread_ms']:.3g} ms",
             f"{r['busy_tbb_ms']:.3g} ms ({r['busy_tbb_worst_over_1thread']:.2f}x)",
             f"{r['busy_omp_ms']:.3g} ms ({r['busy_omp_worst_over_1thread']:.2f}x)"]
            for r in data["summary"]]
    head = ["N", "quiet, TBB", "quiet, GNU OpenMP", "busy, 1 thread", "busy, TBB (worst)",
            "busy, GNU OpenMP (worst)"]
    return (f"Machine: {_machine(data['machine'])}. {data['workload']}; in brackets the slowest "
            f"process's median call over the busy single-thread call.\n\n" + _md_table(head, rows))


# ---------------------------------------------------------------------------
# sweeps


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@region("sweep-constants")
def sweep_constants():
    from gradkern.stream import dists
    from gradkern.sweeps import grid, run, stats

    rows = [
        ["distributions", ", ".join(f"`{k}:{','.join(v[1])}`" for k, v in dists.DIST_KINDS.items())],
        ["samples per point", f"1 to 2**{int(math.log2(dists.MAX_SAMPLES))} (64-bit sample indices)"],
        ["depth", f"1 to {grid.MAX_DEPTH:,} on the CPU (memory grows with L), "
                  f"{stats.GPU_MAX_DEPTH} on the GPU"],
        ["block, lanes", f"{stats.BLOCK} consecutive samples, {stats.LANES} lanes"],
        ["chunk (one kernel call, one Dask task)",
         f"{run.CHUNK_BLOCKS} blocks = {run.CHUNK_BLOCKS * stats.BLOCK:,} samples"],
        ["histogram of log10\\|g\\|", f"{stats.HIST_INNER} bins of width {stats.HIST_WIDTH:g} on "
                                     f"[{stats.HIST_LO:g}, {stats.HIST_EDGES[-1]:g}), one below, one above"],
        ["stream version (manifest)", f"`{run.STREAM}`"],
        ["Dask task timeout (default)", f"{run.TASK_TIMEOUT:g} s"],
    ]
    return _md_table(["", "value (from the code)"], rows)


@region("sweep-depths")
def sweep_depths():
    rows = _read_csv(ROOT / "docs" / "sweep" / "plotted.csv")
    first = {}
    for r in rows:
        if r["layer"] == "1":
            first.setdefault(r["activation"], {})[int(r["depth"])] = float(r["mean_abs_grad"])
    depths = [1, 3, 10, 30]
    out = []
    for act, by_depth in first.items():
        zero = [d for d in sorted(by_depth) if by_depth[d] == 0.0]
        out.append([act, *[f"{by_depth[d]:.3g}" for d in depths], str(zero[0]) if zero else "—"])
    head = ["activation", *[f"depth {d}" for d in depths], "exactly 0 from depth"]
    return _md_table(head, out)


@region("sweep-1e9")
def sweep_1e9():
    rows = _read_csv(RUN_1E9 / "results.csv")
    points = _read_csv(RUN_1E9 / "points.csv")
    by_point = {}
    for r in rows:
        by_point.setdefault(r["point"], {})[int(r["layer"])] = r
    out = []
    for p in points:
        layers = by_point[p["point"]]
        depth = int(p["depth"])
        out.append([p["activation"], *[f"{float(layers[k]['mean_abs_grad']):.6g}"
                                       for k in range(1, depth + 1)],
                    f"{float(layers[1]['zero_fraction']):.4g}",
                    f"{float(layers[1]['mean_log10_abs_grad']):.4g}",
                    f"{float(p['seconds']):.0f}"])
    depth = int(points[0]["depth"])
    head = ["activation", *[f"mean \\|df/dw_{k}\\|" for k in range(1, depth + 1)],
            "zero fraction (w_1)", "mean log10\\|df/dw_1\\|", "s"]
    samples = sum(int(p["samples"]) for p in points)
    seconds = sum(float(p["seconds"]) for p in points)
    relu = next(r for r in rows if r["activation"] == "ReLU" and r["layer"] == "1")
    mean, rms, n = float(relu["mean_abs_grad"]), float(relu["rms_grad"]), int(relu["samples"])
    stderr = math.sqrt(rms ** 2 - mean ** 2) / math.sqrt(n)
    return (f"{len(points)} points, {_sci(samples)} samples in {seconds:.0f} s "
            f"({_sci(samples / seconds)} samples/s); `s` is each point's time.\n\n"
            + _md_table(head, out) + "\n\n"
            f"ReLU's {mean:.6f} is 1/sqrt(2 pi) = {1 / math.sqrt(2 * math.pi):.7f} to the "
            f"digits shown (standard error {stderr:.1g} at {_sci(n)} samples).")


# ---------------------------------------------------------------------------
# verification


@region("verify-tolerances")
def verify_tolerances():
    from gradkern import verify

    rows = [[str(dt), f"{rtol:g}", f"{atol:g}"] for dt, (rtol, atol) in verify.TOLERANCES.items()]
    return (_md_table(["dtype", "rtol", "atol"], rows) + "\n\n"
            f"These are `torch.testing.assert_close`'s defaults. Accuracy slack: gradkern's "
            f"worst float32 error may be {verify.ACCURACY_SLACK:g}x torch float32's plus "
            f"{verify.ACCURACY_FLOOR:g} tolerance units (`gradkern.verify.ACCURACY_SLACK`, "
            "`ACCURACY_FLOOR`).")


ACCURACY_COLUMNS = (("forward", "forward"), ("derivative", "derivative"), ("output", "f"),
                    ("input_grad", "df/dx"), ("dw1", "df/dw1"), ("dw2", "df/dw2"),
                    ("dw3", "df/dw3"))


def _ulps(v):
    return f"{v:.2f}" if v < 1000 else _sci(v)


@region("accuracy-float32")
def accuracy_float32():
    """gradkern / torch maximum float32 error in ulps against mpmath, per column;
    bold where gradkern's exceeds torch's by more than the test's 0.5 ulp."""
    doc = _load("accuracy-float32.json")
    head = ["activation", "inputs"] + [name for _, name in ACCURACY_COLUMNS] + [
        "above max(2x torch, 4 ulp): forward, derivative"]
    rows = []
    for label, r in doc["activations"].items():
        cells = []
        for key, _ in ACCURACY_COLUMNS:
            ours, theirs = r[key]["gradkern"], r[key]["torch"]
            cell = f"{_ulps(ours)} / {_ulps(theirs)}"
            cells.append(f"**{cell}**" if ours > theirs + 0.5 else cell)
        above = ", ".join(f"{r[k]['above_pointwise_bound']} ({r[k]['torch_above_pointwise_bound']})"
                          for k in ("forward", "derivative"))
        rows.append([label, f"{r['inputs']:,}"] + cells + [above])
    return (_md_table(head, rows) + "\n\n"
            f"Each cell: gradkern / torch {doc['torch']}, maximum error in float32 ulps; chain "
            f"columns at depth {doc['depth']}, weights {doc['weights']}; truth at "
            f"{doc['truth_bits']} bits (`benchmarks/accuracy_table.py`, "
            "`benchmarks/results/accuracy-float32.json`, where the input of each maximum is "
            "recorded). Bold: gradkern's maximum above torch's by more than 0.5 ulp. Last "
            "column: inputs where gradkern's error exceeds max(2x torch's there, 4 ulp); in "
            "parentheses, inputs where torch's exceeds max(2x gradkern's, 4 ulp).")


@region("accuracy-peers")
def accuracy_peers():
    """For each smooth activation below a float32 throughput target: the
    maximum float32 error of gradkern, torch and JAX on the accuracy table's
    inputs (JAX's where input and truth are normal: XLA flushes subnormals)."""
    doc = _load("accuracy-float32.json")
    by_act, _ = _cpu_rows("float32")
    below = {act for act, _, _ in _misses(by_act)}
    columns = (("forward", "forward"), ("output", "f, depth 3"), ("dw1", "df/dw1, depth 3"))
    rows = []
    for label, r in doc["activations"].items():
        if label not in below or "jax_normal" not in r["forward"]:
            continue
        rows.append([label] + [f"{_ulps(r[k]['gradkern'])} / {_ulps(r[k]['torch'])} / "
                               f"{_ulps(r[k]['jax_normal'])}" for k, _ in columns])
    if not rows:
        return "Every activation meets its throughput targets in the float32 table."
    return (_md_table(["activation"] + [name for _, name in columns], rows) + "\n\n"
            f"Maximum float32 error in ulps against mpmath, gradkern / torch {doc['torch']} / "
            f"JAX {doc.get('jax', '?')} (`benchmarks/accuracy_table.py --jax`; JAX's over the "
            "inputs where input and truth are normal float32 numbers).")


@region("vecmath-bounds")
def vecmath_bounds():
    from gradkern._numba.vecmath import MAX_ULP

    rows = [[f"`{k}`", f"{v:g} ulp"] for k, v in MAX_ULP.items()]
    return _md_table(["function", "bound asserted by tests/test_vecmath.py"], rows)


# ---------------------------------------------------------------------------


def documents():
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def render(text, path="?"):
    """``text`` with every generated region rewritten."""
    out, pos = [], 0
    for m in BEGIN.finditer(text):
        if m.start() < pos:
            continue  # a marker inside a region being replaced
        name = m.group(1)
        if name not in REGIONS:
            raise SystemExit(f"{path}: unknown generated region {name!r}; known: "
                             f"{', '.join(sorted(REGIONS))}")
        end = text.find(END, m.end())
        if end < 0:
            raise SystemExit(f"{path}: region {name!r} has no {END!r}")
        out += [text[pos:m.end()], REGIONS[name]().rstrip("\n"), "\n"]
        pos = end
    out.append(text[pos:])
    return "".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="rewrite nothing; exit 1 with a diff if a region is stale")
    ap.add_argument("files", nargs="*", type=Path, help="default: README.md and docs/*.md")
    args = ap.parse_args(argv)
    stale = 0
    for path in args.files or documents():
        old = path.read_text(encoding="utf-8")
        new = render(old, path)
        if new == old:
            continue
        stale += 1
        if args.check:
            sys.stdout.writelines(difflib.unified_diff(
                old.splitlines(True), new.splitlines(True), f"{path} (saved)",
                f"{path} (generated)"))
        else:
            path.write_text(new, encoding="utf-8")
            print(f"rewrote {path}")
    if args.check and stale:
        print(f"\n{stale} file(s) with stale generated regions: run "
              "python benchmarks/docs_tables.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
