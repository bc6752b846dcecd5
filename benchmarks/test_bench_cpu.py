"""Throughput of the chain gradients: gradkern's CPU kernel against the ways
users compute them with torch and JAX (see gradkern.bench.cpu.LIBS; each lib
computes the results its ``outputs`` name, and is checked on those).

Each case times the steady state (setup and compilation outside the timing),
records samples/s in extra_info, and checks its result: gradkern against
torch autograd on the first 20k samples, every peer against gradkern.
"""
import numpy as np
import pytest

import gradkern as gk
from gradkern import reference
from gradkern.activations import default
from gradkern.bench.cpu import LIBS, bytes_per_sample, machine_info

CHECK_N = 20_000


def _close(a, b, dtype, piecewise):
    ok = ~np.isnan(b)
    if piecewise:
        assert np.array_equal(a[ok], b[ok])
    else:
        rtol, atol = (1.3e-6, 1e-5) if dtype == np.float32 else (1e-7, 1e-7)
        np.testing.assert_allclose(a[ok], b[ok], rtol=rtol * 4, atol=atol)


def test_chain_grad(benchmark, lib, act_name, n, dtype, depth):
    spec = LIBS[lib]
    act = default(act_name)  # deterministic: RReLU in eval mode
    reason = spec.skip_reason(act, n)
    if reason:
        pytest.skip(reason)
    x = (np.random.default_rng(0).standard_normal(n) * 2).astype(dtype)
    w = np.ones(depth, dtype)
    run, to_numpy = spec.make(x, act, w)
    benchmark.group = f"{act_name} {dtype.name} depth {depth} N={n:g}"
    result = benchmark(run)
    benchmark.extra_info.update(
        lib=lib, activation=act_name, n=n, dtype=dtype.name, depth=depth,
        samples_per_s=n / benchmark.stats.stats.min,
        outputs=list(spec.outputs),
        gbytes_per_s=n * bytes_per_sample(depth, dtype, spec.outputs) / benchmark.stats.stats.min
        / 1e9,
        machine=machine_info())
    if to_numpy is None:  # memory-floor copies x: a bound, not a result to check
        return
    result = to_numpy(result)
    m = min(n, CHECK_N)
    expect = (reference.per_sample_grads(x[:m], act, w) if lib.startswith("gradkern-cpu")
              else gk.chain_grad(x[:m], act, w))
    for name, got, exp in zip(expect._fields, result, expect):
        if name not in spec.outputs:  # e.g. jax-grad: df/dw alone
            assert got is None, name
            continue
        _close(np.asarray(got)[:m], exp, dtype, act.piecewise_linear)
