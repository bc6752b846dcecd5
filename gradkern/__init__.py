"""gradkern: closed-form chain-rule gradients of 1-neuron-per-layer activation chains.

``import gradkern`` loads numpy and numba only; torch is imported by
:mod:`gradkern.reference` when it is used, matplotlib by the plots, dask by
``sweep(dask=...)``, numba.cuda by ``sweep(backend="cuda")``.
"""
from .activations import ACTIVATIONS, Activation, activation
from .api import BACKENDS, ChainGrad, chain_grad
from .errors import (BackendUnavailableError, GradkernWarning, KernelCacheWarning,
                     ManifestMismatch, SweepDirectoryError, SweepDirectoryWarning,
                     TaskTimeoutError)
from .stream.dists import Dist, draw, draw_biases, draw_weights, rrelu_slopes
from . import jit  # the scalar math for users' own njit/cuda.jit code: numba only
from .sweeps import SweepResult, load as load_sweep, sweep

__version__ = "0.1.0"
__all__ = ["ACTIVATIONS", "Activation", "activation", "ChainGrad", "chain_grad", "BACKENDS",
           "reference", "sweep", "SweepResult", "load_sweep", "Dist", "draw", "rrelu_slopes",
           "draw_weights", "draw_biases", "meanfield", "jit",
           "BackendUnavailableError", "SweepDirectoryError", "ManifestMismatch",
           "TaskTimeoutError", "GradkernWarning", "KernelCacheWarning", "SweepDirectoryWarning"]


def __getattr__(name):
    import importlib

    # gradkern.reference imports torch: load it on first use only
    if name == "reference":
        return importlib.import_module(".reference", __name__)
    # the mean field sits above the public functions (it calls chain_grad):
    # its module is mean_field, so that importing it never replaces this name
    if name == "meanfield":
        return importlib.import_module(".mean_field", __name__).meanfield
    raise AttributeError(f"module 'gradkern' has no attribute {name!r}")
