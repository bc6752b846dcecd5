"""GPU throughput of backend="cuda", against the device's own copy bandwidth and torch.

The kernel reads x and writes three results, so it cannot beat a copy of the
same bytes: the yardstick is the device-to-device copy bandwidth *measured on
the same GPU* (``cuMemcpyDtoD`` of 1 GiB, counted as bytes read + bytes
written, as the kernel's bytes are counted), in the spirit of llm.c's
``dev/cuda`` "napkin math".  The peer is torch batched autograd on the same
GPU (one graph for the batch, per-sample weight copies, one backward).

Targets (H100): >= 80% of the copy bandwidth with materialised
results, >= 10x torch batched autograd.  Run on a GPU machine:

    python -m gradkern.bench.gpu [--n 1e8] [--depth 3] [--acts Tanh,ReLU]

which writes ``benchmarks/results/cuda-<device>.json``.  Nothing here runs
without a GPU, so no figure exists that was not measured.
"""
import argparse
import json
import os
import time

import numpy as np

from ..api import chain_grad
from ..chain.arrays import ChainGrad

__all__ = ["bytes_moved", "copy_bandwidth", "time_gradkern", "time_torch", "torch_batched_cuda",
           "run"]


def bytes_moved(n, depth, dtype, stochastic=False):
    """Bytes a chain_grad call must move on the device: x read, output and
    input_grad written (3 values), the (N, L) weight_grads written, and for
    RReLU training the (N, L) noise read.  The kernel's own use of weight_grads
    as scratch (a_{k-1} stored in the forward, read back in the backward)
    stays in L1/L2 for one thread's row and is not counted."""
    return int(n) * np.dtype(dtype).itemsize * (3 + depth * (2 if stochastic else 1))


def _timed(cuda, fn, repeats):
    """Best of ``repeats`` calls of ``fn`` on the default stream, in seconds,
    with CUDA events around each (synchronised before the clock is read).
    Under the simulator, whose events carry no time (``elapsed_time`` is
    -1.0), the host clock instead: a dry-run figure, not a GPU one."""
    from ..chain.cuda import _simulated

    fn()  # warm: compilation, allocator, clocks
    cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        if _simulated():
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
            continue
        start, stop = cuda.event(), cuda.event()
        start.record()
        fn()
        stop.record()
        stop.synchronize()
        best = min(best, start.elapsed_time(stop) / 1e3)  # milliseconds
    return best


def copy_bandwidth(nbytes=1 << 30, repeats=20):
    """Measured device-to-device copy bandwidth in bytes/s (read + write)."""
    from numba import cuda

    src = cuda.device_array(nbytes, np.uint8)
    dst = cuda.device_array(nbytes, np.uint8)
    t = _timed(cuda, lambda: dst.copy_to_device(src), repeats)
    return 2 * nbytes / t


def time_gradkern(act, n, dtype, depth, repeats=20):
    """Seconds per chain_grad call on device arrays with preallocated out=."""
    from numba import cuda

    dtype = np.dtype(dtype)
    rng = np.random.default_rng(0)
    d_x = cuda.to_device((rng.standard_normal(n) * 2).astype(dtype))
    w = np.ones(depth, dtype)
    out = ChainGrad(cuda.device_array(n, dtype), cuda.device_array((n, depth), dtype),
                    cuda.device_array(n, dtype))
    noise = None
    if act.stochastic:
        noise = cuda.to_device(rng.uniform(0.125, 1 / 3, (n, depth)).astype(dtype))
    return _timed(cuda, lambda: chain_grad(d_x, act, w, backend="cuda", out=out, noise=noise),
                  repeats)


def torch_batched_cuda(xt, act, weights):
    """torch autograd on the batch on xt's device: (output, weight_grads, input_grad) tensors.

    Layer k computes ``act(W[:, k] * a)`` with W the (N, L) per-sample copies of
    the weights; one ``backward`` gives every per-sample df/dw.
    """
    import torch

    from ..reference import to_torch

    module = to_torch(act).to(device=xt.device, dtype=xt.dtype)
    n = xt.shape[0]
    wt = torch.as_tensor(np.asarray(weights, dtype=np.float64), dtype=xt.dtype, device=xt.device)
    W = wt.expand(n, -1).clone().requires_grad_(True)
    xg = xt.detach().clone().requires_grad_(True)
    a = xg
    for k in range(W.shape[1]):
        a = module(W[:, k] * a)
    a.backward(torch.ones_like(a))
    return a.detach(), W.grad, xg.grad


def time_torch(act, n, dtype, depth, repeats=5):
    """Seconds per torch batched-autograd call on the GPU (None without CUDA torch)."""
    import torch

    if not torch.cuda.is_available():
        return None
    tdtype = torch.float32 if np.dtype(dtype) == np.float32 else torch.float64
    xt = torch.randn(n, dtype=tdtype, device="cuda") * 2
    w = np.ones(depth)
    torch_batched_cuda(xt, act, w)
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        torch_batched_cuda(xt, act, w)
        torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return best


def run(n=10**8, depth=3, acts=None, dtypes=("float32", "float64")):
    """Measure everything; returns the JSON-ready record."""
    import numba
    from numba import cuda

    from ..activations import ACTIVATIONS, default

    if not cuda.is_available():
        raise SystemExit("no CUDA GPU: nothing measured, nothing written")
    dev = cuda.get_current_device()
    bw = copy_bandwidth()
    record = {"device": dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name),
              "compute_capability": list(dev.compute_capability),
              "copy_bandwidth_GBps": bw / 1e9, "n": n, "depth": depth,
              "numba": numba.__version__, "results": []}
    try:
        import torch

        record["torch"] = torch.__version__
    except ImportError:
        pass
    for name in acts or ACTIVATIONS:
        act = default(name)  # deterministic: RReLU in eval mode
        for dt in dtypes:
            t = time_gradkern(act, n, dt, depth)
            moved = bytes_moved(n, depth, dt, act.stochastic)
            tt = time_torch(act, n // 10, dt, depth)  # torch's graph needs ~20x the memory
            row = {"activation": name, "dtype": dt, "seconds": t,
                   "samples_per_s": n / t, "GBps": moved / t / 1e9,
                   "share_of_copy_bandwidth": moved / t / bw}
            if tt is not None:
                row["torch_batched_samples_per_s"] = (n // 10) / tt
                row["speedup_vs_torch"] = (n / t) / ((n // 10) / tt)
            record["results"].append(row)
            print(json.dumps(row))
    return record


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=float, default=1e8)
    p.add_argument("--depth", type=int, default=3)
    p.add_argument("--acts", default="", help="comma-separated activation names (default all)")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/cuda-<device>.json)")
    a = p.parse_args(argv)
    rec = run(int(a.n), a.depth, [s for s in a.acts.split(",") if s] or None)
    path = a.out or os.path.join("benchmarks", "results",
                                 "cuda-" + rec["device"].replace(" ", "_") + ".json")
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        json.dump(rec, fh, indent=1)
    print("written", path)


if __name__ == "__main__":
    main()
