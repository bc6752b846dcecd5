"""The PyTorch autograd reference: the seed notebook's SimpleNet, L layers deep.

Importing this module imports torch; ``import gradkern`` does not.

- :class:`SimpleNet`: ``Linear(1, 1, bias=False)`` layers ``fc1..fcL`` with
  their weights filled, the same activation module applied after each one, as
  in seed ``000_3d6265921afac97e.txt`` (which has L = 3).  Building it consumes
  the torch RNG exactly as the notebook's does (each Linear's init draws).
  With ``biases``, ``Linear(1, 1, bias=True)`` layers; with a sequence of
  activations, layer k applies the k-th.
- :func:`per_sample_grads`: ``torch.func.vmap(grad(...))`` over
  ``functional_call(SimpleNet)``, returning the same :class:`~gradkern.ChainGrad`
  as :func:`gradkern.chain_grad`; with biases, :func:`eager_bias_grads`.
- :func:`seed_loop_grads`: the notebook's own loop, one forward/backward per
  sample.  Slow (about 5e3 samples/s), but it is the only form in which RReLU
  in training mode draws its noise in the notebook's order; it records that
  noise so the kernel can be given exactly what torch drew.

How torch's ``Linear(1, 1, bias=True)`` adds the bias (torch 2.13, CPU, read
off its results, not its source): eagerly, for 1-D, 2-D and 3-D inputs alike,
``addmm`` with the bias as the accumulator's start: ``b + x*w`` with the
product rounded, then the sum rounded (never an FMA: over 1e6 random float32
and float64 triples, all 1e6 equal the two-rounding result, 32-35% of them
differ from a fused one), and IEEE signs of zero: ``(-0) + (-0)`` stays -0
(the bias-free Linear's matmul starts from +0: ``0 + x*w``, so there a -0
product becomes +0).  Backward, ``bias.grad`` of one sample is a sum over
its one row, ``0 + g_z`` (-0 becomes +0), as ``weight.grad = 0 + g_z * a``.
Under ``torch.func.vmap`` the Linear is a matmul and an add instead, and the
pre-activation of ``x*w = -0`` and ``b = -0`` is +0: vmap is therefore not
the reference for biases; :func:`eager_bias_grads` computes the eager values
for a batch (tests check it against the per-sample loop, bit for bit).
"""
import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from .activations import resolve as resolve_activation
from .activations.torchnn import RecordingRReLU, is_recorder, to_torch
from .chain.arrays import ChainGrad, compute_dtype

__all__ = [
    "SimpleNet", "to_torch", "per_sample_grads", "batched_grads", "eager_bias_grads",
    "seed_loop_grads", "RecordingRReLU",
]

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _is_sequence(activation):
    return isinstance(activation, (list, tuple))


def _module(activation):
    return activation if isinstance(activation, torch.nn.Module) else to_torch(activation)


class SimpleNet(torch.nn.Module):
    """The seed's SimpleNet with ``len(weights)`` layers.

    Parameters
    ----------
    activation : torch.nn.Module, Activation or str, or a sequence of them
        Applied after every layer (one shared instance, as in the notebook),
        or a list or tuple of ``len(weights)``: layer k applies the k-th
        (``activations[k]``; ``activation`` is then None).
    weights : sequence of float
        ``fc{i}.weight`` is filled with ``weights[i-1]``.
    dtype : torch.dtype
        Of the whole net (the activation's own parameters included).
    biases : sequence of float, optional
        ``Linear(1, 1, bias=True)`` layers, ``fc{i}.bias`` filled with
        ``biases[i-1]``; None (default): ``bias=False``, as in the seed.
    """

    def __init__(self, activation, weights=(1.0, 1.0, 1.0), dtype=torch.float32, biases=None):
        super().__init__()
        self.depth = len(weights)
        if _is_sequence(activation):
            if len(activation) != self.depth:
                raise ValueError(f"activation: got {len(activation)} activations for "
                                 f"{self.depth} layers")
            self.activation = None
            self.activations = torch.nn.ModuleList([_module(a) for a in activation])
        else:
            self.activation = _module(activation)
        if biases is not None and len(biases) != self.depth:
            raise ValueError(f"biases: got {len(biases)} for {self.depth} layers")
        for i in range(1, self.depth + 1):
            # one neuron; its init draws from the torch RNG as in the seed
            setattr(self, f"fc{i}", torch.nn.Linear(1, 1, bias=biases is not None))
        # fill after the dtype change: filling first would round float64 weights to float32
        self.to(dtype)
        for fc, w in zip(self.layers(), weights):
            fc.weight.data.fill_(float(w))
        for fc, b in zip(self.layers(), biases if biases is not None else ()):
            fc.bias.data.fill_(float(b))

    @property
    def has_bias(self):
        return self.fc1.bias is not None

    def layers(self):
        return [getattr(self, f"fc{i}") for i in range(1, self.depth + 1)]

    def layer_activations(self):
        """The activation module of each layer (the shared one, L times, or the k-th)."""
        if self.activation is not None:
            return [self.activation] * self.depth
        return list(self.activations)

    def forward(self, x):
        for fc, act in zip(self.layers(), self.layer_activations()):
            x = act(fc(x))
        return x


def _prepare(x, weights, biases=None):
    x = np.asarray(x)
    dtype = compute_dtype(x)
    x = x.astype(dtype)
    weights = [float(w) for w in np.asarray(weights, dtype=dtype)]
    if biases is not None:
        biases = [float(b) for b in np.asarray(biases, dtype=dtype)]
        if len(biases) != len(weights):
            raise ValueError(f"biases: got {len(biases)} for {len(weights)} layers")
    return x, weights, dtype, biases


def _layer_acts(activation, depth):
    """The resolved activation of each of ``depth`` layers."""
    if _is_sequence(activation):
        if len(activation) != depth:
            raise ValueError(f"activation: got {len(activation)} activations for {depth} layers")
        return [resolve_activation(a) for a in activation]
    return [resolve_activation(activation)] * depth


def _net_activation(acts):
    """SimpleNet's ``activation`` argument: one module shared by every layer
    when all layers have the same activation, as in the seed, else one each."""
    if all(a == acts[0] for a in acts):
        return to_torch(acts[0])
    return [to_torch(a) for a in acts]


def per_sample_grads(x, activation, weights, biases=None):
    """Autograd per-sample gradients of SimpleNet, shaped like ``chain_grad``'s.

    ``torch.func.vmap(grad(f))`` with f(params, x_n) = SimpleNet(x_n): the
    per-sample convention of torch.func.  float32 inputs run a float32 net,
    anything else a float64 net.  RReLU in training mode draws random noise,
    and torch 2.13's ``vmap`` has no rule for ``rrelu_with_noise`` in either
    mode, so RReLU goes through :func:`batched_grads` instead.  With
    ``biases`` (a float per layer), :func:`eager_bias_grads`: vmap adds a
    bias differently from eager torch (see the module doc).  ``activation``
    may be a sequence, one per layer.
    """
    acts = _layer_acts(activation, len(weights))
    if biases is not None or not all(a.spec.torch_vmap for a in acts):
        # no batching rule for aten::rrelu_with_noise; vmap's bias (module doc)
        return batched_grads(x, activation, weights, biases)[0]
    x, weights, dtype, _ = _prepare(x, weights)
    tdtype = _TORCH_DTYPES[dtype]
    net = SimpleNet(_net_activation(acts), weights, dtype=tdtype)
    params = {f"fc{i}.weight": fc.weight.detach() for i, fc in enumerate(net.layers(), 1)}

    def f(p, xn):
        return functional_call(net, p, (xn.reshape(1),)).reshape(())

    def f_and_grads(p, xn):
        gp, gx = grad(f, argnums=(0, 1))(p, xn)
        return f(p, xn), gp, gx

    xt = torch.from_numpy(np.ascontiguousarray(x))
    if xt.shape[0] == 0:
        return ChainGrad(np.empty(0, dtype), np.empty((0, len(weights)), dtype), np.empty(0, dtype))
    with torch.no_grad():
        y, gp, gx = vmap(f_and_grads, in_dims=(None, 0))(params, xt)
    gw = torch.stack([gp[f"fc{i}.weight"].reshape(-1) for i in range(1, len(weights) + 1)], dim=1)
    return ChainGrad(y.numpy().copy(), gw.numpy().copy(), gx.numpy().copy())


def batched_grads(x, activation, weights, biases=None):
    """Batched autograd with one copy of the weights per sample.

    ``W`` is (N, L) with ``requires_grad``; layer k computes
    ``act(bmm(W[:, k], a))`` for all samples at once, as N 1x1 matmuls: the one
    product a ``Linear(1, 1)`` does, with the same accumulation from +0 (a plain
    ``*`` would keep -0.0 where Linear gives +0.0).  A single ``backward()`` of
    ``sum(f)`` gives every per-sample df/dw.  The activation is the torch.nn module itself; RReLU in
    training mode draws its noise for all samples of layer 1, then layer 2, ...
    ``activation`` may be a sequence, one per layer (one module each).  With
    ``biases``: :func:`eager_bias_grads`.

    Returns
    -------
    (ChainGrad, noise)
        ``noise`` (N, L) as in :func:`seed_loop_grads` (1 in the columns of
        layers that draw none), or None.
    """
    if biases is not None:
        return eager_bias_grads(x, activation, weights, biases)
    acts = _layer_acts(activation, len(weights))
    x, weights, dtype, _ = _prepare(x, weights)
    tdtype = _TORCH_DTYPES[dtype]
    modules = _recording_modules(acts, tdtype)
    n = x.shape[0]
    w = torch.tensor(weights, dtype=tdtype).expand(n, -1).clone().requires_grad_(True)
    xt = torch.from_numpy(np.ascontiguousarray(x)).clone().requires_grad_(True)
    a = xt
    for k, module in enumerate(modules):
        a = module(torch.bmm(w[:, k].reshape(n, 1, 1), a.reshape(n, 1, 1)).reshape(n))
    a.sum().backward()
    return (ChainGrad(a.detach().numpy(), w.grad.numpy(), xt.grad.numpy()),
            _recorded_noise(modules, n, tdtype))


def _recording_modules(acts, tdtype):
    # one module per layer: each records the noise of its own layer
    return [to_torch(act, record_noise=True).to(tdtype) for act in acts]


def _recorded_noise(modules, n, tdtype):
    """(N, L) noise the layers' recorders drew (one call each), 1 where a
    layer draws none; None when no layer draws."""
    drawing = [is_recorder(m) and m.training for m in modules]
    if not any(drawing):
        return None
    return torch.stack([m.recorded[0].reshape(n) if d else torch.ones(n, dtype=tdtype)
                        for m, d in zip(modules, drawing)], dim=1).numpy()


def eager_bias_grads(x, activation, weights, biases):
    """Per-sample gradients of the SimpleNet with biases, as eager torch gives
    them one sample at a time (the notebook's loop), for a whole batch.

    The batch (N, 1) runs through the net's own ``Linear(1, 1, bias=True)``
    layers and activation modules: ``addmm``, row by row the same operations
    as one sample's (module doc).  ``backward()`` of ``sum(f)`` gives each
    sample's df/dx and, retained, the gradient g_z into each layer's
    pre-activation, which is all that one sample's Linear backward reads:
    for one sample, ``weight.grad`` is the 1x1 matmul ``g_z * a`` (``bmm``
    here, the same accumulation from +0) and ``bias.grad`` the sum of its one
    row (``sum`` here).  RReLU in training mode draws its noise for all samples
    of layer 1, then layer 2, ... as :func:`batched_grads`.

    Returns
    -------
    (ChainGrad, noise)
        ``bias_grads`` set; ``noise`` as in :func:`batched_grads`.
    """
    acts = _layer_acts(activation, len(weights))
    x, weights, dtype, biases = _prepare(x, weights, biases)
    tdtype = _TORCH_DTYPES[dtype]
    modules = _recording_modules(acts, tdtype)
    net = SimpleNet(modules, weights, dtype=tdtype, biases=biases)
    n = x.shape[0]
    xt = torch.from_numpy(np.ascontiguousarray(x)).clone().reshape(n, 1).requires_grad_(True)
    a, inputs, pre = xt, [], []
    for fc, module in zip(net.layers(), net.layer_activations()):
        inputs.append(a.detach())
        z = fc(a)
        z.retain_grad()
        pre.append(z)
        a = module(z)
    a.sum().backward()
    gz = [z.grad for z in pre]
    gw = torch.cat([torch.bmm(g.reshape(n, 1, 1), ak.reshape(n, 1, 1)).reshape(n, 1)
                    for g, ak in zip(gz, inputs)], dim=1)
    gb = torch.cat([g.sum(dim=1, keepdim=True) for g in gz], dim=1)
    res = ChainGrad(a.detach().reshape(n).numpy(), gw.numpy(), xt.grad.reshape(n).numpy(),
                    bias_grads=gb.numpy())
    return res, _recorded_noise(modules, n, tdtype)


def seed_loop_grads(net, x):
    """The notebook's loop: per sample, forward, ``output.backward()``, read grads.

    Parameters
    ----------
    net : SimpleNet
    x : array_like or tensor, shape (N,) or (N, 1)

    Returns
    -------
    (ChainGrad, noise)
        ``bias_grads`` set when the net has biases.  ``noise`` is (N, L),
        the slope RReLU used at each sample and layer (1 where the
        pre-activation was > 0, or where a layer of a mixed net draws none),
        if ``net.activation`` (or, in a net with an activation per layer,
        some layer's own module) is a :class:`RecordingRReLU` in training
        mode, else None.
    """
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    xt = xt.reshape(-1, 1).to(net.fc1.weight.dtype)
    layers = net.layers()
    ys, gws, gbs, gxs = [], [], [], []
    recorders = [m for m in set(net.layer_activations()) if is_recorder(m)]
    for m in recorders:
        m.recorded.clear()
    for row in xt:
        xi = row.detach().clone().requires_grad_(True)
        out = net(xi)
        out.backward()
        ys.append(out.detach().reshape(()))
        gws.append(torch.stack([fc.weight.grad.reshape(()) for fc in layers]))
        if net.has_bias:
            gbs.append(torch.stack([fc.bias.grad.reshape(()) for fc in layers]))
        gxs.append(xi.grad.reshape(()))
        net.zero_grad()
    n, depth = xt.shape[0], len(layers)
    dtype = np.float32 if xt.dtype == torch.float32 else np.float64
    if n == 0:
        empty = np.empty((0, depth), dtype)
        res = ChainGrad(np.empty(0, dtype), empty, np.empty(0, dtype),
                        bias_grads=empty.copy() if net.has_bias else None)
    else:
        res = ChainGrad(torch.stack(ys).numpy(), torch.stack(gws).numpy(),
                        torch.stack(gxs).numpy(),
                        bias_grads=torch.stack(gbs).numpy() if net.has_bias else None)
    return res, _loop_noise(net, n, xt.dtype)


def _loop_noise(net, n, tdtype):
    """The (N, L) noise the per-sample loop's recorders drew, or None."""
    if net.activation is not None:
        m = net.activation
        if not (is_recorder(m) and m.training):
            return None
        # one shared module: L calls per sample, in layer order
        return torch.stack([r.reshape(()) for r in m.recorded]).reshape(n, net.depth).numpy()
    modules = net.layer_activations()
    drawing = [is_recorder(m) and m.training for m in modules]
    if not any(drawing):
        return None
    if len({id(m) for m, d in zip(modules, drawing) if d}) < sum(drawing):
        raise ValueError("seed_loop_grads: a recording module shared by several (but not "
                         "all) layers: whose noise is whose is ambiguous; give each layer "
                         "its own module")
    return torch.stack([torch.stack([r.reshape(()) for r in m.recorded]) if d
                        else torch.ones(n, dtype=tdtype)
                        for m, d in zip(modules, drawing)], dim=1).numpy()
