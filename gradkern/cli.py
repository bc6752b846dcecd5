"""``gradkern`` command line: the seed experiments and the parity check.

    gradkern vanishing --seed S [--samples 200] [--activations all|A,B] [--json]
    gradkern chain --activation A[,B,...] --depth L --x X [--weights w1,w2,...]
                   [--biases b1,b2,...] [--dtype ...] [--json]
    gradkern verify [--backend cpu] [--seed S] [--depths 1,3,4,30] [--activations A,B]
    gradkern bench [--activations ReLU,Tanh|all] [--sizes 1e6,1e7] [--dtypes float32]
                   [--libs gradkern-cpu,torch-batched,jax,memory-floor] [--json] [--out F]
    gradkern sweep --activations all --depths 1-30 --dist normal:0,1 --samples 1e9 --out DIR
    gradkern plot DIR

Errors are one line on stderr, ``gradkern COMMAND: error: ...``, and an exit
code (:data:`EXIT_CODES`); ``--debug`` or ``GRADKERN_DEBUG=1`` adds the traceback.
"""
import argparse
import json
import os
import sys

__all__ = ["main", "EXIT_CODES"]

#: exit codes: a run that completed but whose check disagreed, and an
#: unexpected exception (a bug), both give 1, so scripts treat both as failure
EXIT_FAILED = 1
EXIT_USER_ERROR = 2  # the same code argparse gives a bad command line
EXIT_INTERRUPTED = 130  # 128 + SIGINT, what a shell reports for Ctrl-C
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head -1`'s yes
EXIT_CODES = {0: "success", EXIT_FAILED: "a check failed, or an unexpected error (a bug)",
              EXIT_USER_ERROR: "a user error: bad argument, no GPU, unreachable Dask scheduler, "
                               "unwritable or full disk, missing optional package, ...",
              EXIT_INTERRUPTED: "interrupted (Ctrl-C)",
              EXIT_BROKEN_PIPE: "standard output closed early (as by `| head`)"}


def _table(headers, rows):
    """Plain fixed-width table (no dependency)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}")


def _ints(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def _positive_ints(text):
    values = _ints(text)
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers >= 1, got {text!r}")
    return values


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _sizes(text):
    """``1e6,1e7`` -> [1000000, 10000000]; ``1e400`` or ``inf`` is an argument error (int() of
    it raises OverflowError, which argparse would not catch)."""
    try:
        values = [int(float(v)) for v in text.split(",") if v.strip()]
        if values and min(values) >= 1:
            return values
    except (ValueError, OverflowError):
        pass
    raise argparse.ArgumentTypeError(
        f"expected comma-separated sizes >= 1 such as 1e6, got {text!r}")


def _param(text):
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    low = value.strip().lower()
    if low in ("true", "false"):
        return key.strip(), low == "true"
    try:
        return key.strip(), int(value) if value.strip().lstrip("-").isdigit() else float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{key}: expected a number or true/false, got {value!r}")


# ---------------------------------------------------------------------------
def cmd_vanishing(args):
    from .activations import ACTIVATIONS
    from .experiments import vanishing

    names = args.activations
    if names == ["all"]:
        names = list(ACTIVATIONS)
    unknown = [n for n in names or [] if n not in ACTIVATIONS]
    if unknown:
        raise ValueError(f"unknown activation(s) {unknown}; valid: all, {', '.join(ACTIVATIONS)}")
    rows = vanishing(args.seed, samples=args.samples, names=names)
    if args.json:
        print(json.dumps({"seed": args.seed, "samples": args.samples, "results": rows}, indent=2))
    else:
        print(f"mean |d out/d w1|, 3-layer SimpleNet, weights 1, {args.samples} x N(0,1), "
              f"seed {args.seed}; ranked, least vanishing first\n")
        print(_table(
            ["rank", "activation", "gradkern", "autograd", "rel. diff", "agree"],
            [[i, r["activation"], f"{r['mean_abs_grad']:.9g}", f"{r['autograd']:.9g}",
              f"{abs(r['mean_abs_grad'] - r['autograd']) / max(abs(r['autograd']), 1e-300):.1e}",
              "yes" if r["agree"] else "NO"] for i, r in enumerate(rows, 1)]))
    return 0 if all(r["agree"] for r in rows) else 1


def _chain_activations(names, params):
    """``--activation A`` or ``A,B,...`` with ``--param``s: one Activation, or a
    list of them; a parameter goes to every listed activation that takes it."""
    from .activations import ACTIVATIONS, activation

    names = [n.strip() for n in names.split(",")]
    if len(names) == 1:
        return activation(names[0], **params)
    acts = [activation(n) for n in names]  # unknown names first, by name
    for key in params:
        if not any(key in ACTIVATIONS[a.name].defaults for a in acts):
            raise ValueError(f"no activation of {', '.join(names)} has a parameter {key!r}")
    return [activation(a, **{k: v for k, v in params.items()
                             if k in ACTIVATIONS[a.name].defaults}) for a in acts]


def cmd_chain(args):
    from .experiments import chain

    act = _chain_activations(args.activation, dict(args.param or []))
    r = chain(act, depth=args.depth, x=args.x, weights=args.weights, dtype=args.dtype,
              torch_seed=args.torch_seed, biases=args.biases)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        biases = f", biases {r['biases']}" if "biases" in r else ""
        print(f"{r['activation']}, {len(r['weights'])} layers, x = {r['x']!r}, "
              f"weights {r['weights']}{biases}, {r['dtype']}\n")
        headers = ["layer", "weight", "gradient of W (gradkern)", "autograd"]
        rows = [[i, w, repr(k), repr(a)] for i, (w, k, a) in
                enumerate(zip(r["weights"], r["weight_grads"], r["autograd"]), 1)]
        if "biases" in r:
            headers += ["bias", "gradient of b (gradkern)", "autograd"]
            for row, b, k, a in zip(rows, r["biases"], r["bias_grads"], r["autograd_bias_grads"]):
                row += [b, repr(k), repr(a)]
        print(_table(headers, rows))
        print(f"\noutput {r['output']!r} (autograd {r['autograd_output']!r}); "
              f"d out/dx {r['input_grad']!r} (autograd {r['autograd_input_grad']!r})")
    return 0 if r["agree"] else 1


def _check_backend(backend):
    """A one-sample chain on ``backend``: an unknown or unusable backend (no GPU, library not
    built) is an error before any output, not after the header."""
    import numpy as np

    from .activations import ACTIVATIONS, default
    from .api import chain_grad

    probe = default(next(iter(ACTIVATIONS)))  # any activation: the backend is what is asked
    chain_grad(np.zeros(1, np.float32), probe, np.ones(1, np.float32), backend=backend)


def cmd_verify(args):
    import numpy as np

    from .activations import ACTIVATIONS
    from .verify import run

    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    names = args.activations or list(ACTIVATIONS)
    unknown = [n for n in names if n not in ACTIVATIONS]
    if unknown:
        print(f"unknown activation(s) {unknown}; valid: {', '.join(ACTIVATIONS)}", file=sys.stderr)
        return 2
    _check_backend(args.backend)
    print(f"gradkern verify: backend {args.backend}, seed {seed}, depths {args.depths}, "
          f"weight sets ones/signed/zero/random, against torch autograd", file=sys.stderr)
    groups = {}
    total = [0]

    def progress(r):
        total[0] += 1
        if not args.quiet and sys.stderr.isatty():
            print(f"\r  {total[0]} checks ({r.activation} {r.dtype})", end="", file=sys.stderr)

    for r in run(depths=args.depths, names=names, backend=args.backend, seed=seed,
                 progress=progress):
        groups.setdefault((r.activation, r.dtype), []).append(r)
    if sys.stderr.isatty():
        print(file=sys.stderr)
    rows, failures = [], []
    for (name, dtype), rs in groups.items():
        f = [c for r in rs for c in r.fields.values()]
        acc = [v for r in rs for v in r.accuracy.values()]
        ok = sum(r.ok for r in rs)
        failures += [r for r in rs if not r.ok]
        rows.append([
            name, dtype, "exact" if rs[0].exact else "close",
            f"{max(c.max_abs for c in f):.2e}", f"{max(c.max_rel for c in f):.2e}",
            f"{100 * float(np.mean([c.identical for c in f])):.1f}%",
            f"{max(a for a, _ in acc):.3f}/{max(t for _, t in acc):.3f}" if acc else "-",
            f"{ok}/{len(rs)}"])
    print(_table(["activation", "dtype", "rule", "max abs diff", "max rel diff", "bit-identical",
                  "f32 err vs f64: gk/torch", "passed"], rows))
    print("\nmax abs/rel diff: gradkern vs torch autograd in the same dtype, over all results "
          "(output, df/dw_i, df/dx).\nerr vs f64: worst error against a float64 autograd run, in "
          "units of assert_close's tolerance.")
    for r in failures:
        print(f"FAIL {r.activation} {r.dtype} depth {r.depth} weights {r.weights}: {r.why}")
    n = sum(len(rs) for rs in groups.values())
    print(f"\n{n - len(failures)} passed, {len(failures)} failed")
    return 1 if failures else 0


def cmd_bench(args):
    from .activations import ACTIVATIONS
    from .bench import LIBS, machine_info, run_bench

    acts = args.activations or _representatives()
    acts = list(ACTIVATIONS) if acts == ["all"] else acts
    unknown = [a for a in acts if a not in ACTIVATIONS] + [b for b in args.libs if b not in LIBS]
    if unknown:
        raise ValueError(f"unknown activation or lib {unknown}; activations: {', '.join(ACTIVATIONS)}; "
                         f"libs: {', '.join(LIBS)}")
    from .progress import Progress

    info = machine_info()
    n_cases = len(acts) * len(args.sizes) * len(args.dtypes) * len(args.libs)
    bar = Progress(sum(args.sizes) * len(acts) * len(args.dtypes) * len(args.libs),
                   n_cases, enabled=not args.quiet)
    last = {"n": 0}

    def progress(i, total, rec):
        # called before each case (rec) and once at the end (rec None)
        bar.advance(samples=last["n"], points=1 if i else 0)
        last["n"] = rec["n"] if rec else 0

    records = list(run_bench(acts, args.sizes, args.dtypes, args.libs, depth=args.depth,
                             repeat=args.repeat, progress=progress))
    bar.close()
    ours = args.libs[0]
    base = {(r["activation"], r["n"], r["dtype"]): r.get("samples_per_s")
            for r in records if r["lib"] == ours}
    for r in records:
        b, v = base.get((r["activation"], r["n"], r["dtype"])), r.get("samples_per_s")
        r[f"{ours}_ratio"] = b / v if b and v else None
    if args.out:
        with open(args.out, "w") as fh:
            json.dump({"machine": info, "records": records}, fh, indent=1)
    if args.json:
        print(json.dumps({"machine": info, "records": records}, indent=1))
        return 0
    print("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    print(f"depth {args.depth}, weights 1, inputs N(0, 2); best of {args.repeat}; "
          f"ratio = {ours} / lib\n")
    rows = []
    for r in records:
        rows.append([r["activation"], f"{r['n']:.0e}", r["dtype"], r["lib"],
                     "skipped" if "skipped" in r else f"{r['samples_per_s']:.3g}",
                     "" if "skipped" in r else f"{r['gbytes_per_s']:.2f}",
                     f"{r[ours + '_ratio']:.2f}x" if r.get(ours + "_ratio") else ""])
    print(_table(["activation", "N", "dtype", "lib", "samples/s", "GB/s moved", "ratio"], rows))
    return 0


# --------------------------------------------------------------------------- sweep, plot
def cmd_sweep(args):
    from .sweeps import sweep

    if args.resume and not args.out:
        raise ValueError("--resume needs --out DIR, the directory of the sweep to continue")
    dists = args.dist or ["normal:0,1"]
    weights = [w for ws in args.weights for w in ws] if args.weights else [1.0]
    biases = [b for bs in args.biases for b in bs] if args.biases else None
    res = sweep(args.activations, args.depths, dists, weights, args.samples, args.seed,
                biases=biases, backend=args.backend, dtype=args.dtype, out=args.out, resume=args.resume,
                progress=not args.quiet, dask=args.dask, threads=args.threads,
                task_timeout=args.task_timeout)
    plots = []
    if args.out and not args.no_plots:
        try:
            from .plots import plot_sweep

            plots = plot_sweep(res, args.out)
        except ImportError as exc:
            print(f"gradkern sweep: no plots ({exc}); pip install matplotlib", file=sys.stderr)
    if args.json:
        print(res.to_json())
        return 0
    biased = "bias" in res.columns
    print(_table(
        ["activation", "depth", "dist", "weight"] + (["bias"] if biased else [])
        + ["samples", "mean|df/dw_1|", "mean|df/dw_L|", "zero(dw_1)", "mean|df/dx|"]
        + (["mean|df/db_1|"] if biased else []) + ["growth/layer", "seconds"],
        [[p["activation"], p["depth"], p["dist"], _setting(p["weight"])]
         + ([_setting(p["bias"])] if biased else [])
         + [f"{p['samples']:.3g}", _g(_layer(res, p, 1)), _g(_layer(res, p, p["depth"])),
            _g(_layer(res, p, 1, "zero_fraction")), _g(p["input_grad_mean_abs"])]
         + ([_g(_layer(res, p, 1, "bias_grad_mean_abs"))] if biased else [])
         + [_growth(p), f"{p['seconds']:.2f}"] for p in res.points]))
    if args.out:
        tables = [n for n in ("results.csv", "results.json", "points.csv", "results.parquet")
                  if os.path.exists(os.path.join(args.out, n))]
        print(f"\nwritten to {args.out}: {', '.join(tables)}, points/"
              + "".join(f", {os.path.basename(q)}" for q in plots))
    return 0


def _g(v):
    return "-" if v is None else f"{v:.4g}"


def _setting(v):
    """A weight or bias setting: 1.5, or its distribution."""
    return f"{v:g}" if isinstance(v, float) else str(v)


def _growth(point):
    """The growth rate per layer with its standard error, e.g. -0.123+-0.004."""
    rate, se = point["growth_rate"], point["growth_rate_se"]
    if rate is None:
        return "-"
    return f"{rate:.4g}" + ("" if se is None else f"+-{se:.2g}")


def _layer_settings(text):
    """One --weights/--biases value: comma-separated numbers, or one distribution."""
    if ":" in text:
        return [text.strip()]
    return _floats(text)


def _layer(res, point, layer, key="mean_abs_grad"):
    for r in res.rows:
        if r["point"] == point["point"] and r["layer"] == layer:
            return r[key]
    return None


def cmd_plot(args):
    from .plots import plot_dir

    for path in plot_dir(args.dir, args.out):
        print(path)
    return 0


def add_sweep_commands(sub):
    """The ``sweep`` and ``plot`` subcommands (kept in one block)."""
    s = sub.add_parser(
        "sweep", help="gradient statistics over activations x depths x input distributions",
        description="Fused streaming statistics of df/dw_i (and df/dx, f) for every grid point, "
                    "inputs drawn in-kernel from a Philox stream keyed by the seed: bit-identical "
                    "for any thread count, chunking or Dask layout.  With --out, each point is "
                    "written as it finishes and --resume continues an interrupted sweep.")
    s.add_argument("--activations", default="all", help="all, or comma-separated names (default all)")
    s.add_argument("--depths", default="3", help="e.g. 1-30, 1,2,5 or 1-5,10 (default 3)")
    s.add_argument("--dist", action="append", metavar="KIND:PARAMS",
                   help="input distribution, repeatable: normal:0,1 uniform:-3,3 laplace:0,1 "
                        "lognormal:0,1 student-t:3 constant:2 grid:-5,5 (default normal:0,1)")
    s.add_argument("--weights", type=_layer_settings, action="append", metavar="W",
                   help="weight settings, repeatable: comma-separated numbers, each used for "
                        "every layer, or a distribution (normal:0,1.5; any --dist kind) that "
                        "draws each sample's own weights per layer (default 1)")
    s.add_argument("--biases", type=_layer_settings, action="append", metavar="B",
                   help="bias settings, repeatable like --weights: numbers, or a distribution "
                        "(normal:0,0.05) drawn per sample and layer; adds df/db statistics "
                        "(default: no biases)")
    s.add_argument("--samples", default="1e6", help="samples per grid point, e.g. 1e9 (default 1e6)")
    s.add_argument("--seed", type=int, default=0, help="Philox key (default 0)")
    s.add_argument("--backend", default="auto", choices=["auto", "cpu", "cuda"])
    s.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    s.add_argument("--out", metavar="DIR", help="write manifest, points, tables and plots here")
    s.add_argument("--resume", action="store_true", help="continue the sweep in --out DIR")
    s.add_argument("--dask", metavar="ADDRESS", help="Dask scheduler address, or local:N")
    s.add_argument("--threads", type=int, help="Numba threads (per Dask task with --dask)")
    s.add_argument("--task-timeout", type=float, default=600.0, metavar="SECONDS",
                   help="with --dask: seconds to wait for a task before resubmitting it to the "
                        "other workers (at most twice), then stop (default 600)")
    s.add_argument("--json", action="store_true", help='print {"results": [...], "points": [...]}')
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--no-plots", action="store_true", help="do not draw plots into --out")
    s.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="redraw the plots of a sweep directory",
                       description="layers.png (mean |df/dw_i| per layer, a panel per family "
                                   "of activations) and heatmap.png (activation x depth) from "
                                   "the finished points in DIR (or its tables alone); growth.png "
                                   "(growth rate per layer against sigma_w, beside mean field's) "
                                   "for weights normal:0,sigma_w. Over several distributions, "
                                   "weights or biases each name says which: "
                                   "layers-<dist>-w<weight>-b<bias>.png, with the settings that "
                                   "differ (docs/sweeps.md).")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--out", metavar="OUTDIR", help="where to write the PNGs (default DIR)")
    p.set_defaults(func=cmd_plot)


# ---------------------------------------------------------------------------
class _Parser(argparse.ArgumentParser):
    """The parser of gradkern and of each command: options by their full names only (no
    prefix matching, so that a wrong option such as ``chain --seed`` is refused rather than
    taken for another one), and ``--debug`` before or after the command."""

    def __init__(self, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(**kwargs)
        # SUPPRESS: a command's parser sets the flag only when given, so it does not
        # reset a --debug given before the command
        self.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                          help="on an error, print the full traceback (also: GRADKERN_DEBUG=1)")


def _epilog():
    return "exit codes:\n" + "\n".join(f"  {code:<4} {what}" for code, what in EXIT_CODES.items()) \
        + "\n\nErrors are one line, `gradkern COMMAND: error: ...`, on stderr; --debug shows " \
          "the traceback."


def _representatives():
    from .activations import ACTIVATIONS

    return [name for name, spec in ACTIVATIONS.items() if spec.representative]


def build_parser():
    p = _Parser(
        prog="gradkern",
        description="Closed-form chain-rule gradients of activation chains, checked "
                    "against PyTorch autograd.",
        epilog=_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    v = sub.add_parser("vanishing", help="the corrected vanishing-gradient experiment, the original "
                       "experiment's 17 activations (or all)",
                       description="For each activation: seed numpy and torch with S, build the "
                                   "seed's 3-layer SimpleNet (weights 1), draw torch.randn((samples, 1)) "
                                   "and report mean |d out/d w1|, by gradkern and by autograd, ranked.")
    v.add_argument("--seed", type=int, required=True, help="seed for numpy and torch")
    v.add_argument("--samples", type=int, default=200, help="inputs per activation (default 200)")
    v.add_argument("--activations", type=lambda s: [a.strip() for a in s.split(",") if a.strip()],
                   help="all, or comma-separated names (default: the original experiment's 17, "
                        "which this reproduces; Threshold, without torch.nn defaults, runs as "
                        "Threshold(0.1, 20))")
    v.add_argument("--json", action="store_true", help="print JSON instead of a table")
    v.set_defaults(func=cmd_vanishing)

    c = sub.add_parser("chain", help="per-layer gradients of one input through an L-layer chain",
                       description="df/dw_i (and df/db_i) for every layer of "
                                   "f = a_L(w_L*a_{L-1}(...a_1(w_1*x + b_1)...) + b_L), "
                                   "gradkern and autograd side by side.")
    c.add_argument("--activation", required=True,
                   help="torch.nn class name, e.g. Tanh; or one per layer, comma-separated, "
                        "e.g. Tanh,ReLU,Tanh")
    c.add_argument("--param", action="append", type=_param, metavar="KEY=VALUE",
                   help="activation parameter, repeatable (e.g. --param negative_slope=0.2); "
                        "with one activation per layer, it goes to each that takes it")
    c.add_argument("--depth", type=int,
                   help="number of layers (default: the number of weights, biases or "
                        "activations given, or 4)")
    c.add_argument("--x", type=float, default=100.0, help="the input (default 100)")
    c.add_argument("--weights", type=_floats, help="comma-separated weights w1,w2,... (default ones)")
    c.add_argument("--biases", type=_floats,
                   help="comma-separated biases b1,b2,..., one per layer (default: none, "
                        "the seed's bias-free layers)")
    c.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    c.add_argument("--torch-seed", type=int,
                   help="seed of torch's generator for RReLU's training-mode noise in the "
                        "autograd run; the kernel is given the noise torch drew")
    c.add_argument("--json", action="store_true", help="print JSON instead of a table")
    c.set_defaults(func=cmd_chain)

    f = sub.add_parser("verify", help="parity of the kernels against torch autograd",
                       description="All activations x float32/float64 x depths x weight sets, on "
                                   "fresh random inputs and every kink and special value; exits "
                                   "non-zero on any failure.")
    f.add_argument("--backend", default="cpu", help="backend to check: cpu (default), or native / native-cuda "
                   "(the C++/CUDA libraries of cuda/, built by `make -C cuda`)")
    f.add_argument("--seed", type=int, help="seed for the random inputs (default: fresh)")
    f.add_argument("--depths", type=_positive_ints, default=[1, 3, 4, 30],
                   help="comma-separated depths (default 1,3,4,30)")
    f.add_argument("--activations", type=lambda s: [a.strip() for a in s.split(",") if a.strip()],
                   help="comma-separated activation names (default all)")
    f.add_argument("--quiet", action="store_true", help="no progress line")
    f.set_defaults(func=cmd_verify)

    b = sub.add_parser("bench", help="throughput of gradkern against torch, JAX and the memory floor",
                       description="Times the chain gradients (output, df/dw_i, df/dx) for each "
                                   "activation, size, dtype and lib; the first lib is the one "
                                   "the ratios refer to.  Libs: gradkern-cpu, torch-batched, "
                                   "torch-func, torch-compile, jax, seed-loop, memory-floor (copy "
                                   "only: the bandwidth bound).")
    b.add_argument("--activations", type=lambda s: [a.strip() for a in s.split(",") if a.strip()],
                   help="comma-separated names, or all (default: one smooth and one "
                        "piecewise-linear activation, the registry's representatives: "
                        f"{','.join(_representatives())})")
    b.add_argument("--sizes", type=_sizes,
                   default=[10**6, 10**7], help="comma-separated N (default 1e6,1e7)")
    b.add_argument("--dtypes", type=lambda s: [d.strip() for d in s.split(",") if d.strip()],
                   default=["float32"], help="float32 and/or float64 (default float32)")
    b.add_argument("--libs", type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                   default=["gradkern-cpu", "torch-batched", "jax", "memory-floor"],
                   help="comma-separated libs, the first is the reference of the ratios")
    b.add_argument("--depth", type=_positive_int, default=3, help="layers (default 3)")
    b.add_argument("--repeat", type=_positive_int, default=5,
                   help="timed calls per case, best kept (default 5)")
    b.add_argument("--out", help="also write the JSON here")
    b.add_argument("--json", action="store_true", help="print JSON instead of a table")
    b.add_argument("--quiet", action="store_true", help="no progress bar")
    b.set_defaults(func=cmd_bench)
    add_sweep_commands(sub)
    p.commands = sub.choices
    return p


def _debug_wanted(args):
    return getattr(args, "debug", False) or os.environ.get("GRADKERN_DEBUG", "") not in ("", "0")


def _user_errors():
    """The exceptions that mean "the input or the machine is not as needed", not "gradkern has
    a bug": bad values (ValueError, and TypeError, the type of bad input by gradkern's rules),
    files, disks and networks (OSError: also TimeoutError, TaskTimeoutError, connection
    errors), memory asked for (MemoryError), an optional dependency not installed
    (ImportError: torch, matplotlib, dask, numba-cuda load only when used) and a backend this
    machine cannot run.  Anything else (KeyError, OverflowError, RuntimeError, ...) is
    reported as unexpected."""
    from .errors import BackendUnavailableError

    return (ValueError, TypeError, OSError, MemoryError, ImportError, BackendUnavailableError)


def _one_line(exc):
    """The exception's message on one line (Dask's and numba's span several; numba's
    driver errors end in " :")."""
    return " ".join(str(exc).split()).rstrip(" :") or type(exc).__name__


def _interrupted(args):
    msg = f"gradkern {args.command}: interrupted"
    if args.command == "sweep" and args.out:
        msg += (f"; finished points are in {args.out}; continue with the same arguments "
                "and --resume")
    return msg


def _report(args, exc):
    """The error line and exit code of an exception that ended a command."""
    if isinstance(exc, KeyboardInterrupt):
        return _interrupted(args), EXIT_INTERRUPTED
    if isinstance(exc, _user_errors()):
        return f"gradkern {args.command}: error: {_one_line(exc)}", EXIT_USER_ERROR
    return (f"gradkern {args.command}: error: unexpected {type(exc).__name__}: "
            f"{_one_line(exc)} (a bug in gradkern? re-run with --debug for the traceback "
            "and report it)", EXIT_FAILED)


def _print_traceback(exc):
    import traceback

    traceback.print_exception(type(exc), exc, exc.__traceback__)


def _stdout_closed(exc, debug):
    """Python's recipe for a reader that closed our stdout (``gradkern ... | head -1``):
    point fd 1 at /dev/null, so that the flush at exit does not raise again (and print
    "Exception ignored ..."), and exit quietly."""
    if debug:
        _print_traceback(exc)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return EXIT_BROKEN_PIPE


def _failed(args, exc, debug):
    """One line on stderr (after the traceback with --debug); the exit code."""
    message, code = _report(args, exc)
    if debug:
        _print_traceback(exc)
    elif code == EXIT_INTERRUPTED and sys.stderr.isatty():
        print(file=sys.stderr)  # end the progress line and the terminal's ^C
    print(message, file=sys.stderr)
    return code


def _one_line_warnings(command):
    """gradkern's own warnings (a damaged cache entry or point file, a
    resubmitted Dask task) as one line each, like the errors."""
    import warnings

    from .errors import GradkernWarning

    default = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, GradkernWarning):
            print(f"gradkern {command}: warning: {message}", file=file or sys.stderr)
        else:
            default(message, category, filename, lineno, file, line)

    warnings.showwarning = show
    return default


def main(argv=None):
    """Run one command; returns the exit code (:data:`EXIT_CODES`)."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # refused by the command's parser, so that its usage line is shown
        parser.commands[args.command].error(f"unrecognized arguments: {' '.join(unknown)}")
    debug = _debug_wanted(args)
    import warnings

    previous = _one_line_warnings(args.command)
    try:
        code = args.func(args)
        sys.stdout.flush()  # a closed pipe raises here, inside the try, not at exit
        return code
    except BrokenPipeError as exc:
        return _stdout_closed(exc, debug)
    except (Exception, KeyboardInterrupt) as exc:
        return _failed(args, exc, debug)
    finally:
        warnings.showwarning = previous


if __name__ == "__main__":
    sys.exit(main())
