r"""The activations' scalar math, callable from your own ``@numba.njit`` and ``@cuda.jit`` code.

Every activation of :data:`gradkern.ACTIVATIONS` has a forward and a backward
written once as plain ``numba.njit`` functions (no eager signature), the very
functions gradkern's chain kernels are built from.  This module is their
documented, stable entry point; it is read from the registry, so an
activation added later appears here by itself::

    import gradkern as gk
    from gradkern import jit as gkjit

    act = gk.activation("ELU", alpha=0.3)
    forward, backward = gkjit.functions(act)   # or gkjit.ELU for the defaults
    p = act.kernel_params(np.float32)          # the parameter tuple, in float32

    @numba.njit
    def my_loop(x, p, ...):
        y = forward(x[i], p)                   # f(x)
        d = backward(type(y)(1.0), x[i], y, p) # 1 * f'(x)

The functions
-------------
``forward(x, p) -> y``
    The activation of the scalar ``x`` (float32 or float64), in x's type.
``backward(g, x, y, p) -> g * f'(x)``
    PyTorch's backward as a vector-Jacobian product: upstream gradient ``g``,
    the forward's input ``x`` and output ``y = forward(x, p)`` (some
    activations read ``y``, as torch's do: pass the true output).
``p``
    The 4-tuple :meth:`gradkern.Activation.kernel_params` builds from an
    activation object, already rounded to the dtype of ``x`` (pass the
    float32 tuple to float32 code: a float64 tuple would promote it).  For
    RReLU in training mode slot 0 is the negative slope of the sample: build
    ``(slope, p[1], p[2], p[3])`` per sample.
:func:`linear`
    The chain's product ``w * a`` as ``torch.nn.Linear(1, 1)`` computes it
    (accumulated from +0: a -0.0 product becomes +0.0).

What ``chain_grad`` does besides, that your code must do itself to match it
bit for bit: every product through :func:`linear` (``w*a``, ``g_z*a`` and
``g_z*w``); a NaN pre-activation ``z`` gives a NaN gradient
(``gz = z if z != z else backward(...)``: torch's value there depends on
whether the element took its scalar or its SIMD path); on a GPU, compile
with FMA contraction off (:func:`without_fma_contraction`), as gradkern's own
kernels are.  docs/jit.md has complete examples for the CPU and the GPU.
"""
import contextlib
from typing import Callable, NamedTuple

from .activations import ACTIVATIONS, default, resolve
from .chain.core import linear

__all__ = ["Functions", "functions", "forward", "backward", "linear",
           "without_fma_contraction", *ACTIVATIONS]


class Functions(NamedTuple):
    """An activation's scalar ``forward(x, p)`` and ``backward(g, x, y, p)``,
    both ``numba.njit`` functions compiled on first use for the types given."""

    forward: Callable
    backward: Callable


def functions(activation):
    """The scalar functions of ``activation``, for ``numba.njit`` and ``cuda.jit`` code.

    Parameters
    ----------
    activation : Activation, str or torch.nn.Module
        As :func:`gradkern.chain_grad` takes it.  The functions depend on the
        activation's kind only (GELU's ``approximate`` picks its pair); its
        parameters reach them through ``activation.kernel_params(dtype)``.

    Returns
    -------
    Functions
        ``(forward, backward)``: the functions gradkern's own kernels call.

    Examples
    --------
    >>> import gradkern as gk
    >>> from gradkern import jit as gkjit
    >>> act = gk.activation("ELU", alpha=0.3)
    >>> fwd, bwd = gkjit.functions(act)
    >>> float(fwd(-1.0, act.kernel_params("float64")))  # 0.3 * (exp(-1) - 1)
    -0.18963616704864094
    """
    return Functions(*resolve(activation).ops())


def forward(activation):
    """``functions(activation).forward``: ``forward(x, p) -> y``."""
    return functions(activation).forward


def backward(activation):
    """``functions(activation).backward``: ``backward(g, x, y, p) -> g * f'(x)``."""
    return functions(activation).backward


@contextlib.contextmanager
def without_fma_contraction():
    """Compile ``cuda.jit`` kernels inside this block to round as gradkern's do.

    NVVM fuses ``a*b + c`` into one ``fma`` by default, even with
    ``fastmath=False``; gradkern compiles its kernels with that contraction
    off, so that the GPU rounds as the CPU kernel and torch do.  Compile your
    kernel inside this block (an eager signature, or its first launch) to get
    the same bits.  Imports numba.cuda; a no-op on the simulator.
    """
    from .chain.cuda_kernel import without_fma_contraction as off

    with off():
        yield


def __getattr__(name):
    # gkjit.Tanh, gkjit.ELU, ...: the functions of the registry's default
    # configuration, for every activation, including ones added later
    if name in ACTIVATIONS:
        return functions(default(name))
    raise AttributeError(f"module 'gradkern.jit' has no attribute {name!r}; activations: "
                         f"{', '.join(ACTIVATIONS)}")


def __dir__():
    return sorted(set(globals()) | set(ACTIVATIONS))
