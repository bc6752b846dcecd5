"""``gradkern.chain_grad``: resolve the activation, run the chosen backend.

The backends and their capabilities are the table in :mod:`gradkern.chain`;
each is imported on first use, so ``import gradkern`` never loads numba.cuda
or a native library.
"""
import inspect

from .activations import is_torch_module, resolve
from .chain import BACKENDS, backend_function
from .chain.arrays import ChainGrad

__all__ = ["ChainGrad", "chain_grad", "BACKENDS"]


def chain_grad(x, activation, weights, *, biases=None, backend="cpu", out=None, noise=None,
               seed=None, stream=None, outputs=None):
    """Output, df/dx, every df/dw_i (and df/db_i) of the chain
    f = a_L(w_L*a_{L-1}(...a_1(w_1*x + b_1)...) + b_L).

    Parameters
    ----------
    x : array_like, shape (N,)
        Scalar inputs.  float32 in -> float32 out, float64 -> float64 (either
        byte order); any other real dtype (ints, float16) is converted to
        float64.  May be empty or non-contiguous; it is never modified.  Not
        a numpy masked array (TypeError: the mask would be ignored).  Torch
        and JAX CPU arrays (any host ``__dlpack__`` exporter) are read without
        a copy, and ``out=`` may be torch CPU tensors, written in place.
    activation : Activation, str, torch.nn.Module, or a sequence of L of them
        The activation after every layer: ``gradkern.activation(...)``, a
        ``torch.nn`` class name (case-insensitive), or a torch.nn activation
        module instance (its parameters are read).  A list or tuple gives
        one per layer, layer k using the k-th (``["Tanh", "ReLU", "Tanh"]``);
        its length must be L (else a ValueError).
    weights : array_like, shape (L,)
        One weight per layer, L >= 1, any real values; rounded to x's dtype
        (a finite weight that overflows it is a ValueError, as in torch).
    biases : array_like, shape (L,), optional
        One bias per layer, added after the product as torch's
        ``Linear(1, 1, bias=True)`` adds it (``w*a`` rounded, then ``+ b``
        rounded).  Rounded to x's dtype; a value that is not finite there
        (NaN, inf, or a float64 beyond float32's range) is a ValueError.
        None (default): no biases, and ``result.bias_grads`` is None.
    backend : str
        Where to compute: one of ``gradkern.BACKENDS``: "cpu" (Numba
        parallel), "cuda" (numba-cuda on an NVIDIA GPU; x may then also be a
        device array, see docs/gpu.md), "auto" (cuda when a GPU
        is usable, else cpu; ``result.backend`` says which ran), "native" (the
        C++ library of ``cuda/`` on the host) and "native-cuda" (its CUDA
        build); both native ones need ``make -C cuda`` first.
    out : ChainGrad or tuple of 3 arrays, optional
        Arrays to write the results into (shapes (N,), (N, L), (N,), dtype as
        above); returned.  With ``outputs``, None in the place of each result
        not asked for (an array there, or None for one asked for, is an error).  With biases, df/db goes to ``out.bias_grads`` when
        ``out`` is a ChainGrad that has one (a result of an earlier call with
        biases), else to a new array.  Device arrays when x is one.  None of them may
        overlap another or any input (as passed, or converted); numpy masked
        arrays are refused (their mask would be ignored).
    noise : array_like, shape (N, L), optional
        RReLU in training mode only: the slope of sample n at layer k, used
        where that layer's pre-activation is <= 0 (with one activation per
        layer: the columns of the RReLU layers; the others are not read).
        Pass the noise torch drew to reproduce torch exactly; without it,
        slopes are drawn from U[lower, upper] by ``seed``.  No RReLU layer in
        training mode: a ValueError.
    seed : int, optional
        RReLU in training mode only (any other activation: a ValueError), and
        not with ``noise``: the slopes are
        ``gradkern.rrelu_slopes(N, L, seed, lower, upper, dtype=...)``, the
        Philox stream of samples 0..N-1 of a sweep with this seed, so
        ``chain_grad(gradkern.draw(dist, N, seed), "RReLU", w, seed=seed)``
        reproduces that sweep's samples (one activation per layer: column k
        is what that call gives at layer k for layer k's own bounds).
        0 <= seed < 2**64; None (default) takes a fresh seed from
        ``os.urandom``: other slopes at every call.
    stream : optional
        CUDA backends only: the stream to work on (a numba stream, a
        ``torch.cuda.Stream``, a CuPy stream or a raw handle).  Passing one to
        the cpu backend is a TypeError.
    outputs : str or sequence of str, optional
        The results to compute and write, any of ``"output"``,
        ``"weight_grads"``, ``"input_grad"`` and (with biases)
        ``"bias_grads"``; e.g. ``outputs=("weight_grads",)`` for the
        per-sample weight gradients alone, what ``vmap(grad(f))`` gives.  The
        others are neither computed nor written (None in the result), so a
        memory-bound activation runs in proportion to the bytes asked for;
        the arrays returned are bit-identical to the full call's.  None
        (default): all of them.  Each set is its own compiled kernel, built on
        first use.  The native backends compute the full set only
        (NativeUnsupportedError otherwise).

    Returns
    -------
    ChainGrad
        ``output`` (N,), ``weight_grads`` (N, L) with column i = df/dw_{i+1},
        ``input_grad`` (N,); and the attribute ``bias_grads`` (N, L), column i
        = df/db_{i+1} (the gradient into layer i+1's pre-activation, what
        autograd gives ``Linear.bias.grad``), or None without biases.  A
        result left out of ``outputs`` is None.

    Raises
    ------
    BackendUnavailableError
        The backend cannot run here, or (the native ones) cannot run a chain
        with biases, with more than one activation, or with ``outputs``
        other than all of them.

    Notes
    -----
    Derivatives follow PyTorch 2.13's CPU kernels, including the value at every
    kink; a NaN pre-activation gives NaN gradients.  The reference is the seed
    notebook's SimpleNet (``gradkern.reference``), with ``Linear(1, 1,
    bias=True)`` layers when there are biases: piecewise-linear activations
    give torch's bits, biases and mixed layers included.  The plain chain (one
    activation, no biases) runs its own kernel, which neither feature slows.
    """
    act = resolve_layers(activation)
    run = backend_function(backend)
    kwargs = {}
    if stream is not None:
        if "stream" not in inspect.signature(run).parameters:
            raise TypeError(f"backend {backend!r} does not take stream= (it is for GPU backends)")
        kwargs["stream"] = stream
    if outputs is not None:
        kwargs["outputs"] = outputs
    return run(x, act, weights, biases=biases, out=out, noise=noise, seed=seed, **kwargs)


def resolve_layers(activation):
    """An Activation, or a tuple of them for a list or tuple of activations
    (one per layer; each as :func:`gradkern.activations.resolve` takes it)."""
    if isinstance(activation, (list, tuple)) and not is_torch_module(activation):
        if not activation:
            raise ValueError("activation: an empty sequence; give one activation, or one per "
                             "layer")
        return tuple(resolve(a) for a in activation)
    return resolve(activation)
