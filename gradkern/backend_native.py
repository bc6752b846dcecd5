"""The ``native`` backend: the C++ chain kernel of ``cuda/`` compiled for the
host with g++ and OpenMP (``libgradkern_host.so``, ``make -C cuda``)."""
from . import _native

__all__ = ["chain_grad"]


def chain_grad(x, act, weights, *, out=None, noise=None, seed=None):
    """See :func:`gradkern.chain_grad`; ``act`` is a resolved Activation."""
    return _native.chain_grad("native", x, act, weights, out=out, noise=noise, seed=seed)
