"""LLVM intrinsics the math needs: a fused multiply-add and IEEE bit casts.

Nothing here knows about activations; it only makes compiled code faithful
(FMA exactly where PyTorch fuses) and lets the vector math take floats apart
without leaving SIMD code.
"""
from llvmlite import ir
from numba.core.extending import intrinsic

__all__ = ["fma", "float_bits", "bits_float"]


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
