"""The torch.nn side of the registry: the module for an :class:`Activation`,
and the modules that record the noise torch draws.

Imports torch, so only :mod:`gradkern.reference` imports it.
"""
import torch

from . import resolve

__all__ = ["to_torch", "is_recorder", "RecordingRReLU", "RECORDERS"]


class RecordingRReLU(torch.nn.RReLU):
    """``nn.RReLU`` that keeps the noise torch drew at every call.

    Same op as ``F.rrelu`` (``at::rrelu`` is ``rrelu_with_noise`` on a fresh
    noise tensor), so it consumes the generator identically; it only keeps the
    noise tensor that ``F.rrelu`` throws away.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.recorded = []

    def forward(self, input):
        if not self.training:
            return super().forward(input)
        noise = torch.empty_like(input)
        out = torch._C._nn.rrelu_with_noise(input, noise, self.lower, self.upper, True)
        self.recorded.append(noise.detach().clone())
        return out


#: torch.nn class name -> the subclass that records the per-sample noise it
#: draws, for every activation with a ``slope_noise`` entry
RECORDERS = {"RReLU": RecordingRReLU}


def to_torch(act, record_noise=False):
    """The ``torch.nn`` module for a gradkern activation (or name); with
    ``record_noise``, a recording subclass where the activation draws noise."""
    act = resolve(act)
    state = act.spec.module_state
    kwargs = {k: v for k, v in act.params.items() if k not in state}
    cls = RECORDERS.get(act.name) if record_noise else None
    module = (cls or getattr(torch.nn, act.name))(**kwargs)
    if "training" in state:
        module.train(act.params["training"])
    return module


def is_recorder(module):
    """True for a module made by ``to_torch(..., record_noise=True)`` that records."""
    return isinstance(module, tuple(RECORDERS.values()))
