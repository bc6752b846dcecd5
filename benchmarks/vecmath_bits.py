"""The vector math of commit BASE against the working tree's: output bits and compiled code.

    .venv/bin/python benchmarks/vecmath_bits.py --base COMMIT [--out FILE] [--quick]

Written to check that writing each ``gradkern._numba.vecmath`` function once
(a factory over a per-dtype constant table) instead of as float32/float64
twins changed nothing.  It measures, BASE's module against the working tree's:

1. bits: every one of the 2^32 float32 bit patterns through exp, expm1, log1p,
   tanh and log; for float64, 2^28 random bit patterns from the whole range
   (every exponent, both signs, NaNs), 2^28 from the band 2^-40..2^10 where
   the functions work, and 2^16 ulp either side of each switch, clamp and edge
   point, through those five and cossin_turns.  Raw output bits, NaN payloads
   included, must be equal.
2. loop code: ``out[i] = f(x[i])`` compiled from each module; the assembly's
   instructions counted and compared line by line (symbol names aside), and
   its constant pools with them.
3. in context, in a subprocess per tree: every CPU chain kernel (activation x
   dtype, serial build) and the draw kernel (vlog, vcossin_turns, vexp, vexpm1),
   the same comparison; and, where numba-cuda's NVVM loads (no GPU needed),
   the PTX of every CUDA chain kernel and of the fused sweep kernel.

Writes a short JSON summary (counts only) to ``--out``.  ``--quick`` checks
2^24 inputs per set instead, for trying the script out.
"""
import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ["exp", "expm1", "log1p", "tanh", "log", "cossin_turns"]
CASES = [(n, dt) for n in NAMES for dt in ("float32", "float64")
         if (n, dt) != ("cossin_turns", "float32")]

#: switch, clamp and edge points (both signs): tanh's 0.625 and saturation; exp's
#: and expm1's clamps, overflow, subnormal and underflow edges and expm1's 2^n
#: split; log's and log1p's exponent steps, -1 and 1; cossin's quarter turns
EDGES = [0.625, 10.0, 20.0, 30.0, 40.0, 89.0, 104.0, 710.0, 746.0,
         88.72283935546875, 87.33654475055310, 103.97207708399179, 88.02969193111305,
         709.782712893384, 708.3964185322641, 745.1332191019411, 709.0895657128241,
         1.0, 0.4142135623730951, 0.2928932188134524, 1.4142135623730951,
         0.7071067811865476, 0.34657359027997264, 0.25, 0.5, 0.75, 2.0**-126, 2.0**-1022]
EDGE_ULPS = 1 << 16


# ----------------------------------------------------------------------------- the two modules
def _extract(commit, where):
    """The gradkern package of ``commit``, unpacked below ``where``."""
    archive = subprocess.run(["git", "-C", ROOT, "archive", commit, "gradkern"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", where], input=archive, check=True)
    return where


def _load_base_vecmath(tree):
    """BASE's vecmath.py as a module beside the working tree's (its relative
    imports resolve to the working tree's ``_numba``, whose intrinsics the
    change did not touch)."""
    path = os.path.join(tree, "gradkern", "_numba", "vecmath.py")
    spec = importlib.util.spec_from_file_location("gradkern._numba._vecmath_base", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------- 1. bits
def _counters(old, new):
    """Numba kernels counting the inputs on which ``old`` and ``new`` differ in
    any output bit: all float32 patterns in [lo, hi), and float64 patterns
    made from SplitMix64 of a counter (whole range, or the working band)."""
    import numba

    from gradkern._numba.intrinsics import bits_float, float_bits

    @numba.njit(inline="always")
    def differ1(x):
        return float_bits(old(x)) != float_bits(new(x))

    @numba.njit(inline="always")
    def differ2(x):  # cossin_turns: a pair
        a, b = old(x)
        c, d = new(x)
        return (float_bits(a) != float_bits(c)) | (float_bits(b) != float_bits(d))

    differ = differ2 if old.__name__ == "vcossin_turns" else differ1

    @numba.njit(parallel=True, error_model="numpy")
    def every32(lo, hi):
        n = 0
        for i in numba.prange(lo, hi):
            n += differ(bits_float(np.int32(i)))  # int32(i): a wrapping cast
        return n

    @numba.njit(inline="always")
    def splitmix(i, seed):
        z = (np.uint64(i) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))

    @numba.njit(parallel=True, error_model="numpy")
    def random64(n, seed, band):
        count = 0
        for i in numba.prange(n):
            z = splitmix(i, seed)
            if band:  # sign, exponent 2^-40..2^10, random mantissa
                e = np.uint64(1023 - 40) + (z >> np.uint64(53)) % np.uint64(51)
                z = (z & np.uint64((1 << 52) - 1)) | (e << np.uint64(52)) | \
                    ((z >> np.uint64(63)) << np.uint64(63))
            count += differ(bits_float(np.int64(z)))
        return count

    @numba.njit(error_model="numpy")
    def listed(x):
        n = 0
        for i in range(x.shape[0]):
            n += differ(x[i])
        return n

    return every32, random64, listed


def _near_edges(dtype):
    u = np.uint32 if dtype == np.float32 else np.uint64
    edges = np.array(EDGES + [-e for e in EDGES] + [0.0, -0.0, np.inf, -np.inf, np.nan], dtype)
    steps = np.arange(-EDGE_ULPS, EDGE_ULPS + 1).astype(u)  # wraps, as bits do
    return (edges.view(u)[:, None] + steps).ravel().view(dtype)


def measure_bits(old, new, quick):
    out = {}
    for name, dt in CASES:
        t = time.time()
        every32, random64, listed = _counters(getattr(old, "v" + name), getattr(new, "v" + name))
        dtype = np.dtype(dt).type
        near = _near_edges(dtype)
        differ = listed(near)
        if dt == "float32" and not quick:
            differ += sum(every32(lo, lo + (1 << 28)) for lo in range(0, 1 << 32, 1 << 28))
            inputs = 1 << 32
            how = "every float32 bit pattern"
        elif dt == "float32":
            negative = 3 << 30  # -2.0 and up
            differ += every32(0, 1 << 24) + every32(negative, negative + (1 << 24))
            inputs = 2 << 24
            how = "two blocks of 2^24 consecutive bit patterns"
        else:
            n = 1 << (24 if quick else 28)
            differ += random64(n, 1, False) + random64(n, 2, True)
            inputs = 2 * n
            how = f"2^{n.bit_length() - 1} random bit patterns + as many in 2^-40..2^10"
        out[f"{name}/{dt}"] = {"inputs": int(inputs + near.size), "differ": int(differ),
                               "how": how + f", plus {EDGE_ULPS} ulp around each edge point"}
        print(f"bits {name:13s} {dt}: {inputs + near.size:>12,d} inputs, {differ} differ "
              f"({time.time() - t:.0f} s)", flush=True)
    return out


# ----------------------------------------------------------------------------- 2./3. code
_SYMBOL = re.compile(r"_ZN\S+?(?=[,\s)]|$)|\.L\w+|__numba\w*|\$\w+")


_DATA = (".byte", ".short", ".long", ".quad", ".zero", ".4byte", ".8byte")


def asm_instructions(asm):
    """The instruction lines of x86 assembly, whitespace normalised, symbols
    (mangled names, local labels) replaced by one placeholder; then the
    constant pools' data lines, marked "data", so that constants compare too."""
    lines, data = [], []
    for line in asm.splitlines():
        text = re.sub(r"\s+", " ", line.split("#")[0].strip())
        if text.startswith(_DATA):
            data.append("data " + text)
        elif text and not text.startswith(".") and not text.endswith(":"):
            lines.append(_SYMBOL.sub("SYM", text))
    return lines + data


def _count(lines):
    return sum(1 for line in lines if not line.startswith("data "))


def ptx_instructions(ptx):
    """The instruction lines of PTX (comments, directives and debug lines dropped)."""
    lines = []
    for line in ptx.splitlines():
        text = line.split("//")[0].strip()
        if not text or text.startswith((".", "{", "}", "$")) or text.endswith(":"):
            continue
        lines.append(_SYMBOL.sub("SYM", re.sub(r"\s+", " ", text)))
    return lines


def _loop(fn, pair):
    import numba

    if pair:
        @numba.njit(error_model="numpy")
        def apply2(x, c, s):
            for i in range(x.shape[0]):
                c[i], s[i] = fn(x[i])

        return apply2

    @numba.njit(error_model="numpy")
    def apply(x, out):
        for i in range(x.shape[0]):
            out[i] = fn(x[i])

    return apply


def measure_loops(old, new):
    out = {}
    for name, dt in CASES:
        counts = []
        for module in (old, new):
            pair = name == "cossin_turns"
            kernel = _loop(getattr(module, "v" + name), pair)
            x = np.ones(64, dt)
            kernel(x, *[np.empty_like(x) for _ in range(1 + pair)])
            counts.append(asm_instructions(next(iter(kernel.inspect_asm().values()))))
        out[f"{name}/{dt}"] = {"old": _count(counts[0]), "new": _count(counts[1]),
                               "identical": counts[0] == counts[1]}
        print(f"loop {name:13s} {dt}: {_count(counts[0])} / {_count(counts[1])} instructions, "
              f"identical: {counts[0] == counts[1]}", flush=True)
    return out


def _worker_cpu():
    """Assembly of every serial chain kernel and of the draw kernel, compiled
    by the gradkern this process imports."""
    import gradkern as gk
    from gradkern.chain import cpu
    from gradkern.stream import dists

    result = {}
    for name in gk.ACTIVATIONS:
        variants = [(name, gk.activations.fresh(name))]
        if name == "RReLU":
            variants.append(("RReLU(training)", gk.activation(name, training=True)))
        for label, act in variants:
            for dt in ("float32", "float64"):
                x = np.linspace(-3, 3, 300).astype(dt)
                gk.chain_grad(x, act, np.full(4, 0.9, dt), seed=0 if act.stochastic else None)
                kernel = cpu.get_kernel(act.ops(), per_sample_noise=act.stochastic, parallel=False)
                sig = next(s for s in kernel.signatures if str(s[0].dtype) == dt)
                result[f"chain {label}/{dt}"] = asm_instructions(kernel.inspect_asm(sig))
    for dt in ("float32", "float64"):
        gk.draw("normal:0,1", 100, 0, dtype=dt)
    for sig in dists._draw_into.signatures:
        result[f"draw {sig[-1].dtype}"] = asm_instructions(dists._draw_into.inspect_asm(sig))
    return result


def _worker_ptx():
    """PTX of every CUDA chain kernel and of the fused sweep kernel (Tanh)."""
    from gradkern.activations import ACTIVATIONS, activation, fresh
    from gradkern.ptx import compile_chain_ptx, compile_stats_ptx, nvvm_available

    if not nvvm_available():
        return None
    result = {}
    for name in ACTIVATIONS:
        variants = [(name, fresh(name))]
        if name == "RReLU":
            variants = [(name, activation(name, training=False)),
                        ("RReLU(training)", activation(name, training=True))]
        for label, act in variants:
            for dt in ("float32", "float64"):
                result[f"chain {label}/{dt}"] = ptx_instructions(compile_chain_ptx(act, dt))
    for dt in ("float32", "float64"):
        result[f"sweep Tanh/{dt}"] = ptx_instructions(compile_stats_ptx(activation("Tanh"), dt))
    return result


def _run_worker(tree, kind, cache_dir):
    env = {**os.environ, "PYTHONPATH": tree, "NUMBA_CACHE_DIR": cache_dir}
    if kind == "ptx":
        env["NUMBA_ENABLE_CUDASIM"] = "0"
    code = (f"import sys, json; sys.path.insert(0, {tree!r}); import gradkern; "
            f"assert gradkern.__file__.startswith({tree!r}), gradkern.__file__; "
            f"sys.path.insert(0, {os.path.join(ROOT, 'benchmarks')!r}); import vecmath_bits as vb; "
            f"print(json.dumps(vb._worker_{kind}()))")
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True,
                          text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.splitlines()[-1])


def measure_context(base_tree, kind):
    with tempfile.TemporaryDirectory() as cache:
        old = _run_worker(base_tree, kind, os.path.join(cache, "old"))
        new = _run_worker(ROOT, kind, os.path.join(cache, "new"))
    if old is None or new is None:
        return None
    assert old.keys() == new.keys()
    rows = {k: (_count(old[k]), _count(new[k]), old[k] == new[k]) for k in old}
    for key, (a, b, same) in rows.items():
        print(f"{kind} {key}: {a} / {b} instructions, identical: {same}", flush=True)
    return {"kernels": len(rows), "identical": sum(r[2] for r in rows.values()),
            "instructions_old": sum(r[0] for r in rows.values()),
            "instructions_new": sum(r[1] for r in rows.values()),
            "per_kernel_old_new": {k: [a, b] for k, (a, b, _) in rows.items()}}


# ----------------------------------------------------------------------------- main
def _dirty():
    """Whether the working tree's gradkern differs from HEAD's."""
    cmd = ["git", "-C", ROOT, "diff", "--quiet", "HEAD", "--", "gradkern"]
    return subprocess.run(cmd).returncode != 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", required=True, help="the commit with the float32/float64 twins")
    parser.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results",
                                                      "vecmath-one-definition.json"))
    parser.add_argument("--quick", action="store_true", help="2^24 inputs per set")
    args = parser.parse_args(argv)
    base = subprocess.run(["git", "-C", ROOT, "rev-parse", args.base], check=True,
                          capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    import llvmlite
    import numba

    from gradkern._numba import vecmath as new

    with tempfile.TemporaryDirectory() as where:
        tree = _extract(base, where)
        old = _load_base_vecmath(tree)
        t0 = time.time()
        summary = {
            "what": "gradkern._numba.vecmath: float32/float64 twins (base) against one "
                    "definition per function (new); benchmarks/vecmath_bits.py",
            "base": base, "new": head + (" + working tree" if _dirty() else ""),
            "machine": platform.processor() or platform.machine(),
            "numba": numba.__version__, "llvmlite": llvmlite.__version__,
            "loop_asm": measure_loops(old, new),
            "chain_and_draw_asm": measure_context(tree, "cpu"),
            "ptx": measure_context(tree, "ptx") or "NVVM not available",
            "bits": measure_bits(old, new, args.quick),
        }
        summary["seconds"] = round(time.time() - t0)
    bits = summary["bits"].values()
    summary["all_bits_identical"] = all(b["differ"] == 0 for b in bits)
    summary["inputs_total"] = sum(b["inputs"] for b in bits)
    with open(args.out, "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    print(f"wrote {args.out}: bits identical {summary['all_bits_identical']} on "
          f"{summary['inputs_total']:,d} inputs")


if __name__ == "__main__":
    main()
