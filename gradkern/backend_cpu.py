"""The ``cpu`` backend: NumPy arrays through the Numba parallel chain kernel."""
import contextlib

from . import _threads

from .api import prepare_inputs, prepare_noise, prepare_out
from . import kernels_cpu
from .kernels_cpu import get_kernel

__all__ = ["chain_grad"]


def chain_grad(x, act, weights, *, out=None, noise=None, seed=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation."""
    caller = (x, weights, noise)  # as passed: out= may overlap none of them either
    x, w, dtype = prepare_inputs(x, weights)
    n, n_layers = x.shape[0], w.shape[0]
    noise_arr = prepare_noise(act, noise, seed, n, n_layers, dtype)
    res = prepare_out(out, n, n_layers, dtype, (x, w, noise_arr) + caller)
    parallel = n >= kernels_cpu.SERIAL_BELOW and _threads.parallel_allowed()
    kernel = get_kernel(act.spec, per_sample_noise=act.stochastic, parallel=parallel)
    with _threads.launch() if parallel else contextlib.nullcontext():
        kernel(x, w, act.kernel_params(dtype), noise_arr, *res, _threads.num_threads())
    res.backend = "cpu"
    return res
