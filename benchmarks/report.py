"""Tables, a plot and summaries from benchmark JSON files.

    python benchmarks/report.py benchmarks/results/cpu.json [--md OUT.md] [--plot OUT.png]
    python benchmarks/report.py --targets benchmarks/results/cpu-1e7-float32.json
    python benchmarks/report.py cpu.json --summary benchmarks/results/cpu-scaling-float32.json

Input: pytest-benchmark JSON (``make bench``), ``gradkern bench --out`` JSON, or
a summary written by ``--summary``.  Table: samples/s (best round) per
activation and lib at each (N, dtype, depth), with each peer's ratio
gradkern/peer.  The plot (matplotlib) shows throughput against N per lib,
log-log.  ``--summary`` keeps one record per benchmark (best, median, mean and
spread of its rounds) and drops the raw rounds: everything the tables and the
plot read.  ``benchmarks/docs_tables.py`` puts these tables into docs/.
"""
import argparse
import json
from collections import defaultdict


def load(paths):
    """Rows from pytest-benchmark JSON or from ``gradkern bench --out`` JSON."""
    rows, machine = [], None
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        if "records" in data:  # gradkern bench
            machine = machine or data.get("machine")
            rows += [{k: r[k] for k in ("lib", "activation", "n", "dtype", "depth", "samples_per_s")}
                     for r in data["records"] if "samples_per_s" in r]
            continue
        for b in data["benchmarks"]:
            info = b["extra_info"]
            machine = machine or info.get("machine")
            rows.append({**{k: info[k] for k in ("lib", "activation", "n", "dtype", "depth")},
                         "samples_per_s": info["n"] / b["stats"]["min"]})
    return rows, machine


ROUND_STATS = ("min", "median", "mean", "stddev", "max", "rounds")


def summarise(paths):
    """pytest-benchmark JSON files reduced to records: what :func:`load` reads,
    with the spread of each benchmark's rounds instead of the rounds."""
    records, machine, source = [], None, []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        if "benchmarks" not in data:
            raise SystemExit(f"{path}: not pytest-benchmark JSON (already a summary?)")
        info = data.get("machine_info", {}).get("cpu", {})
        source.append({"file": str(path), "pytest_benchmark": data.get("version"),
                       "datetime": data.get("datetime"),
                       "commit": data.get("commit_info", {}).get("id"),
                       "cpu": info.get("brand_raw"),
                       "cpu_flags": [f for f in info.get("flags", ()) if f.startswith(("avx", "amx"))],
                       "options": data["benchmarks"][0]["options"] if data["benchmarks"] else None})
        for b in data["benchmarks"]:
            extra, stats = b["extra_info"], b["stats"]
            machine = machine or extra.get("machine")
            rec = {k: extra[k] for k in ("activation", "n", "dtype", "depth", "lib")}
            rec["seconds"] = stats["min"]
            rec.update({f"{k}_s" if k != "rounds" else k: stats[k] for k in ROUND_STATS[1:]})
            rec["samples_per_s"] = extra["n"] / stats["min"]
            if "gbytes_per_s" in extra:
                rec["gbytes_per_s"] = extra["gbytes_per_s"]
            records.append(rec)
    return {"machine": machine, "source": source, "records": records}


def fmt(v):
    return f"{v:.2e}" if v else "—"


def tables(rows, ours="gradkern-cpu"):
    out = []
    groups = defaultdict(dict)
    libs = []
    for r in rows:
        groups[(r["n"], r["dtype"], r["depth"])].setdefault(r["activation"], {})[r["lib"]] = r["samples_per_s"]
        if r["lib"] not in libs:
            libs.append(r["lib"])
    peers = [lib for lib in libs if lib != ours]
    for (n, dtype, depth), acts in sorted(groups.items()):
        out.append(f"\n**N = {n:.0e}, {dtype}, depth {depth}** (samples/s; ratio = {ours} / peer)\n")
        head = ["activation", ours] + [h for p in peers for h in (p, "ratio")]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for act, libv in acts.items():
            g = libv.get(ours)
            cells = [act, fmt(g)]
            for p in peers:
                v = libv.get(p)
                cells += [fmt(v), f"{g / v:.2f}x" if g and v else "—"]
            out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


#: the targets: gradkern / peer with the same outputs (gradkern.bench.cpu.reference_lib)
TARGETS = {"jax": 3.0, "jax-grad": 3.0, "torch-batched": 10.0}
#: each peer's gradkern lib (same outputs) and memory floor; kept here so that
#: reading a results file needs no gradkern import
REFERENCE = {"jax-grad": "gradkern-cpu-w", "memory-floor-w": "gradkern-cpu-w"}


def _ours(lib, ours="gradkern-cpu"):
    return REFERENCE.get(lib, ours)


def targets(rows, n=10**7, dtype="float32", depth=3, ours="gradkern-cpu"):
    """The target table: every activation at (n, dtype, depth), gradkern's
    ns/sample, its ratio to each peer computing the same results (JAX
    value_and_grad and torch batched autograd: all three; JAX grad: the
    weight gradients alone, against ``outputs=("weight_grads",)``), and its
    share of the memory floor with the same outputs."""
    acts = defaultdict(dict)
    for r in rows:
        if (r["n"], r["dtype"], r["depth"]) == (n, dtype, depth):
            acts[r["activation"]][r["lib"]] = r["samples_per_s"]
    peers = [p for p in ("jax", "jax-grad", "torch-batched", "torch-func")
             if any(p in v for v in acts.values())]
    floors = [f for f in ("memory-floor", "memory-floor-w") if any(f in v for v in acts.values())]
    head = (["activation", "gradkern ns/sample"]
            + [f"x {p} (>= {TARGETS[p]:g}x)" if p in TARGETS else f"x {p}" for p in peers]
            + [f"{_ours(f)} of floor" for f in floors])
    out = [f"\n**N = {n:.0e}, {dtype}, depth {depth}**: like for like (same outputs)\n",
           "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    misses = []
    for act, v in acts.items():
        g = v.get(ours)
        cells = [act, f"{1e9 / g:.2f}" if g else "—"]
        for p in peers:
            mine = v.get(_ours(p, ours))
            r = mine / v[p] if mine and v.get(p) else None
            t = TARGETS.get(p)
            if r is not None and t and r < t:
                misses.append(f"{act} ({r:.2f}x {p})")
            cells.append("—" if r is None else f"{r:.2f}x" + (" (miss)" if t and r < t else ""))
        for f in floors:
            mine = v.get(_ours(f, ours))
            cells.append(f"{100 * mine / v[f]:.0f}%" if mine and v.get(f) else "—")
        out.append("| " + " | ".join(cells) + " |")
    out.append(f"\nTargets missed by: {', '.join(misses) if misses else 'none'}")
    return "\n".join(out)


def plot(rows, path, activations=None):
    if activations is None:  # the registry's representatives (one smooth, one piecewise-linear)
        import gradkern as gk

        activations = [n for n, spec in gk.ACTIVATIONS.items() if spec.representative]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(activations), figsize=(6 * len(activations), 4.5), squeeze=False)
    for ax, act in zip(axes[0], activations):
        series = defaultdict(list)
        for r in rows:
            if r["activation"] == act and r["dtype"] == "float32":
                series[r["lib"]].append((r["n"], r["samples_per_s"]))
        for lib, pts in sorted(series.items()):
            pts.sort()
            ax.loglog([p[0] for p in pts], [p[1] for p in pts], "o-", label=lib)
        ax.set(title=f"{act}, float32", xlabel="N (inputs)", ylabel="samples/s")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("json", nargs="+")
    ap.add_argument("--md", help="write the tables here (default: print)")
    ap.add_argument("--plot", help="write a PNG throughput plot here")
    ap.add_argument("--targets", action="store_true",
                    help="the target table (N=1e7, depth 3) instead")
    ap.add_argument("--dtype", default="float32", help="dtype of the --targets table")
    ap.add_argument("--summary", metavar="OUT.json",
                    help="write a summary of the pytest-benchmark inputs here (no raw rounds)")
    args = ap.parse_args(argv)
    if args.summary:
        with open(args.summary, "w") as fh:
            json.dump(summarise(args.json), fh, indent=1)
            fh.write("\n")
        return
    rows, machine = load(args.json)
    text = ""
    if machine:
        text += ("Machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()) + "\n")
    text += targets(rows, dtype=args.dtype) if args.targets else tables(rows)
    if args.md:
        with open(args.md, "w") as fh:
            fh.write(text + "\n")
    else:
        print(text)
    if args.plot:
        plot(rows, args.plot)


if __name__ == "__main__":
    main()
