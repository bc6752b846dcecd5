"""The sweep-benchmark table from pytest-benchmark JSON.

    python benchmarks/sweep_report.py benchmarks/results/sweep-cpu.json

Samples/s per activation for each lib of ``test_bench_sweep.py`` and the
ratios gradkern/jax and gradkern/torch.  ``benchmarks/docs_tables.py`` puts
the same table into docs/performance.md.
"""
import json
import sys
from collections import defaultdict

LIBS = ("gradkern", "jax", "torch")


def load(paths):
    """({activation: {lib: samples/s}}, machine, N) from pytest-benchmark JSON files."""
    rate, machine, n = defaultdict(dict), None, None
    for path in paths:
        with open(path) as fh:
            for b in json.load(fh)["benchmarks"]:
                info = b["extra_info"]
                if "samples_per_s" not in info or "activation" not in info:
                    continue
                rate[info["activation"]][info["lib"]] = info["samples_per_s"]
                machine, n = machine or info.get("machine"), info["n"]
    return dict(rate), machine, n


def table(rate):
    """Markdown: samples/s per activation and lib, and gradkern's ratio to each peer."""
    libs = [lib for lib in LIBS if any(lib in r for r in rate.values())]
    peers = [p for p in libs if p != "gradkern"]
    head = ["activation"] + libs + [f"gradkern/{p}" for p in peers]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for act, r in rate.items():
        cells = [act] + [f"{r[lib]:.3g}" if lib in r else "—" for lib in libs]
        for p in peers:
            cells.append(f"{r['gradkern'] / r[p]:.2f}x" if p in r and "gradkern" in r else "—")
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(paths):
    rate, machine, n = load(paths)
    print(f"N = {n:.0e} per activation, depth 3, float32, x ~ N(0,1); samples/s; "
          f"machine: {machine}\n")
    print(table(rate))


if __name__ == "__main__":
    main(sys.argv[1:])
