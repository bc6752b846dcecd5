"""Which results a chain call computes and writes: ``chain_grad(..., outputs=...)``.

A kernel is compiled per set of outputs, so an array nobody asked for is
never written: at depth 3 in float32, ``outputs=("weight_grads",)`` writes 12
of the 20 bytes per sample the full call writes (16 of 28 moved, x
included), and a memory-bound activation runs that much faster.  The
arithmetic of what is written is the same as the full kernel's, operation
for operation, so every returned array is bit-identical to the full call's.
"""
from typing import NamedTuple

import numpy as np

from .arrays import ChainGrad, _host_memory, _out_array

__all__ = ["OUTPUT_NAMES", "Outputs", "resolve_outputs", "prepare_wanted_out"]

#: every name ``outputs=`` takes, in ChainGrad's order
OUTPUT_NAMES = ("output", "weight_grads", "input_grad", "bias_grads")


class Outputs(NamedTuple):
    """One flag per result: what a kernel writes (closure constants of the kernel)."""

    output: bool = True
    weight_grads: bool = True
    input_grad: bool = True
    bias_grads: bool = False

    @property
    def backward(self):
        """True when any gradient is asked for (else the kernel runs the forward only)."""
        return self.weight_grads or self.input_grad or self.bias_grads

    @property
    def full(self):
        """True for the three results of a chain without biases (the plain kernel's)."""
        return self.output and self.weight_grads and self.input_grad

    def key(self):
        """A string naming the set, for kernel caches."""
        return "outputs=" + ",".join(n for n, on in zip(OUTPUT_NAMES, self) if on)


def resolve_outputs(outputs, has_bias):
    """``outputs=`` as :class:`Outputs`.

    None: every result (output, weight_grads, input_grad, and bias_grads when
    the chain has biases).  Otherwise a name or a non-empty sequence of names
    from :data:`OUTPUT_NAMES`; ``"bias_grads"`` only with biases.  An
    :class:`Outputs` passes through (checked against ``has_bias``).
    """
    if outputs is None:
        return Outputs(bias_grads=bool(has_bias))
    if isinstance(outputs, Outputs):
        names = [n for n, on in zip(OUTPUT_NAMES, outputs) if on]
    elif isinstance(outputs, str):
        names = [outputs]
    else:
        try:
            names = list(outputs)
        except TypeError:
            raise TypeError("outputs must be None, a name or a sequence of names from "
                            f"{', '.join(OUTPUT_NAMES)}; got {type(outputs).__name__}") from None
    if not names:
        raise ValueError("outputs is empty: name at least one of " + ", ".join(OUTPUT_NAMES))
    for name in names:
        if not isinstance(name, str):
            raise TypeError(f"outputs must hold names (str), got {name!r}")
        if name not in OUTPUT_NAMES:
            raise ValueError(f"outputs: unknown name {name!r}; valid: {', '.join(OUTPUT_NAMES)}")
    if "bias_grads" in names and not has_bias:
        raise ValueError("outputs: 'bias_grads' needs biases= (this chain has none)")
    return Outputs(*(n in names for n in OUTPUT_NAMES))


def _shapes(n, n_layers):
    return ((n,), (n, n_layers), (n,), (n, n_layers))


def _placeholders(n_layers, dtype):
    # what a kernel gets for an array it does not write: the right type, no memory
    return (np.empty(0, dtype), np.empty((0, n_layers), dtype), np.empty(0, dtype),
            np.empty((0, n_layers), dtype))


def out_arrays(out, wanted, has_bias=True):
    """``out``'s four arrays (None where absent), checked against ``wanted``:
    an array for every result asked for (TypeError if None) and None for the
    others (else a ValueError naming ``outputs``).  For :func:`prepare_wanted_out` and the GPU
    backend, whose arrays are device arrays."""
    if not isinstance(out, tuple) or len(out) != 3:
        raise TypeError("out must be a ChainGrad or a tuple (output, weight_grads, input_grad)"
                        "; None for a result not in outputs=")
    # a chain without biases ignores out.bias_grads (a result of a call with biases)
    arrays = (*out, getattr(out, "bias_grads", None) if has_bias else None)
    for name, arr, on in zip(OUTPUT_NAMES, arrays, wanted):
        if on and arr is None and name != "bias_grads":
            raise TypeError(f"out.{name} is None but outputs asks for {name!r}: pass an array "
                            "for it, or leave it out of outputs=")
        if not on and arr is not None:
            raise ValueError(f"out.{name} is given but outputs does not ask for {name!r}: "
                             "pass None there, or add it to outputs=")
    return arrays


def prepare_wanted_out(out, wanted, n, n_layers, dtype, inputs, has_bias):
    """(result, kernel arrays): the :class:`ChainGrad` to return, None for
    each result not ``wanted``, and the four arrays to hand the kernel (the
    result's, with empty placeholders for the others).

    ``out`` as :func:`.arrays.prepare_out` takes it, with None for each
    result not in ``wanted``; ``out.bias_grads`` may be None (a new array).
    The same checks as ``prepare_out``'s: shapes, dtype, writable, and no
    overlap with ``inputs`` or one another.
    """
    shapes = _shapes(n, n_layers)
    if out is None:
        arrays = [np.empty(s, dtype) if on else None for s, on in zip(shapes, wanted)]
    else:
        given = out_arrays(out, wanted, has_bias)
        arrays = []
        for name, arr, shape, on in zip(OUTPUT_NAMES, given, shapes, wanted):
            if on and arr is None:  # bias_grads only: a new array, as without outputs=
                arr = np.empty(shape, dtype)
            arrays.append(None if arr is None else _out_array(name, arr, shape, dtype))
        _check_overlaps(arrays, inputs)
    result = ChainGrad(*arrays[:3], bias_grads=arrays[3])
    kernel = tuple(a if a is not None else p for a, p in zip(arrays, _placeholders(n_layers,
                                                                                   dtype)))
    return result, kernel


def _check_overlaps(arrays, inputs):
    memory = [m for m in map(_host_memory, inputs) if m is not None]
    named = [(n, a) for n, a in zip(OUTPUT_NAMES, arrays) if a is not None]
    for name, arr in named:
        if any(np.may_share_memory(arr, m) for m in memory):
            raise ValueError(f"out.{name} overlaps an input array")
    for i in range(len(named)):
        for j in range(i):
            if np.may_share_memory(named[i][1], named[j][1]):
                raise ValueError(f"out.{named[i][0]} overlaps out.{named[j][0]}")
