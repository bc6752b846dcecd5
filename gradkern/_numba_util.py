"""Numba plumbing shared by every kernel: FMA, typed constants, keyed disk cache.

Nothing here knows about activations; it only makes compiled code faithful
(FMA where PyTorch fuses) and cheap to start (cache hits in a second process).
"""
import hashlib

from llvmlite import ir
from numba.core.extending import intrinsic

from ._kernel_cache import KernelCache

__all__ = ["fma", "float_bits", "bits_float", "cache_kernel"]


@intrinsic
def fma(typingctx, a, b, c):
    """``a*b + c`` with one rounding (``llvm.fma``), in the type of ``a``.

    PyTorch's CPU kernels are built with FMA contraction, so e.g. ``tanh_backward``
    is ``g*fma(-y, y, 1)`` bit for bit; Numba never contracts on its own
    (``fastmath=False``), so the fused form is asked for explicitly.  Arguments
    are cast to the type of ``a`` first, so a float32 call stays float32.
    """
    sig = a(a, a, a)

    def codegen(context, builder, signature, args):
        ty = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic(
            "llvm.fma", [ty], ir.FunctionType(ty, [ty, ty, ty])
        )
        return builder.call(fn, args)

    return sig, codegen


def _function_key(fn, depth=0):
    py = getattr(fn, "py_func", fn)
    code = py.__code__
    # the source itself is covered by the package stamp (_kernel_cache)
    digest = hashlib.sha256(code.co_code + repr(code.co_consts).encode()).hexdigest()
    # a factory's closures share their code: what tells them apart is what they
    # close over (a key without it once served a uniform-input sweep kernel
    # for a normal one), so closed-over functions and constants count too
    cells = []
    for cell in py.__closure__ or ():
        value = cell.cell_contents
        if hasattr(getattr(value, "py_func", value), "__code__") and depth < 4:
            cells.append(_function_key(value, depth + 1))
        elif isinstance(value, (bool, int, float, str)):
            cells.append(repr(value))
    closure = hashlib.sha256("|".join(cells).encode()).hexdigest() if cells else "-"
    return f"{py.__module__}.{py.__qualname__}:{digest}:{closure}"


def cache_kernel(dispatcher, *parts):
    """Give ``dispatcher`` (a factory-made ``numba.njit`` closure) a disk cache
    keyed by ``parts`` -- the jitted scalar functions it closes over, and strings
    for any other closure constant that changes the code -- and by the source
    of every gradkern module (see ``_kernel_cache``).

    Numba would key a closure's entry by a pickle of its cell contents, and a
    pickled dispatcher carries a per-process id, so every new process would
    miss and recompile (measured: 0.5 s per activation and dtype).
    """
    key = "|".join(p if isinstance(p, str) else _function_key(p) for p in parts)
    dispatcher._cache = KernelCache(dispatcher.py_func, key, dispatcher.py_func.__name__)
    return dispatcher


def _bitcast(name, pairs, doc):
    """An intrinsic reinterpreting the bits of a value of type ``a`` as type
    ``b`` for each (a, b) in ``pairs`` (an LLVM bitcast: free, vectorises)."""

    def impl(typingctx, x):
        from numba.core import types

        target = {getattr(types, a): getattr(types, b) for a, b in pairs}.get(x)
        if target is None:
            return None

        def codegen(context, builder, signature, args):
            return builder.bitcast(args[0], context.get_value_type(signature.return_type))

        return target(x), codegen

    impl.__name__ = impl.__qualname__ = name
    impl.__doc__ = doc
    return intrinsic(impl)


float_bits = _bitcast("float_bits", (("float32", "int32"), ("float64", "int64")),
                      "The IEEE bits of a float32/float64 as int32/int64.")
bits_float = _bitcast("bits_float", (("int32", "float32"), ("int64", "float64")),
                      "The float32/float64 whose IEEE bits are the int32/int64 ``i``.")
