"""GPU throughput of backend="cuda" against torch batched autograd on the same GPU.

Skipped without a GPU.  On one:

    pytest benchmarks/test_bench_cuda.py --benchmark-enable --sizes 1e6,1e8 --dtypes float32

Each case times device arrays in, preallocated device out= (no host copies),
synchronising before the clock is read; it records samples/s and the bytes
moved per second against the device's measured copy bandwidth
(gradkern.bench.gpu), and checks its result against the CPU kernel.
"""
import numpy as np
import pytest

import gradkern as gk

cuda = pytest.importorskip("numba.cuda")
if not cuda.is_available():
    pytest.skip("no CUDA GPU", allow_module_level=True)

from gradkern.activations import default  # noqa: E402
from gradkern.bench import gpu as bench_cuda  # noqa: E402

CHECK_N = 20_000
LIBS = ("gradkern-cuda", "torch-batched-cuda")


@pytest.fixture(scope="module")
def copy_bw():
    return bench_cuda.copy_bandwidth()


@pytest.mark.parametrize("gpu_lib", LIBS)
def test_chain_grad_cuda(benchmark, gpu_lib, act_name, n, dtype, depth, copy_bw):
    act = default(act_name)  # deterministic: RReLU in eval mode
    x = (np.random.default_rng(0).standard_normal(n) * 2).astype(dtype)
    w = np.ones(depth, dtype)
    if gpu_lib == "gradkern-cuda":
        d_x = cuda.to_device(x)
        out = gk.ChainGrad(cuda.device_array(n, dtype), cuda.device_array((n, depth), dtype),
                           cuda.device_array(n, dtype))

        def run():
            r = gk.chain_grad(d_x, act, w, backend="cuda", out=out)
            cuda.synchronize()
            return r

        to_numpy = lambda r: [a.copy_to_host() for a in r]  # noqa: E731
    else:
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip("torch without CUDA")
        if n > 3 * 10**7:
            pytest.skip("torch's graph needs ~20x the memory of the inputs")
        xt = torch.as_tensor(x, device="cuda")

        def run():
            r = bench_cuda.torch_batched_cuda(xt, act, w)
            torch.cuda.synchronize()
            return r

        to_numpy = lambda r: [t.cpu().numpy() for t in r]  # noqa: E731
    run()  # compile / warm outside the timing
    benchmark.group = f"cuda {act_name} {dtype.name} depth {depth} N={n:g}"
    result = to_numpy(benchmark(run))
    t = benchmark.stats.stats.min
    moved = bench_cuda.bytes_moved(n, depth, dtype)
    benchmark.extra_info.update(lib=gpu_lib, activation=act_name, n=n, dtype=dtype.name,
                                depth=depth, samples_per_s=n / t, GBps=moved / t / 1e9,
                                copy_bandwidth_GBps=copy_bw / 1e9,
                                share_of_copy_bandwidth=moved / t / copy_bw,
                                device=str(cuda.get_current_device().name))
    m = min(n, CHECK_N)
    expect = gk.chain_grad(x[:m], act, w)
    for got, exp in zip(result, expect):
        ok = ~np.isnan(exp)
        np.testing.assert_allclose(np.asarray(got)[:m][ok], exp[ok], rtol=1e-5, atol=1e-5)
