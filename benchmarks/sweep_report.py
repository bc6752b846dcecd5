"""The README's sweep-benchmark table from pytest-benchmark JSON.

    python benchmarks/sweep_report.py benchmarks/results/sweep-cpu.json

Samples/s per activation for each lib of ``test_bench_sweep.py`` and the
ratios gradkern/jax and gradkern/torch; the issue's CPU target is >= 3x JAX.
"""
import json
import sys
from collections import defaultdict


def main(paths):
    rate, machine, n = defaultdict(dict), None, None
    for path in paths:
        with open(path) as fh:
            for b in json.load(fh)["benchmarks"]:
                info = b["extra_info"]
                if "samples_per_s" not in info or "activation" not in info:
                    continue
                rate[info["activation"]][info["lib"]] = info["samples_per_s"]
                machine, n = machine or info.get("machine"), info["n"]
    libs = [lib for lib in ("gradkern", "jax", "torch") if any(lib in r for r in rate.values())]
    print(f"N = {n:.0e} per activation, depth 3, float32, x ~ N(0,1); samples/s; "
          f"machine: {machine}\n")
    head = ["activation"] + libs + [f"gradkern/{p}" for p in libs if p != "gradkern"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for act, r in rate.items():
        cells = [act] + [f"{r[lib]:.3g}" if lib in r else "—" for lib in libs]
        for p in libs:
            if p != "gradkern":
                cells.append(f"{r['gradkern'] / r[p]:.2f}x" if p in r and "gradkern" in r else "—")
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1:])
