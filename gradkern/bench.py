"""The ways users compute these gradients today, as comparable callables.

Each entry of :data:`LIBS` takes ``(x, act, weights)`` (numpy x of the benchmark
dtype) and returns a zero-argument function that computes the output, the
per-sample df/dw (N, L) and df/dx for all of x, plus a ``to_numpy`` that turns
its result into a :class:`~gradkern.ChainGrad` so benchmarks can check it.
Setup work (allocations of outputs, tracing, compilation) happens in the
factory, outside the timed call, so a timing is the steady-state cost.

Peers import lazily (torch, torch.func, jax): the module itself imports only
numpy and gradkern.
"""
import platform
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .api import ChainGrad, chain_grad

__all__ = ["LIBS", "Lib", "machine_info"]


@dataclass(frozen=True)
class Lib:
    name: str
    make: Callable  # (x, act, weights) -> (run, to_numpy)
    max_n: int  # larger sizes are skipped (too slow or too much memory)
    doc: str
    unsupported: frozenset = frozenset()  # activation names it cannot run

    def skip_reason(self, act_name, n):
        if act_name in self.unsupported:
            return f"{self.name} cannot run {act_name}"
        if n > self.max_n:
            return f"{self.name} is not run above N = {self.max_n:g}"
        return None


def _gradkern_cpu(x, act, w):
    w = np.asarray(w, dtype=x.dtype)
    n, depth = x.shape[0], w.shape[0]
    out = ChainGrad(np.empty(n, x.dtype), np.empty((n, depth), x.dtype), np.empty(n, x.dtype))
    noise = None
    if act.stochastic:
        noise = np.random.default_rng(0).uniform(0.125, 1 / 3, (n, depth)).astype(x.dtype)

    def run():
        return chain_grad(x, act, w, out=out, noise=noise)

    run()  # compile (or load from the disk cache) outside the timing
    return run, lambda r: r


def _torch_module(act, x):
    import torch

    from .reference import to_torch

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

    from .reference import SimpleNet, seed_loop_grads

    net = SimpleNet(_torch_module(act, x), list(map(float, w)),
                    dtype=torch.float32 if x.dtype == np.float32 else torch.float64)
    return (lambda: seed_loop_grads(net, x)[0]), (lambda r: r)


LIBS = {
    "gradkern-cpu": Lib("gradkern-cpu", _gradkern_cpu, 10**9,
                        "gradkern.chain_grad, Numba parallel CPU kernel, preallocated out="),
    "torch-batched": Lib("torch-batched", _torch_batched, 3 * 10**7,
                         "torch autograd on the batch, per-sample weight copies, one backward"),
    # torch 2.13's vmap has no batching rule for aten::rrelu_with_noise
    "torch-func": Lib("torch-func", _torch_func, 10**7, "torch.func.vmap(grad(f))",
                      frozenset({"RReLU"})),
    "torch-compile": Lib("torch-compile", lambda x, a, w: _torch_func(x, a, w, compile=True),
                         10**7, "torch.compile(torch.func.vmap(grad(f)))", frozenset({"RReLU"})),
    "seed-loop": Lib("seed-loop", _seed_loop, 10**4,
                     "the seed notebook: per-sample nn.Module forward + backward"),
}


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
