"""The chain-gradient throughput table: every activation at N = 1e7, depth 3,
gradkern against JAX, torch and the memory floor, like compared with like.

    python benchmarks/chain_1e7.py          # float32 -> benchmarks/results/cpu-1e7-float32.json
    python benchmarks/chain_1e7.py --dtype float64 --acts Tanh,ReLU --out F.json

Each peer is compared with gradkern computing the same results
(``gradkern.bench.cpu.reference_lib``): torch batched autograd, ``torch.func``
and JAX ``jit(vmap(value_and_grad))`` return output, weight gradients and
input gradient, as ``gradkern-cpu`` does; JAX ``jit(vmap(grad))``
(``jax-grad``) returns the weight gradients alone, as
``chain_grad(outputs=("weight_grads",))`` (``gradkern-cpu-w``) does; each
memory floor writes the same arrays.  The libs of one activation run one
after the other in this process, so a ratio is two timings a few seconds
apart: on a machine that other jobs load, the ratios hold better than the
absolute samples/s.  Writes ``gradkern bench --out``'s format (what
``benchmarks/report.py`` and ``benchmarks/docs_tables.py`` read), each record
with its like-for-like ``ratio`` (and ``of_floor`` for gradkern's), then
prints the table.
"""
import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402

LIBS = ("gradkern-cpu", "gradkern-cpu-w", "torch-batched", "torch-func", "jax", "jax-grad",
        "memory-floor", "memory-floor-w")


def like_for_like(records):
    """Each record's ``ratio``: the gradkern lib with its outputs over it (for a
    peer: how many times faster gradkern is); gradkern's own records get
    ``of_floor``, their share of the memory floor with the same outputs."""
    from gradkern.bench.cpu import LIBS as ALL, floor_lib, reference_lib

    rate = {(r["activation"], r["lib"]): r.get("samples_per_s") for r in records}
    for r in records:
        if "samples_per_s" not in r:
            continue
        ours = rate.get((r["activation"], reference_lib(r["lib"])))
        if r["lib"].startswith("gradkern"):
            floor = rate.get((r["activation"], floor_lib(r["lib"])))
            r["of_floor"] = r["samples_per_s"] / floor if floor else None
        elif not r["lib"].startswith("memory-floor"):
            r["ratio"] = ours / r["samples_per_s"] if ours else None
            r["versus"] = reference_lib(r["lib"])
        r["outputs"] = list(ALL[r["lib"]].outputs)
    return records


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--acts", default="all", help="comma-separated names, or all")
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--n", type=float, default=1e7)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", help="default: benchmarks/results/cpu-1e7-<dtype>.json")
    args = ap.parse_args(argv)

    import gradkern as gk
    from gradkern.bench.cpu import machine_info, run_bench

    acts = list(gk.ACTIVATIONS) if args.acts == "all" else args.acts.split(",")
    libs = args.libs.split(",")

    def progress(i, total, rec):
        if rec:
            print(f"\r[{i + 1}/{total}] {rec['activation']} {rec['lib']}      ", end="",
                  file=sys.stderr, flush=True)

    load_before = os.getloadavg()[0]
    records = like_for_like(list(run_bench(acts, [int(args.n)], [args.dtype], libs, depth=3,
                                           repeat=args.repeat, budget_s=4.0,
                                           progress=progress)))
    print(file=sys.stderr)
    machine = machine_info()
    try:
        import jax

        machine["jax"] = jax.__version__
    except ImportError:
        pass
    data = {"machine": machine,
            "note": ("ratios are like for like (same outputs) and measured a few seconds apart "
                     f"in one process; 1-minute load average {load_before:.2f} before the run, "
                     f"{os.getloadavg()[0]:.2f} after it (its own threads included)"),
            "records": records}
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"cpu-1e7-{args.dtype}.json")
    out.write_text(json.dumps(data, indent=1) + "\n")
    rows, machine = report.load([out])
    print(report.targets(rows, n=int(args.n), dtype=args.dtype))
    print(f"\nwritten: {out}")


if __name__ == "__main__":
    main()
