"""Sweeps: gradient statistics over a grid of activations x depths x input
distributions x weights, from fused streaming kernels that never hold N x L
arrays.

:mod:`.grid` the points, :mod:`.stats` the per-block statistics and their
fold, :mod:`.cpu` / :mod:`.cuda` the fused kernels, :mod:`.run` the runner
(:func:`sweep`), :mod:`.store` the directory, its tables and :func:`load`,
:mod:`.dask` the distributed runner, :mod:`.table` the results.
"""
from .run import STREAM, sweep
from .store import load
from .table import SweepResult

__all__ = ["sweep", "load", "SweepResult", "STREAM"]
