"""The JAX peers of ``gradkern bench``: one definition per registry activation
(the table must stay complete even where JAX is not installed), each computing
what the activation computes."""
import numpy as np
import pytest

import gradkern as gk
from gradkern.bench.peers import jax_activation, jax_skip_reason

from .conftest import VARIANTS


def test_every_activation_has_a_jax_definition():
    missing = [label for label, act in VARIANTS.items() if jax_skip_reason(act) is not None]
    assert missing == []


@pytest.mark.parametrize("label", [label for label, act in VARIANTS.items()
                                   if not act.stochastic])
def test_jax_definition_computes_the_activation(label):
    pytest.importorskip("jax", reason="JAX (the `bench` extra) not installed")
    act = VARIANTS[label]
    x = np.concatenate([np.linspace(-8, 8, 3201), act.kinks()]).astype(np.float32)
    got = np.asarray(jax_activation(act)(x, None))
    np.testing.assert_allclose(got, act.forward(x), rtol=1e-5, atol=1e-6)


def test_unknown_activation_is_an_explicit_skip():
    class Other:
        name = "Softmin"

    assert "no JAX definition of Softmin" in jax_skip_reason(Other())
    with pytest.raises(LookupError):
        jax_activation(Other())
    assert jax_skip_reason(gk.activation("GELU", approximate="tanh")) is None
