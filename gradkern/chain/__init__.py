"""The chain kernels and the backends that run them.

:mod:`.core` is the chain rule every kernel shares, :mod:`.arrays` the
argument rules every backend applies; each backend is a module with a
``chain_grad(x, act, weights, *, biases, out, noise, seed[, stream], outputs)``
taking a resolved activation, or a tuple of them, one per layer
(:mod:`.layers`), and the results to write (:mod:`.outputs`).  Nothing in this package knows a particular activation:
kernels are built from the activation's (forward, backward) pair and its
parameter tuple.
"""
import importlib
from dataclasses import dataclass

__all__ = ["Backend", "BACKENDS", "backend_function"]


@dataclass(frozen=True)
class Backend:
    """One way to run the chain: where its ``chain_grad`` lives and what it needs."""

    name: str
    module: str  # relative to this package
    function: str
    gpu: bool  # needs an NVIDIA GPU (takes device arrays and stream=)
    build: bool  # needs `make -C cuda` first
    doc: str


#: backend name -> Backend, in the order the docs list them
BACKENDS = {b.name: b for b in (
    Backend("cpu", ".cpu", "chain_grad", False, False, "Numba, parallel on the CPU"),
    Backend("cuda", ".cuda", "chain_grad", True, False, "numba-cuda (the `cuda` extra)"),
    Backend("auto", ".auto", "chain_grad", False, False, "cuda when a GPU is usable, else cpu"),
    Backend("native", ".native", "chain_grad_host", False, True,
            "the C++ library of cuda/ on the host (g++, OpenMP)"),
    Backend("native-cuda", ".native", "chain_grad_cuda", True, True,
            "the CUDA C++ library of cuda/ (nvcc)"),
)}


def backend_function(name):
    """The ``chain_grad`` of backend ``name`` (ValueError if unknown)."""
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}; valid backends: {', '.join(BACKENDS)}")
    b = BACKENDS[name]
    return getattr(importlib.import_module(b.module, __name__), b.function)
