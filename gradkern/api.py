"""``gradkern.chain_grad``: resolve the activation, run the chosen backend.

The backends and their capabilities are the table in :mod:`gradkern.chain`;
each is imported on first use, so ``import gradkern`` never loads numba.cuda
or a native library.
"""
import inspect

from .activations import resolve
from .chain import BACKENDS, backend_function
from .chain.arrays import ChainGrad

__all__ = ["ChainGrad", "chain_grad", "BACKENDS"]


def chain_grad(x, activation, weights, *, backend="cpu", out=None, noise=None, seed=None,
               stream=None):
    """Output, df/dx and every df/dw_i of the chain f = a(w_L*a(...a(w_1*x))).

    Parameters
    ----------
    x : array_like, shape (N,)
        Scalar inputs.  float32 in -> float32 out, float64 -> float64 (either
        byte order); any other real dtype (ints, float16) is converted to
        float64.  May be empty or non-contiguous; it is never modified.  Not
        a numpy masked array (TypeError: the mask would be ignored).
    activation : Activation, str or torch.nn.Module
        The activation between layers: ``gradkern.activation(...)``, a
        ``torch.nn`` class name (case-insensitive), or a torch.nn activation
        module instance (its parameters are read).
    weights : array_like, shape (L,)
        One weight per layer, L >= 1, any real values; rounded to x's dtype
        (a finite weight that overflows it is a ValueError, as in torch).
    backend : str
        Where to compute: one of ``gradkern.BACKENDS``: "cpu" (Numba
        parallel), "cuda" (numba-cuda on an NVIDIA GPU; x may then also be a
        device array, see docs/gpu.md), "auto" (cuda when a GPU
        is usable, else cpu; ``result.backend`` says which ran), "native" (the
        C++ library of ``cuda/`` on the host) and "native-cuda" (its CUDA
        build); both native ones need ``make -C cuda`` first.
    out : ChainGrad or tuple of 3 arrays, optional
        Arrays to write the results into (shapes (N,), (N, L), (N,), dtype as
        above); returned.  Device arrays when x is one.  None of them may
        overlap another or any input (as passed, or converted); numpy masked
        arrays are refused (their mask would be ignored).
    noise : array_like, shape (N, L), optional
        RReLU in training mode only: the slope of sample n at layer k, used
        where that layer's pre-activation is <= 0.  Pass the noise torch drew to
        reproduce torch exactly; without it, slopes are drawn from
        U[lower, upper] by ``seed``.  Any other activation: a ValueError.
    seed : int, optional
        RReLU in training mode only (any other activation: a ValueError), and
        not with ``noise``: the slopes are
        ``gradkern.rrelu_slopes(N, L, seed, lower, upper, dtype=...)``, the
        Philox stream of samples 0..N-1 of a sweep with this seed, so
        ``chain_grad(gradkern.draw(dist, N, seed), "RReLU", w, seed=seed)``
        reproduces that sweep's samples.  0 <= seed < 2**64; None (default)
        takes a fresh seed from ``os.urandom``: other slopes at every call.
    stream : optional
        CUDA backends only: the stream to work on (a numba stream, a
        ``torch.cuda.Stream``, a CuPy stream or a raw handle).  Passing one to
        the cpu backend is a TypeError.

    Returns
    -------
    ChainGrad
        ``output`` (N,), ``weight_grads`` (N, L) with column i = df/dw_{i+1},
        ``input_grad`` (N,).

    Notes
    -----
    Derivatives follow PyTorch 2.13's CPU kernels, including the value at every
    kink; a NaN pre-activation gives NaN gradients.
    """
    act = resolve(activation)
    run = backend_function(backend)
    kwargs = {}
    if stream is not None:
        if "stream" not in inspect.signature(run).parameters:
            raise TypeError(f"backend {backend!r} does not take stream= (it is for GPU backends)")
        kwargs["stream"] = stream
    return run(x, act, weights, out=out, noise=noise, seed=seed, **kwargs)
