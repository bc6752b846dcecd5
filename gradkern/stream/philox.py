r"""Counter-based random numbers: Philox4x32-10, keyed by (seed, sample index).

Why counter-based: a sweep draws sample ``i``'s input from ``philox(counter=i,
key=seed)`` alone, with no generator state, so any thread, chunk, Dask worker
or GPU thread can produce exactly the numbers of any range of samples.  That is
what makes a sweep's statistics independent of how the work was split.

The stream (the definition tests and users can rely on):

- key   ``(k0, k1) = (seed mod 2**32, seed >> 32)``, seed a 64-bit unsigned int;
- counter ``(c0, c1, c2, c3) = (i mod 2**32, i >> 32, stream, family)`` for a
  64-bit index ``i``.  Family 0: ``stream`` 0 for the input x, ``1 + k`` for
  the RReLU slope of layer k (0-based).  Family :data:`WEIGHT_FAMILY` = 1:
  ``stream`` k for the random weight w_{k+1} of a sweep; family
  :data:`BIAS_FAMILY` = 2: ``stream`` k for its bias b_{k+1}.  A family of
  their own keeps the weights and biases off every counter the inputs and
  slopes use (those did not move when they were added).  For inputs, ``i`` is the pair index j of samples
  (2j, 2j+1) for normal, lognormal, uniform and laplace, and the sample index
  for student-t (:mod:`gradkern.stream.dists`); for slopes it is the sample index;
- output four 32-bit words ``(r0, r1, r2, r3)`` of Philox4x32 with 10 rounds
  (Salmon et al., SC'11), checked against Random123's known-answer vectors;
- a uniform is made from two words: ``u = ((r_a >> 6) * 2**26 + (r_b >> 6) + 0.5)
  * 2**-52``, 52 random bits, so ``u`` lies in the open interval (0, 1), and
  ``u``, ``1 - u`` and ``u - 0.5`` are all exact in float64 (log(u) and log(1-u)
  are always finite).  ``uniform_a`` uses (r0, r1), ``uniform_b`` (r2, r3).

Everything is ``numba.njit`` (``forceinline``: a call left in a sample loop
keeps it scalar) with no eager signature and only integer
operations on ``uint64`` (32-bit products in 64 bits), so the same functions
compile inside CPU kernels and ``numba.cuda`` kernels unchanged.
"""
import numba
import numpy as np

__all__ = ["philox4x32", "sample_words", "family_words", "uniform_a", "uniform_b", "split_seed",
           "WEIGHT_FAMILY", "BIAS_FAMILY"]

#: counter word c3 of a sweep's random weights and of its random biases
#: (the inputs and RReLU's slopes are family 0)
WEIGHT_FAMILY = 1
BIAS_FAMILY = 2

_U = np.uint64
# Philox4x32 multipliers and Weyl key increments (Random123 philox.h)
_M0 = _U(0xD2511F53)
_M1 = _U(0xCD9E8D57)
_W0 = _U(0x9E3779B9)
_W1 = _U(0xBB67AE85)
_MASK = _U(0xFFFFFFFF)
_S32 = _U(32)
_S6 = _U(6)
_TWO26 = 67108864.0  # 2**26
_TWO_M52 = 2.220446049250313e-16  # 2**-52


@numba.njit(inline="always")
def _step(st):
    """One Philox round on state (c0, c1, c2, c3, k0, k1), then the key's bump."""
    c0, c1, c2, c3, k0, k1 = st
    p0 = _M0 * c0  # < 2**64: both factors < 2**32
    p1 = _M1 * c2
    return ((p1 >> _S32) ^ c1 ^ k0, p1 & _MASK, (p0 >> _S32) ^ c3 ^ k1, p0 & _MASK,
            (k0 + _W0) & _MASK, (k1 + _W1) & _MASK)


@numba.njit(forceinline=True)
def philox4x32(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) under key (k0, k1); 32-bit values
    carried in uint64.  Returns the four output words as uint64."""
    st = (_U(c0), _U(c1), _U(c2), _U(c3), _U(k0), _U(k1))
    # the 10 rounds written out, not a loop: a loop inside the per-sample loop
    # made it the innermost one, and LLVM then left the sample loop scalar
    # (8.4 ns per call; unrolled and inlined, the sample loop is SIMD: 1.7 ns)
    st = _step(_step(_step(_step(_step(st)))))
    st = _step(_step(_step(_step(_step(st)))))
    return st[0], st[1], st[2], st[3]


@numba.njit(forceinline=True)
def sample_words(seed, i, stream):
    """The four words of sample ``i`` in ``stream`` under a 64-bit ``seed``."""
    s = _U(seed)
    j = _U(i)
    return philox4x32(j & _MASK, j >> _S32, _U(stream), _U(0), s & _MASK, s >> _S32)


@numba.njit(forceinline=True)
def family_words(seed, i, stream, family):
    """The four words of index ``i`` in ``stream`` of counter family ``family``
    (c3): :data:`WEIGHT_FAMILY` or :data:`BIAS_FAMILY`, stream = layer."""
    s = _U(seed)
    j = _U(i)
    return philox4x32(j & _MASK, j >> _S32, _U(stream), _U(family), s & _MASK, s >> _S32)


@numba.njit(forceinline=True)
def _to_unit(ra, rb):
    hi = np.float64(ra >> _S6)
    lo = np.float64(rb >> _S6)
    return (hi * _TWO26 + lo + 0.5) * _TWO_M52


@numba.njit(forceinline=True)
def uniform_a(r):
    """Uniform on (0, 1) from words r0, r1 of ``r`` (see module docstring)."""
    return _to_unit(r[0], r[1])


@numba.njit(forceinline=True)
def uniform_b(r):
    """Uniform on (0, 1) from words r2, r3 of ``r``."""
    return _to_unit(r[2], r[3])


def split_seed(seed):
    """Validate a seed and return it as a Python int in [0, 2**64)."""
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer in [0, 2**64), got {type(seed).__name__}")
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be an integer in [0, 2**64), got {seed}")
    return seed
