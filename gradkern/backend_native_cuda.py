"""The ``native-cuda`` backend: the CUDA C++ chain kernel of ``cuda/``
(``libgradkern_cuda.so``, ``make -C cuda``; needs an NVIDIA GPU).  Host arrays
are copied to the device and back on every call."""
from . import _native

__all__ = ["chain_grad"]


def chain_grad(x, act, weights, *, out=None, noise=None, seed=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation."""
    return _native.chain_grad("native-cuda", x, act, weights, out=out, noise=noise, seed=seed)
