"""Shared parametrisation: everything comes from the activation registry."""
import numpy as np
import pytest

import gradkern as gk

ACT_NAMES = list(gk.ACTIVATIONS)
PIECEWISE = [n for n, s in gk.ACTIVATIONS.items() if s.piecewise_linear]
SMOOTH = [n for n, s in gk.ACTIVATIONS.items() if not s.piecewise_linear]
DTYPES = [np.float32, np.float64]


def default_activation(name, **params):
    """The activation with torch.nn defaults; RReLU in eval mode unless asked."""
    if name == "RReLU":
        params.setdefault("training", False)
    return gk.activation(name, **params)


@pytest.fixture(params=ACT_NAMES)
def act_name(request):
    return request.param


@pytest.fixture(params=DTYPES, ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)
