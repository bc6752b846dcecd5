"""The ``auto`` backend: the GPU when one is usable, the CPU otherwise.

``res.backend`` of the result says which one ran.  A device-array ``x`` (or a
``stream=``) means the caller is on the GPU already, so those always go to
``cuda``, which explains what is missing if it cannot run.
"""
from . import cpu

__all__ = ["chain_grad", "choose"]


def choose(x, stream=None):
    """"cuda" or "cpu": the backend ``auto`` runs for this input."""
    from .cuda import gpu_usable, is_device_array

    if stream is not None or is_device_array(x):
        return "cuda"
    return "cuda" if gpu_usable() else "cpu"


def chain_grad(x, act, weights, *, biases=None, out=None, noise=None, seed=None, stream=None,
               outputs=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation (or
    a tuple of them).  Both choices run biases and mixed activations (the
    native backends, which do not, are never chosen here)."""
    if choose(x, stream) == "cuda":
        from . import cuda

        return cuda.chain_grad(x, act, weights, biases=biases, out=out, noise=noise, seed=seed,
                               stream=stream, outputs=outputs)
    return cpu.chain_grad(x, act, weights, biases=biases, out=out, noise=noise, seed=seed,
                          outputs=outputs)
