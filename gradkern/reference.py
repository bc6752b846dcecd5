"""The PyTorch autograd reference: the seed notebook's SimpleNet, L layers deep.

Importing this module imports torch; ``import gradkern`` does not.

- :class:`SimpleNet`: ``Linear(1, 1, bias=False)`` layers ``fc1..fcL`` with
  their weights filled, the same activation module applied after each one, as
  in seed ``000_3d6265921afac97e.txt`` (which has L = 3).  Building it consumes
  the torch RNG exactly as the notebook's does (each Linear's init draws).
- :func:`per_sample_grads`: ``torch.func.vmap(grad(...))`` over
  ``functional_call(SimpleNet)``, returning the same :class:`~gradkern.ChainGrad`
  as :func:`gradkern.chain_grad`.
- :func:`seed_loop_grads`: the notebook's own loop, one forward/backward per
  sample.  Slow (about 5e3 samples/s), but it is the only form in which RReLU
  in training mode draws its noise in the notebook's order; it records that
  noise so the kernel can be given exactly what torch drew.
"""
import numpy as np
import torch
from torch.func import functional_call, grad, vmap

from .activations import resolve as resolve_activation
from .activations.torchnn import RecordingRReLU, is_recorder, to_torch
from .chain.arrays import ChainGrad, compute_dtype

__all__ = [
    "SimpleNet", "to_torch", "per_sample_grads", "batched_grads", "seed_loop_grads",
    "RecordingRReLU",
]

_TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


class SimpleNet(torch.nn.Module):
    """The seed's SimpleNet with ``len(weights)`` layers.

    Parameters
    ----------
    activation : torch.nn.Module, Activation or str
        Applied after every layer (one shared instance, as in the notebook).
    weights : sequence of float
        ``fc{i}.weight`` is filled with ``weights[i-1]``.
    dtype : torch.dtype
        Of the whole net (the activation's own parameters included).
    """

    def __init__(self, activation, weights=(1.0, 1.0, 1.0), dtype=torch.float32):
        super().__init__()
        if not isinstance(activation, torch.nn.Module):
            activation = to_torch(activation)
        self.activation = activation
        self.depth = len(weights)
        for i in range(1, self.depth + 1):
            # one neuron without bias; its init draws from the torch RNG as in the seed
            setattr(self, f"fc{i}", torch.nn.Linear(1, 1, bias=False))
        # fill after the dtype change: filling first would round float64 weights to float32
        self.to(dtype)
        for fc, w in zip(self.layers(), weights):
            fc.weight.data.fill_(float(w))

    def layers(self):
        return [getattr(self, f"fc{i}") for i in range(1, self.depth + 1)]

    def forward(self, x):
        for fc in self.layers():
            x = self.activation(fc(x))
        return x


def _prepare(x, weights):
    x = np.asarray(x)
    dtype = compute_dtype(x)
    x = x.astype(dtype)
    weights = [float(w) for w in np.asarray(weights, dtype=dtype)]
    return x, weights, dtype


def per_sample_grads(x, activation, weights):
    """Autograd per-sample gradients of SimpleNet, shaped like ``chain_grad``'s.

    ``torch.func.vmap(grad(f))`` with f(params, x_n) = SimpleNet(x_n): the
    per-sample convention of torch.func.  float32 inputs run a float32 net,
    anything else a float64 net.  RReLU in training mode draws random noise,
    and torch 2.13's ``vmap`` has no rule for ``rrelu_with_noise`` in either
    mode, so RReLU goes through :func:`batched_grads` instead.
    """
    act = resolve_activation(activation)
    if not act.spec.torch_vmap:  # e.g. no batching rule for aten::rrelu_with_noise
        return batched_grads(x, act, weights)[0]
    x, weights, dtype = _prepare(x, weights)
    tdtype = _TORCH_DTYPES[dtype]
    net = SimpleNet(to_torch(act), weights, dtype=tdtype)
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


def batched_grads(x, activation, weights):
    """Batched autograd with one copy of the weights per sample.

    ``W`` is (N, L) with ``requires_grad``; layer k computes
    ``act(bmm(W[:, k], a))`` for all samples at once, as N 1x1 matmuls: the one
    product a ``Linear(1, 1)`` does, with the same accumulation from +0 (a plain
    ``*`` would keep -0.0 where Linear gives +0.0).  A single ``backward()`` of
    ``sum(f)`` gives every per-sample df/dw.  The activation is the torch.nn module itself; RReLU in
    training mode draws its noise for all samples of layer 1, then layer 2, ...

    Returns
    -------
    (ChainGrad, noise)
        ``noise`` (N, L) as in :func:`seed_loop_grads`, or None.
    """
    act = resolve_activation(activation)
    x, weights, dtype = _prepare(x, weights)
    tdtype = _TORCH_DTYPES[dtype]
    module = to_torch(act, record_noise=True).to(tdtype)
    n = x.shape[0]
    w = torch.tensor(weights, dtype=tdtype).expand(n, -1).clone().requires_grad_(True)
    xt = torch.from_numpy(np.ascontiguousarray(x)).clone().requires_grad_(True)
    a = xt
    for k in range(len(weights)):
        a = module(torch.bmm(w[:, k].reshape(n, 1, 1), a.reshape(n, 1, 1)).reshape(n))
    a.sum().backward()
    noise = None
    if is_recorder(module) and module.training:
        noise = torch.stack(module.recorded, dim=1).numpy()
    return ChainGrad(a.detach().numpy(), w.grad.numpy(), xt.grad.numpy()), noise


def seed_loop_grads(net, x):
    """The notebook's loop: per sample, forward, ``output.backward()``, read grads.

    Parameters
    ----------
    net : SimpleNet
    x : array_like or tensor, shape (N,) or (N, 1)

    Returns
    -------
    (ChainGrad, noise)
        ``noise`` is (N, L), the slope RReLU used at each sample and layer
        (1 where the pre-activation was > 0), if ``net.activation`` is a
        :class:`RecordingRReLU` in training mode, else None.
    """
    xt = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    xt = xt.reshape(-1, 1).to(next(net.parameters()).dtype)
    layers = net.layers()
    ys, gws, gxs = [], [], []
    recorder = net.activation if is_recorder(net.activation) else None
    if recorder is not None:
        recorder.recorded.clear()
    for row in xt:
        xi = row.detach().clone().requires_grad_(True)
        out = net(xi)
        out.backward()
        ys.append(out.detach().reshape(()))
        gws.append(torch.stack([fc.weight.grad.reshape(()) for fc in layers]))
        gxs.append(xi.grad.reshape(()))
        net.zero_grad()
    n, depth = xt.shape[0], len(layers)
    dtype = np.float32 if xt.dtype == torch.float32 else np.float64
    if n == 0:
        res = ChainGrad(np.empty(0, dtype), np.empty((0, depth), dtype), np.empty(0, dtype))
    else:
        res = ChainGrad(torch.stack(ys).numpy(), torch.stack(gws).numpy(), torch.stack(gxs).numpy())
    noise = None
    if recorder is not None and recorder.training:
        noise = torch.stack([r.reshape(()) for r in recorder.recorded]).reshape(n, depth).numpy()
    return res, noise

