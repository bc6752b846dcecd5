"""The ways users compute these gradients today, as comparable callables.

Each entry of :data:`LIBS` takes ``(x, act, weights)`` (numpy x of the benchmark
dtype) and returns a zero-argument function that computes the results its
``outputs`` name for all of x -- the output, the per-sample df/dw (N, L) and
df/dx, or (``jax-grad``: ``vmap(grad)``) df/dw alone -- plus a ``to_numpy``
that turns its result into a :class:`~gradkern.ChainGrad` (None for a result
it does not compute) so benchmarks can check it.  Like is compared with like:
each peer's ratio is taken against the gradkern lib (and the memory floor)
with the same ``outputs`` (:func:`reference_lib`).
Setup work (allocations of outputs, tracing, compilation) happens in the
factory, outside the timed call, so a timing is the steady-state cost.

Peers import lazily (torch, torch.func, jax): the module itself imports only
numpy and gradkern.
"""
import functools
import platform
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..api import chain_grad
from ..chain.arrays import ChainGrad
from .peers import jax_activation, jax_skip_reason

__all__ = ["LIBS", "Lib", "machine_info", "ALL_OUTPUTS", "WEIGHT_GRADS", "reference_lib"]

#: what a lib returns: the three results, or the weight gradients alone
ALL_OUTPUTS = ("output", "weight_grads", "input_grad")
WEIGHT_GRADS = ("weight_grads",)


@dataclass(frozen=True)
class Lib:
    name: str
    make: Callable  # (x, act, weights) -> (run, to_numpy)
    max_n: int  # larger sizes are skipped (too slow or too much memory)
    doc: str
    cannot: Callable = lambda act: None  # (act) -> why it cannot run act, or None
    outputs: tuple = ALL_OUTPUTS  # the results it computes (chain_grad's outputs= names)

    def skip_reason(self, act, n):
        reason = self.cannot(act)
        if reason:
            return f"{self.name}: {reason}"
        if n > self.max_n:
            return f"{self.name} is not run above N = {self.max_n:g}"
        return None


def _out_arrays(x, depth, outputs):
    n, dt = x.shape[0], x.dtype
    shapes = {"output": (n,), "weight_grads": (n, depth), "input_grad": (n,)}
    return ChainGrad(*(np.empty(shapes[k], dt) if k in outputs else None for k in ALL_OUTPUTS))


def _gradkern_cpu(x, act, w, outputs=ALL_OUTPUTS):
    w = np.asarray(w, dtype=x.dtype)
    n, depth = x.shape[0], w.shape[0]
    out = _out_arrays(x, depth, outputs)
    noise = None
    if act.stochastic:
        lower, upper = act.noise_bounds()
        noise = np.random.default_rng(0).uniform(lower, upper, (n, depth)).astype(x.dtype)
    wanted = None if outputs == ALL_OUTPUTS else outputs

    def run():
        return chain_grad(x, act, w, out=out, noise=noise, outputs=wanted)

    run()  # compile (or load from the disk cache) outside the timing
    return run, lambda r: r


def _torch_module(act, x):
    import torch

    from ..reference import to_torch

    return to_torch(act).to(torch.float32 if x.dtype == np.float32 else torch.float64)


def _torch_batched(x, act, w):
    """One graph for the batch: per-sample copies of the weights, one backward."""
    import torch

    module = _torch_module(act, x)
    xt = torch.from_numpy(x)
    wt = torch.as_tensor(np.asarray(w, dtype=x.dtype))
    n = x.shape[0]

    def run():
        W = wt.expand(n, -1).clone().requires_grad_(True)
        xg = xt.clone().requires_grad_(True)
        a = xg
        for k in range(W.shape[1]):
            a = module(W[:, k] * a)
        a.backward(torch.ones_like(a))
        return a.detach(), W.grad, xg.grad

    return run, lambda r: ChainGrad(*(t.numpy() for t in r))


def _torch_func(x, act, w, compile=False):
    """torch.func.vmap(grad) of the scalar chain, optionally torch.compile'd."""
    import torch
    from torch.func import grad, vmap

    module = _torch_module(act, x)
    xt = torch.from_numpy(x)
    wt = torch.as_tensor(np.asarray(w, dtype=x.dtype))

    def f(wv, xn):
        a = xn
        for k in range(wv.shape[0]):
            a = module(wv[k] * a)
        return a

    def f_all(wv, xn):
        gw, gx = grad(f, argnums=(0, 1))(wv, xn)
        return f(wv, xn), gw, gx

    fn = vmap(f_all, in_dims=(None, 0))
    if compile:
        fn = torch.compile(fn)
    run = lambda: fn(wt, xt)  # noqa: E731
    run()  # trace / compile outside the timing
    return run, lambda r: ChainGrad(*(t.detach().numpy() for t in r))


def _seed_loop(x, act, w):
    """The seed notebook's loop: one nn.Module forward/backward per sample."""
    import torch

    from ..reference import SimpleNet, seed_loop_grads

    net = SimpleNet(_torch_module(act, x), list(map(float, w)),
                    dtype=torch.float32 if x.dtype == np.float32 else torch.float64)
    return (lambda: seed_loop_grads(net, x)[0]), (lambda r: r)


def _jax_chain(x, act, w):
    """``(jax, f, xj, wj)``: the chain f(w, x) of one sample in JAX, and the
    inputs on JAX's device (float64 switched on for float64 inputs)."""
    import jax

    if x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    a_fn = jax_activation(act)

    def f(wv, xn):
        a = xn
        for k in range(wv.shape[0]):
            a = a_fn(wv[k] * a, None)
        return a

    xj = jax.device_put(jnp.asarray(x))
    wj = jax.device_put(jnp.asarray(np.asarray(w, dtype=x.dtype)))
    return jax, f, xj, wj


def _jax(x, act, w):
    """JAX: jit(vmap(value_and_grad(f))) over the samples."""
    jax, f, xj, wj = _jax_chain(x, act, w)
    fn = jax.jit(jax.vmap(jax.value_and_grad(f, argnums=(0, 1)), in_axes=(None, 0)))

    def run():
        y, (gw, gx) = fn(wj, xj)
        return jax.block_until_ready((y, gw, gx))

    run()  # trace and compile outside the timing
    return run, lambda r: ChainGrad(*(np.asarray(t) for t in r))


def _jax_grad(x, act, w):
    """JAX: jit(vmap(grad(f))) with respect to the weights: df/dw alone."""
    jax, f, xj, wj = _jax_chain(x, act, w)
    fn = jax.jit(jax.vmap(jax.grad(f), in_axes=(None, 0)))

    def run():
        return jax.block_until_ready(fn(wj, xj))

    run()  # trace and compile outside the timing
    return run, lambda r: ChainGrad(None, np.asarray(r), None)


def _no_vmap(act):
    if not act.spec.torch_vmap:
        return f"torch.func.vmap cannot batch torch.nn.{act.name}"
    return None


LIBS = {
    "gradkern-cpu": Lib("gradkern-cpu", _gradkern_cpu, 10**9,
                        "gradkern.chain_grad, Numba parallel CPU kernel, preallocated out="),
    "gradkern-cpu-w": Lib("gradkern-cpu-w",
                          lambda x, a, w: _gradkern_cpu(x, a, w, WEIGHT_GRADS), 10**9,
                          "gradkern.chain_grad(outputs=('weight_grads',)), preallocated out=",
                          outputs=WEIGHT_GRADS),
    "torch-batched": Lib("torch-batched", _torch_batched, 3 * 10**7,
                         "torch autograd on the batch, per-sample weight copies, one backward"),
    "torch-func": Lib("torch-func", _torch_func, 10**7, "torch.func.vmap(grad(f))",
                      _no_vmap),
    "torch-compile": Lib("torch-compile", lambda x, a, w: _torch_func(x, a, w, compile=True),
                         10**7, "torch.compile(torch.func.vmap(grad(f)))", _no_vmap),
    "seed-loop": Lib("seed-loop", _seed_loop, 10**4,
                     "the seed notebook: per-sample nn.Module forward + backward"),
    "jax": Lib("jax", _jax, 10**8, "JAX jit(vmap(value_and_grad(f)))", jax_skip_reason),
    "jax-grad": Lib("jax-grad", _jax_grad, 10**8, "JAX jit(vmap(grad(f))): df/dw alone",
                    jax_skip_reason, outputs=WEIGHT_GRADS),
}


# ----------------------------------------------------------------------------
# The memory floor: the same bytes moved, no arithmetic
# ----------------------------------------------------------------------------
def bytes_per_sample(depth, dtype, outputs=ALL_OUTPUTS):
    """Bytes that must move per sample: read x; write what ``outputs`` names
    of f(x), L df/dw_i and df/dx (all three: (3 + L) values)."""
    values = 1 + ("output" in outputs) + depth * ("weight_grads" in outputs) \
        + ("input_grad" in outputs)
    return values * np.dtype(dtype).itemsize


def reference_lib(lib):
    """The gradkern lib with ``lib``'s outputs: what its ratio is taken against."""
    return "gradkern-cpu-w" if LIBS[lib].outputs == WEIGHT_GRADS else "gradkern-cpu"


def floor_lib(lib):
    """The memory floor with ``lib``'s outputs."""
    return "memory-floor-w" if LIBS[lib].outputs == WEIGHT_GRADS else "memory-floor"


@functools.lru_cache(maxsize=None)
def _floor_kernel(outputs=ALL_OUTPUTS):
    import numba

    from .._numba.cache import cache_kernel
    from ..chain.core import BLOCK
    from ..chain.cpu import CHUNKS_PER_THREAD

    write_y, write_gw, write_gx = (k in outputs for k in ALL_OUTPUTS)

    @numba.njit(parallel=True, error_model="numpy")
    def floor(x, out_y, out_gw, out_gx, n_threads):
        n = x.shape[0]
        n_layers = out_gw.shape[1]
        n_blocks = (n + BLOCK - 1) // BLOCK
        n_chunks = min(n_blocks, CHUNKS_PER_THREAD * n_threads)
        for c in numba.prange(n_chunks):
            for b in range(c * n_blocks // n_chunks, (c + 1) * n_blocks // n_chunks):
                i0 = b * BLOCK
                m = min(BLOCK, n - i0)
                xb = x[i0:i0 + m]
                yb = out_y[i0:i0 + m]
                gxb = out_gx[i0:i0 + m]
                gwb = out_gw[i0:i0 + m]
                if write_y:
                    for j in range(m):
                        yb[j] = xb[j]
                if write_gx:
                    for j in range(m):
                        gxb[j] = xb[j]
                if write_gw:
                    for k in range(n_layers):
                        for j in range(m):
                            gwb[j, k] = xb[j]

    return cache_kernel(floor, "memory-floor", ",".join(outputs))


def _memory_floor(x, act, w, outputs=ALL_OUTPUTS):
    """Reads x and writes the results ``outputs`` names with the kernel's own
    loop structure and no arithmetic: the fastest any chain kernel can be."""
    from .._numba import threads as _threads

    kernel = _floor_kernel(outputs)
    n, depth = x.shape[0], len(w)
    # a result not written gets an empty array of its rank
    out = ChainGrad(*(np.empty(shape if k in outputs else (0,) + shape[1:], x.dtype)
                      for k, shape in zip(ALL_OUTPUTS, ((n,), (n, depth), (n,)))))

    def run():
        kernel(x, out.output, out.weight_grads, out.input_grad, _threads.num_threads())
        return out

    run()
    return run, None


LIBS["memory-floor"] = Lib("memory-floor", _memory_floor, 10**9,
                           "copy x into all results: the bandwidth bound (no arithmetic)")
LIBS["memory-floor-w"] = Lib("memory-floor-w",
                             lambda x, a, w: _memory_floor(x, a, w, WEIGHT_GRADS), 10**9,
                             "copy x into weight_grads alone: the bound for outputs=weight_grads",
                             outputs=WEIGHT_GRADS)


def time_best(run, repeat, budget_s=None):
    """Best wall time of ``repeat`` calls (fewer if ``budget_s`` runs out)."""
    import time

    best = float("inf")
    start = time.perf_counter()
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - t)
        if budget_s is not None and time.perf_counter() - start > budget_s:
            break
    return best


def run_bench(acts, sizes, dtypes, libs, depth=3, repeat=5, budget_s=5.0, progress=None):
    """Time each (activation, N, dtype, lib); yields one record per case.

    Records: activation, n, dtype, depth, lib, seconds (best of ``repeat``),
    samples_per_s, gbytes_per_s (of the bytes that must move), or skipped.
    """
    from ..activations import default

    cases = [(a, n, d, lib) for a in acts for n in sizes for d in dtypes for lib in libs]
    for i, (name, n, dtype, lib) in enumerate(cases):
        dtype = np.dtype(dtype)
        rec = {"activation": name, "n": int(n), "dtype": dtype.name, "depth": depth, "lib": lib}
        spec = LIBS[lib]
        act = default(name)  # deterministic: RReLU in eval mode
        reason = spec.skip_reason(act, n)
        if progress:
            progress(i, len(cases), rec)
        if reason:
            rec["skipped"] = reason
            yield rec
            continue
        x = (np.random.default_rng(0).standard_normal(int(n)) * 2).astype(dtype)
        try:
            run, _ = spec.make(x, act, np.ones(depth, dtype))
        except ImportError as exc:
            rec["skipped"] = f"{lib} not installed ({exc.name})"
            yield rec
            continue
        secs = time_best(run, repeat, budget_s)
        rec.update(seconds=secs, samples_per_s=n / secs, outputs=list(spec.outputs),
                   gbytes_per_s=n * bytes_per_sample(depth, dtype, spec.outputs) / secs / 1e9)
        del run
        yield rec
    if progress:
        progress(len(cases), len(cases), None)


def machine_info():
    """CPU model, cores and library versions, for benchmark records."""
    import os

    import numba

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__,
            "numba_threads": numba.config.NUMBA_NUM_THREADS}
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
    except ImportError:
        pass
    return info
