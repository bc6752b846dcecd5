"""The two seed notebooks, corrected, each computed by the kernel and by autograd.

- :func:`vanishing`: seed ``000_3d6265921afac97e.txt``.  For each activation:
  ``np.random.seed(S); torch.manual_seed(S)``, build the 3-layer SimpleNet
  (weights 1; its Linear layers draw their (overwritten) init from the torch
  RNG, as in the notebook), draw ``torch.randn((samples, 1))``, and take the
  mean over samples of |d out / d w1|.  The notebook's bug -- it rebinds
  ``activation`` in a loop and so measures only the last one (Hardshrink) --
  is fixed by running the whole experiment once per activation, re-seeded each
  time, so every activation sees the inputs the notebook would have given it.
  RReLU is in training mode (a fresh ``nn.RReLU()``) and draws its noise from
  the same torch generator; the autograd loop records that noise and the
  kernel is given it, so both compute the same function.
- :func:`chain`: seed ``002_05a565a4c68fbedd.txt``, the per-layer gradients of
  an L-layer chain at one input (Tanh at x=100 vanishes to 0.0 at layer 1).
"""
import numpy as np

from .activations import fresh
from .api import chain_grad

__all__ = ["vanishing", "chain", "RELATIVE_AGREEMENT", "SEED_ACTIVATIONS"]

#: kernel and autograd means must agree to this relative difference
RELATIVE_AGREEMENT = 1e-6


def _agree(a, b):
    return bool(abs(a - b) <= RELATIVE_AGREEMENT * max(abs(a), abs(b)) or a == b)


#: the seed notebook's 17 activations, in its order: ``vanishing`` reproduces
#: that notebook, so it keeps its list when the registry grows
SEED_ACTIVATIONS = ("ELU", "Hardtanh", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU", "ReLU6",
                    "RReLU", "SELU", "CELU", "Sigmoid", "Softplus", "Softshrink", "Softsign",
                    "Tanh", "Tanhshrink", "Hardshrink")


def vanishing(seed, samples=200, names=None):
    """Mean |df/dw1| of the seed's 3-layer net for each activation, ranked.

    Parameters
    ----------
    seed : int
    samples : int
    names : sequence of str, optional
        Activations to run; default the seed notebook's 17
        (:data:`SEED_ACTIVATIONS`), which this reproduces.  Each is as a fresh
        ``torch.nn`` module has it (``Threshold``, which torch.nn gives no
        defaults, as ``Threshold(0.1, 20)``).

    Returns
    -------
    list of dict
        ``{"activation", "mean_abs_grad" (kernel), "autograd", "agree"}``,
        largest mean first (ties keep the given order).
    """
    from .verify import prewarm_chains

    if samples < 1:
        raise ValueError(f"samples must be >= 1, got {samples}")
    # a fresh torch.nn module each (nn.RReLU() trains; Threshold(0.1, 20))
    acts = [fresh(name) for name in names or SEED_ACTIVATIONS]
    # the kernels the cache lacks compile in workers while torch is imported
    # and runs here
    ahead = prewarm_chains(acts, [np.float32])
    try:
        return _vanishing(acts, seed, samples, ahead)
    finally:
        if ahead is not None:
            ahead.close()


def _vanishing(acts, seed, samples, ahead):
    import torch

    from . import reference

    rows = []
    for act in acts:
        np.random.seed(seed)
        torch.manual_seed(seed)
        module = reference.to_torch(act, record_noise=True)
        net = reference.SimpleNet(module, (1.0, 1.0, 1.0))
        x = torch.randn((samples, 1))
        ref, noise = reference.seed_loop_grads(net, x)
        autograd = float(np.mean(np.abs(ref.weight_grads[:, 0]).astype(np.float64)))
        if ahead is not None:
            ahead.wait(act, np.float32)
        res = chain_grad(x.numpy().reshape(-1), act, np.ones(3, np.float32), noise=noise)
        kernel = float(np.mean(np.abs(res.weight_grads[:, 0]).astype(np.float64)))
        rows.append({"activation": act.name, "mean_abs_grad": kernel, "autograd": autograd,
                     "agree": _agree(kernel, autograd)})
    return sorted(rows, key=lambda r: -r["mean_abs_grad"])


def chain(act, depth=None, x=100.0, weights=None, dtype="float32", torch_seed=None, biases=None):
    """Per-layer df/dw of one input through an L-layer chain, kernel and autograd.

    Parameters
    ----------
    act : Activation or str, or a sequence of them (one per layer)
    depth : int, optional
        Number of layers; defaults to ``len(weights)``, ``len(biases)``, the
        number of activations given, or 4.
    x : float
    weights : sequence of float, optional
        Defaults to ones.
    dtype : "float32" or "float64"
    torch_seed : int, optional
        RReLU in training mode only: seeds torch's generator, which draws the
        noise of the autograd run; the kernel is given that noise.  (Not
        gradkern's Philox ``seed`` of ``chain_grad`` and ``sweep``.)
    biases : sequence of float, optional
        One per layer: the SimpleNet's Linear layers get ``bias=True``.

    Returns
    -------
    dict with ``weight_grads`` (kernel, layer 1 first), ``autograd``,
    ``output``, ``autograd_output``, ``input_grad``, ``autograd_input_grad``,
    with biases ``bias_grads`` and ``autograd_bias_grads``, and ``agree``
    (equal within assert_close's default tolerance).
    """
    import torch

    from . import reference
    from .verify import compare

    if dtype not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    acts = list(act) if isinstance(act, (list, tuple)) else None
    lengths = {name: len(v) for name, v in (("weights", weights), ("biases", biases),
                                             ("activations", acts if acts and len(acts) > 1
                                              else None)) if v is not None}
    if depth is None:
        depth = next(iter(lengths.values()), 4)
    for name, n in lengths.items():
        if n != depth:
            raise ValueError(f"depth {depth} does not match {n} {name}")
    if depth < 1:
        raise ValueError("depth must be >= 1")
    weights = [1.0] * depth if weights is None else weights
    if acts is not None:
        acts = [activation(a) if isinstance(a, str) else a for a in acts]
        act = acts[0] if len(acts) == 1 else acts
    else:
        act = activation(act) if isinstance(act, str) else act
    xs = np.array([x], dtype=dtype)
    w = np.asarray(weights, dtype=dtype)
    b = None if biases is None else np.asarray(biases, dtype=dtype)
    stochastic = any(a.stochastic for a in (act if isinstance(act, list) else [act]))
    if stochastic or b is not None:
        if torch_seed is not None:
            torch.manual_seed(torch_seed)
        ref, noise = reference.batched_grads(xs, act, w, b)
    else:
        ref, noise = reference.per_sample_grads(xs, act, w), None
    res = chain_grad(xs, act, w, biases=b, noise=noise)
    pairs = list(zip(res, ref))
    if b is not None:
        pairs.append((res.bias_grads, ref.bias_grads))
    agree = all(c.equal or c.close for c in (compare(k, r, xs.dtype) for k, r in pairs))
    out = {
        "activation": ", ".join(map(repr, act)) if isinstance(act, list) else repr(act),
        "dtype": dtype, "x": float(xs[0]),
        "weights": [float(v) for v in w],
        "weight_grads": [float(v) for v in res.weight_grads[0]],
        "autograd": [float(v) for v in ref.weight_grads[0]],
        "output": float(res.output[0]), "autograd_output": float(ref.output[0]),
        "input_grad": float(res.input_grad[0]), "autograd_input_grad": float(ref.input_grad[0]),
        "agree": agree,
    }
    if b is not None:
        out.update(biases=[float(v) for v in b],
                   bias_grads=[float(v) for v in res.bias_grads[0]],
                   autograd_bias_grads=[float(v) for v in ref.bias_grads[0]])
    return out
