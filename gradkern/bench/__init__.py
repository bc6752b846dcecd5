"""Benchmarks against the peers: torch (batched autograd, torch.func,
torch.compile), JAX, the seed notebook's loop and the memory floor.

:mod:`.cpu` times chain gradients on the CPU (``gradkern bench``), :mod:`.gpu`
on an NVIDIA GPU.  The peers import lazily; ``import gradkern.bench`` loads
numpy and gradkern only.
"""
from .cpu import LIBS, Lib, machine_info, run_bench

__all__ = ["LIBS", "Lib", "machine_info", "run_bench"]
