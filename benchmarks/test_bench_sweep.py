"""Fused sweep statistics: gradkern against the best equivalent a user would
write with JAX and with torch (off by default, like every benchmark here).

    GRADKERN_SWEEP_N=1e8 pytest benchmarks/test_bench_sweep.py --benchmark-enable \\
        --benchmark-only --benchmark-json=benchmarks/results/sweep-cpu.json
    python benchmarks/sweep_report.py benchmarks/results/sweep-cpu.json

Every lib does the same job: N inputs ~ N(0, 1) drawn on the fly, a depth-3
chain with weights 1 (float32), and for each of df/dw_1..3, df/dx and f the
sum, sum |g|, sum g^2, min, max, count of zeros, sum log10|g| over non-zero g
and a 354-bin histogram of log10|g|, accumulated over chunks of 2**20 samples
(peers: float32 reductions per chunk, float64 across chunks).

- gradkern: ``gradkern.sweep(..., backend="cpu")`` (fused, Numba threads).
- jax: ``jit`` of ``jax.random.normal`` + ``vmap(value_and_grad)`` over the
  weights and x + the reductions, one compiled function per chunk.
- torch: ``torch.randn`` + the torch.nn module + ``backward`` of the summed
  output with per-sample weight tensors (which gives per-sample df/dw), then
  the same reductions.

Each case times one full run after a small warm-up run (compilation outside
the timing) and asserts its mean |df/dw_1| agrees with gradkern's within
sampling error.  Environment: GRADKERN_SWEEP_N (default 1e7),
GRADKERN_SWEEP_LIBS (gradkern,jax,torch), GRADKERN_SWEEP_ACTS (all).
"""
import os
import time

import numpy as np
import pytest

import gradkern as gk
from gradkern.bench.peers import jax_activation, jax_skip_reason

N = int(float(os.environ.get("GRADKERN_SWEEP_N", "1e7")))
LIBS = os.environ.get("GRADKERN_SWEEP_LIBS", "gradkern,jax,torch").split(",")
_acts = os.environ.get("GRADKERN_SWEEP_ACTS", "all")
ACTS = list(gk.ACTIVATIONS) if _acts == "all" else _acts.split(",")
DEPTH = 3
CHUNK = 1 << 20
BINS = 354
_REF = {}


def run_gradkern(name, n):
    res = gk.sweep(gk.activations.fresh(name), DEPTH, "normal:0,1", 1.0, n, seed=0,
                   backend="cpu")
    return res.rows[0]["mean_abs_grad"]


# ----------------------------------------------------------------------------- JAX
def _jax_chunk_fn(name):
    import jax
    import jax.numpy as jnp

    # one table of JAX definitions (gradkern.bench.peers); a slope per sample
    # and layer is drawn below for the activations that take one (RReLU)
    act = jax_activation(gk.activations.fresh(name))

    def f(w, x, slopes):
        a = x
        for k in range(DEPTH):
            a = act(w[k] * a, slopes[k])
        return a

    g = jax.vmap(jax.value_and_grad(f, argnums=(0, 1)), in_axes=(None, 0, 1))

    @jax.jit
    def chunk(key, w):
        kx, ks = jax.random.split(key)
        x = jax.random.normal(kx, (CHUNK,), jnp.float32)
        slopes = jax.random.uniform(ks, (DEPTH, CHUNK), jnp.float32, 1 / 8, 1 / 3)
        y, (gw, gx) = g(w, x, slopes)
        vals = jnp.concatenate([gw.T, gx[None], y[None]], 0)
        a = jnp.abs(vals)
        nz = a != 0
        lg = jnp.where(nz, jnp.log10(jnp.where(nz, a, 1.0)), 0.0)
        b = jnp.where(nz, jnp.clip(jnp.floor((lg + 48) * 4).astype(jnp.int32) + 1, 0, BINS - 1),
                      BINS)
        hist = jax.vmap(lambda bb: jnp.bincount(bb, length=BINS + 1))(b)
        return (vals.sum(1), a.sum(1), (vals * vals).sum(1), vals.min(1), vals.max(1),
                (~nz).sum(1), lg.sum(1), hist)

    return chunk


def make_jax(name):
    import jax
    import jax.numpy as jnp

    chunk = _jax_chunk_fn(name)
    w = jnp.ones(DEPTH, jnp.float32)
    key = jax.random.key(0)

    def run(n):
        tot = None
        for c in range(-(-n // CHUNK)):
            r = [np.asarray(v, dtype=np.float64) for v in chunk(jax.random.fold_in(key, c), w)]
            tot = r if tot is None else [t + v for t, v in zip(tot, r)]
        return tot[1][0] / (CHUNK * -(-n // CHUNK))

    return run


# ----------------------------------------------------------------------------- torch
def make_torch(name):
    import torch

    module = getattr(torch.nn, name)()
    gen = torch.Generator().manual_seed(0)

    def run(n):
        tot = None
        for _ in range(-(-n // CHUNK)):
            x = torch.randn(CHUNK, generator=gen).requires_grad_()
            ws = [torch.ones(CHUNK, requires_grad=True) for _ in range(DEPTH)]
            a = x
            for w in ws:
                a = module(w * a)
            a.sum().backward()
            with torch.no_grad():
                vals = torch.stack([w.grad for w in ws] + [x.grad, a.detach()])
                ab = vals.abs()
                nz = ab != 0
                lg = torch.where(nz, torch.log10(torch.where(nz, ab, 1.0)), 0.0)
                b = torch.where(nz, ((lg + 48) * 4).floor().long().add(1).clamp(0, BINS - 1),
                                BINS)
                hist = torch.stack([torch.bincount(r, minlength=BINS + 1) for r in b])
                r = [vals.sum(1), ab.sum(1), (vals * vals).sum(1), vals.amin(1), vals.amax(1),
                     (~nz).sum(1), lg.sum(1), hist]
            r = [v.double().numpy() for v in r]
            tot = r if tot is None else [t + v for t, v in zip(tot, r)]
        return tot[1][0] / (CHUNK * -(-n // CHUNK))

    return run


MAKERS = {"gradkern": lambda name: (lambda n: run_gradkern(name, n)), "jax": make_jax,
          "torch": make_torch}


def machine():
    import platform

    import numba

    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
            "numba_threads": numba.get_num_threads(), "numpy": np.__version__,
            "numba": numba.__version__}
    try:
        from gradkern.bench.cpu import machine_info

        info.update(machine_info())
    except Exception:  # noqa: BLE001 - the lead's helper is optional here
        pass
    for mod in ("jax", "torch"):
        try:
            info[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return info


# names differ from conftest.py's "lib"/"act_name", which it parametrizes itself
@pytest.mark.parametrize("sweep_act", ACTS)
@pytest.mark.parametrize("sweep_lib", LIBS)
def test_sweep_throughput(benchmark, sweep_lib, sweep_act):
    lib, act_name = sweep_lib, sweep_act
    if lib == "jax":
        pytest.importorskip("jax")
        reason = jax_skip_reason(gk.activation(act_name))
        if reason:
            pytest.skip(reason)
    if lib == "torch":
        pytest.importorskip("torch")
    run = MAKERS[lib](act_name)
    run(CHUNK)  # compile / warm up
    benchmark.group = f"sweep {act_name} depth {DEPTH} N={N:g}"
    t0 = time.perf_counter()
    mean_abs = benchmark.pedantic(run, args=(N,), rounds=1, iterations=1, warmup_rounds=0)
    seconds = time.perf_counter() - t0
    benchmark.extra_info.update(lib=lib, activation=act_name, n=N, depth=DEPTH,
                                dtype="float32", samples_per_s=N / seconds,
                                mean_abs_grad_w1=float(mean_abs), machine=machine())
    ref = _REF.setdefault(act_name, run_gradkern(act_name, min(N, 1 << 22)))
    # different random streams: agree within sampling error (and torch/JAX's own
    # conventions at kinks, which carry no probability mass under N(0, 1))
    assert mean_abs == pytest.approx(ref, rel=0.02, abs=1e-7)
