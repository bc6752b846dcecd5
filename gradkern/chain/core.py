"""The chain rule for f = a(w_L * a(... a(w_1 * x))), as compiled code shares it.

Each sample is one forward and one backward sweep over the L layers:

    forward:  a_0 = x;  z_k = w_k * a_{k-1};  a_k = act(z_k)           (k = 1..L)
    backward: g = 1;    g_z = act'(z_k) . g   (PyTorch's backward, as a VJP)
              df/dw_k = g_z * a_{k-1};  g = g_z * w_k                   (k = L..1)
              df/dx = g

Each product is the one multiplication PyTorch's Linear(1, 1) does, in the
same dtype and with no FMA contraction (Numba's default), which is why
piecewise-linear activations come out bit-identical to autograd.  Linear runs
a matmul, which accumulates from +0: ``0 + w*a`` turns a -0.0 product into
+0.0 (and changes nothing else), in the forward and in both backward products;
:func:`linear` does the same so that even the sign of zero matches.  A NaN
pre-activation gives NaN gradients (torch's value there depends on whether its
SIMD or scalar path ran).

Nothing here knows a particular activation: the kernels are built from an
activation's (forward, backward) pair and its parameter tuple.  Used by the
CPU kernel (:mod:`.cpu`), the numba-cuda kernel (:mod:`.cuda_kernel`) and the
sweep kernels.
"""
import numba
import numpy as np

__all__ = ["linear", "biased", "bias_grad", "shared_params", "noise_params", "make_block_chain",
           "empty_noise", "BLOCK", "make_layer_loops", "make_slot_dispatch",
           "make_layered_block_chain"]


@numba.njit(error_model="numpy", forceinline=True)
def linear(a, b):
    """``a*b`` as a 1x1 matmul computes it: accumulated from +0, so -0 -> +0."""
    return a * b + type(a)(0.0)


# Parameters of layer k for sample i, as the CUDA kernel (cuda_kernel) reads
# them; the CPU kernel inlines the same two cases (see make_block_chain).
@numba.njit(forceinline=True)
def shared_params(p, noise, i, k):
    return p


@numba.njit(forceinline=True)
def noise_params(p, noise, i, k):
    # RReLU training: the slope of sample i at layer k
    return (noise[i, k], p[1], p[2], p[3])


#: samples per block: (L+1) x 256 float32 scratch is 4 KB at depth 3 and stays
#: in L1 up to depth ~45; 256 = 16 AVX-512 float32 vectors per inner loop
BLOCK = 256
def make_block_chain(forward, backward, per_sample_noise, in_place=False, backward_needed=True):
    """The chain over one block of ``m`` samples, layers outer and samples inner.

    ``block_chain(xb, w, p, nb, a, dw, g, yb, m)`` reads inputs ``xb[:m]`` (and
    RReLU's slopes ``nb[j, k]`` when ``per_sample_noise``), keeps a_0..a_L in
    the scratch ``a`` ((L+1) x m), and leaves ``g[:m]`` = df/dx, ``yb[:m]`` = f
    and df/dw_{k+1} in ``dw[k, :m]``, or with ``in_place`` in ``a[k + 1, :m]``
    (``dw`` unused).  Shared by the chain kernel and the fused sweep kernel
    (``stats_cpu``), so both run the same SIMD loops and the same operations.

    Two forms of the backward because LLVM vectorised each in one caller only.
    In place, one loop per layer reads and writes ``a`` and ``g``: SIMD in the
    chain kernel, where it moves the fewest bytes (86-95% of the memory floor
    for the piecewise-linear activations; 80-86% with the other form).  In
    the sweep kernel the same loop stayed scalar (Tanhshrink's backward: 25 ns
    per sample); there each layer is three loops that each write one array
    (3.6 ns).

    ``backward_needed`` False (``chain_grad(outputs=("output",))``): the
    backward is skipped, ``g`` and ``a`` past the forward are left as they
    are.  Results not asked for are left out by the caller, which sends them
    to an L1 scratch: measured, a store left out here or a loop split for it
    made LLVM keep the loops scalar (3-10x slower).
    """
    # RReLU training: slot 0 is the sample's noise at layer k, read in the
    # loop itself under a closure constant (Numba prunes the other branch).
    # Handing the noise array to a helper instead made Numba incref/decref it
    # around every call: atomics in the inner loop, 16.6 vs 7 ns/sample (ELU).
    noisy = per_sample_noise
    # A forward with ``.saving`` (activations.scalar) hands its backward a
    # value it computed (LogSigmoid's exp(-|x|), Softplus's exp, Tanhshrink's
    # tanh); in place, the block keeps it in ``dw``, then an (L x m) scratch
    # of its own, instead of computing it again: Tanhshrink float32, depth 3,
    # N = 1e7, 10-16 ns/sample against 23-32 recomputing (a loaded 2-core
    # machine, alternate runs).
    # (not without a backward: the forward would compute a derivative for nothing)
    saving = getattr(forward, "saving", None) if in_place and backward_needed else None
    forward_saving, backward_saved = saving if saving else (forward, backward)
    saves = saving is not None

    # inline at Numba IR level: the loops must sit in the caller's body, where
    # the views' strides are known, or LLVM keeps them scalar
    @numba.njit(inline="always", error_model="numpy")
    def block_chain(xb, w, p, nb, a, dw, g, yb, m):
        n_layers = w.shape[0]
        one = a.dtype.type(1.0)
        for j in range(m):
            a[0, j] = xb[j]
        for k in range(n_layers):
            wk = w[k]
            for j in range(m):
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                if saves:
                    a[k + 1, j], dw[k, j] = forward_saving(linear(wk, a[k, j]), pk)
                else:
                    a[k + 1, j] = forward(linear(wk, a[k, j]), pk)
        for j in range(m):
            yb[j] = a[n_layers, j]
            g[j] = one
        for k in range(n_layers - 1, -1, -1):
            if not backward_needed:
                break
            wk = w[k]
            if in_place:
                for j in range(m):
                    a_prev = a[k, j]
                    z = linear(wk, a_prev)
                    pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                    if saves:
                        gz = backward_saved(g[j], z, dw[k, j], pk)
                    else:
                        gz = backward(g[j], z, a[k + 1, j], pk)
                    # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                    gz = z if z != z else gz
                    a[k + 1, j] = linear(gz, a_prev)  # a_{k+1} is done with: df/dw_{k+1}
                    g[j] = linear(gz, wk)
                continue
            # the same operations as three loops, each writing one array
            for j in range(m):
                z = linear(wk, a[k, j])
                pk = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                gz = backward(g[j], z, a[k + 1, j], pk)
                # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                dw[k, j] = z if z != z else gz  # g_z, for the next two loops
            for j in range(m):
                g[j] = linear(dw[k, j], wk)
            for j in range(m):
                dw[k, j] = linear(dw[k, j], a[k, j])  # df/dw_{k+1} = g_z * a_k

    return block_chain


def empty_noise(dtype):
    """Placeholder noise array for kernels that take none (one type per dtype)."""
    return np.empty((0, 0), dtype=dtype)


# -- the general chain: an activation per layer, biases ----------------------
#
# With a bias, torch's Linear(1, 1, bias=True) is an addmm that starts its
# accumulator at the bias: z = b + w*a, the product rounded, then the sum (no
# fused multiply-add; measured on 1e6 random float32 and float64 triples),
# and -0 + -0 stays -0 where the bias-free matmul's 0 + w*a gives +0 (see
# gradkern.reference).  Backward, one sample's bias.grad is the sum of its
# one row: 0 + g_z, so -0 becomes +0, as in df/dw = 0 + g_z * a.

@numba.njit(error_model="numpy", forceinline=True)
def biased(w, a, b):
    """``w*a + b`` as ``Linear(1, 1, bias=True)`` computes it: two roundings,
    IEEE signs (no accumulation from +0: -0 + -0 is -0)."""
    return w * a + b


@numba.njit(error_model="numpy", forceinline=True)
def bias_grad(gz):
    """One sample's ``Linear.bias.grad``: a sum over one row, from +0."""
    return gz + type(gz)(0.0)


def make_layer_loops(forward, backward, noisy, has_bias, slot):
    """One layer's forward and backward loops over a block, for slot number
    ``slot`` of a :class:`~gradkern.chain.layers.LayerPlan`: the operations of
    :func:`make_block_chain`'s in-place form, plus the bias.

    ``forward_layer(a, k, wk, bk, params, nb, m)`` fills ``a[k + 1, :m]``;
    ``backward_layer(a, gb, g, k, wk, bk, params, nb, m)`` turns
    ``a[k + 1, :m]`` into df/dw_{k+1}, ``g[:m]`` into the gradient below the
    layer and, with ``has_bias``, writes df/db_{k+1} to ``gb[k, :m]``.
    ``params`` is the plan's flat tuple of parameters, 4 per slot: this
    slot's are at constant indices.
    """
    first = 4 * slot
    # Measured (ReLU, float32, depth 3, serial, 2e6 samples): parameters at
    # constant indices of a tuple argument, 2.5 ms, as the plain kernel; read
    # per layer from an (L, 4) array or by a run-time tuple index, 9-15 ms:
    # LLVM then kept the loops scalar.

    @numba.njit(inline="always", error_model="numpy")
    def forward_layer(a, k, wk, bk, params, nb, m):
        pk = (params[first], params[first + 1], params[first + 2], params[first + 3])
        for j in range(m):
            z = biased(wk, a[k, j], bk) if has_bias else linear(wk, a[k, j])
            pj = (nb[j, k], pk[1], pk[2], pk[3]) if noisy else pk
            a[k + 1, j] = forward(z, pj)

    @numba.njit(inline="always", error_model="numpy")
    def backward_layer(a, gb, g, k, wk, bk, params, nb, m):
        pk = (params[first], params[first + 1], params[first + 2], params[first + 3])
        for j in range(m):
            a_prev = a[k, j]
            z = biased(wk, a_prev, bk) if has_bias else linear(wk, a_prev)
            pj = (nb[j, k], pk[1], pk[2], pk[3]) if noisy else pk
            gz = backward(g[j], z, a[k + 1, j], pj)
            # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
            gz = z if z != z else gz
            if has_bias:
                gb[k, j] = bias_grad(gz)
            a[k + 1, j] = linear(gz, a_prev)
            g[j] = linear(gz, wk)

    return forward_layer, backward_layer


def make_slot_dispatch(loops, first=0):
    """``(forward_layer, backward_layer)`` taking a slot number first, running
    ``loops[slot - first]``'s pair: a binary tree of ifs built by recursion, one
    closure per node, so each loop is its slot's own code (no call through a
    table).  A tree, not a chain of ifs: Numba inlines the closures into one
    another, and 23 nested levels (every activation, one per layer) failed in
    LLVM with "multiple definition of local value"; a tree nests log2(slots)."""
    if len(loops) == 1:
        fwd0, bwd0 = loops[0]

        @numba.njit(inline="always", error_model="numpy")
        def forward_layer(s, a, k, wk, bk, params, nb, m):
            fwd0(a, k, wk, bk, params, nb, m)

        @numba.njit(inline="always", error_model="numpy")
        def backward_layer(s, a, gb, g, k, wk, bk, params, nb, m):
            bwd0(a, gb, g, k, wk, bk, params, nb, m)

        return forward_layer, backward_layer
    half = len(loops) // 2
    fwd_lo, bwd_lo = make_slot_dispatch(loops[:half], first)
    fwd_hi, bwd_hi = make_slot_dispatch(loops[half:], first + half)
    split = first + half

    @numba.njit(inline="always", error_model="numpy")
    def forward_layer(s, a, k, wk, bk, params, nb, m):
        if s < split:
            fwd_lo(s, a, k, wk, bk, params, nb, m)
        else:
            fwd_hi(s, a, k, wk, bk, params, nb, m)

    @numba.njit(inline="always", error_model="numpy")
    def backward_layer(s, a, gb, g, k, wk, bk, params, nb, m):
        if s < split:
            bwd_lo(s, a, gb, g, k, wk, bk, params, nb, m)
        else:
            bwd_hi(s, a, gb, g, k, wk, bk, params, nb, m)

    return forward_layer, backward_layer


def make_layered_block_chain(slots, has_bias, backward_needed=True):
    """:func:`make_block_chain` (in place) for a LayerPlan's ``slots``.

    ``block_chain(xb, w, b, slot, params, nb, a, gb, g, yb, m)``: layer k runs
    slot ``slot[k]``'s loops with that slot's parameters (4 per slot in the
    flat tuple ``params``) and bias ``b[k]``; the slot is chosen
    once per layer and block, outside the loop over samples.

    One slot (biases, one activation): the loops sit in this function's body,
    as in :func:`make_block_chain`.  Measured (ReLU, float32, depth 3, serial,
    2e6 samples): loops in a function inlined into this one (the per-slot
    closures several slots need) ran 11-15 ms against 2.7-3.3 ms in the body:
    LLVM kept them scalar.

    ``backward_needed`` as :func:`make_block_chain`'s.
    """
    if len(slots) == 1:
        return _one_slot_block_chain(*slots[0], has_bias, backward_needed)
    forward_layer, backward_layer = make_slot_dispatch(
        [make_layer_loops(forward, backward, noisy, has_bias, i)
         for i, (forward, backward, noisy) in enumerate(slots)])

    @numba.njit(inline="always", error_model="numpy")
    def block_chain(xb, w, b, slot, params, nb, a, gb, g, yb, m):
        n_layers = w.shape[0]
        one = a.dtype.type(1.0)
        for j in range(m):
            a[0, j] = xb[j]
        for k in range(n_layers):
            forward_layer(slot[k], a, k, w[k], b[k], params, nb, m)
        for j in range(m):
            yb[j] = a[n_layers, j]
            g[j] = one
        for k in range(n_layers - 1, -1, -1):
            if not backward_needed:
                break
            backward_layer(slot[k], a, gb, g, k, w[k], b[k], params, nb, m)

    return block_chain


def _one_slot_block_chain(forward, backward, noisy, has_bias, backward_needed):
    # make_layer_loops' two loops, written out in the block chain's own body
    @numba.njit(inline="always", error_model="numpy")
    def block_chain(xb, w, b, slot, params, nb, a, gb, g, yb, m):
        n_layers = w.shape[0]
        one = a.dtype.type(1.0)
        p = (params[0], params[1], params[2], params[3])
        for j in range(m):
            a[0, j] = xb[j]
        for k in range(n_layers):
            wk, bk = w[k], b[k]
            for j in range(m):
                z = biased(wk, a[k, j], bk) if has_bias else linear(wk, a[k, j])
                pj = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                a[k + 1, j] = forward(z, pj)
        for j in range(m):
            yb[j] = a[n_layers, j]
            g[j] = one
        for k in range(n_layers - 1, -1, -1):
            if not backward_needed:
                break
            wk, bk = w[k], b[k]
            for j in range(m):
                a_prev = a[k, j]
                z = biased(wk, a_prev, bk) if has_bias else linear(wk, a_prev)
                pj = (nb[j, k], p[1], p[2], p[3]) if noisy else p
                gz = backward(g[j], z, a[k + 1, j], pj)
                # NaN in, NaN out: torch's value here depends on SIMD vs scalar path
                gz = z if z != z else gz
                if has_bias:
                    gb[k, j] = bias_grad(gz)
                a[k + 1, j] = linear(gz, a_prev)
                g[j] = linear(gz, wk)

    return block_chain
