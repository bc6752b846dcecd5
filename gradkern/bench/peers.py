"""How the peers spell each activation: JAX's definitions, one table.

Peer knowledge, not registry knowledge: the registry says what an activation
*is*; this table says how JAX computes it, following torch.nn's definition
and parameters.  It serves every JAX benchmark (``gradkern bench``'s
``jax`` lib and the sweep benchmark).  An activation without an entry is an
explicit skip with its reason (:func:`jax_skip_reason`) -- never another
activation's formula standing in for it.
"""

__all__ = ["jax_activation", "jax_skip_reason"]


def _table(jax, jnp):
    """name -> (params -> f(z, slope)); ``slope`` is the per-sample, per-layer
    slope of an activation that draws one (None otherwise)."""
    nn = jax.nn

    def rrelu(p):
        if p["training"]:
            return lambda z, s: jnp.where(z >= 0, z, z * s)
        slope = (p["lower"] + p["upper"]) / 2
        return lambda z, s: jnp.where(z >= 0, z, z * slope)

    def softplus(p):
        beta, threshold = p["beta"], p["threshold"]
        return lambda z, s: jnp.where(z * beta > threshold, z, nn.softplus(z * beta) / beta)

    def softshrink(p):
        lam = p["lambd"]
        return lambda z, s: jnp.where(z > lam, z - lam, jnp.where(z < -lam, z + lam, 0 * z))

    def hardshrink(p):
        lam = p["lambd"]
        return lambda z, s: jnp.where((z >= -lam) & (z <= lam), 0 * z, z)

    def gelu(p):
        # jax.nn.gelu's default is the tanh form, torch.nn.GELU's the erf form
        approximate = p["approximate"] == "tanh"
        return lambda z, s: nn.gelu(z, approximate=approximate)

    def threshold(p):
        th, value = p["threshold"], p["value"]
        return lambda z, s: jnp.where(z <= th, value, z)

    return {
        "ELU": lambda p: lambda z, s: nn.elu(z, p["alpha"]),
        "Hardtanh": lambda p: lambda z, s: jnp.clip(z, p["min_val"], p["max_val"]),
        "LeakyReLU": lambda p: lambda z, s: jnp.where(z > 0, z, z * p["negative_slope"]),
        "LogSigmoid": lambda p: lambda z, s: nn.log_sigmoid(z),
        "PReLU": lambda p: lambda z, s: jnp.where(z > 0, z, z * p["init"]),
        "ReLU": lambda p: lambda z, s: nn.relu(z),
        "ReLU6": lambda p: lambda z, s: jnp.clip(z, 0.0, 6.0),
        "RReLU": rrelu,
        "SELU": lambda p: lambda z, s: nn.selu(z),
        "CELU": lambda p: lambda z, s: nn.celu(z, p["alpha"]),
        "Sigmoid": lambda p: lambda z, s: nn.sigmoid(z),
        "Softplus": softplus,
        "Softshrink": softshrink,
        "Softsign": lambda p: lambda z, s: nn.soft_sign(z),
        "Tanh": lambda p: lambda z, s: jnp.tanh(z),
        "Tanhshrink": lambda p: lambda z, s: z - jnp.tanh(z),
        "Hardshrink": hardshrink,
        "GELU": gelu,
        "SiLU": lambda p: lambda z, s: nn.silu(z),
        # x*tanh(softplus(x)): jax.nn.mish only exists in recent JAX releases
        "Mish": lambda p: lambda z, s: z * jnp.tanh(nn.softplus(z)),
        "Hardswish": lambda p: lambda z, s: nn.hard_swish(z),
        "Hardsigmoid": lambda p: lambda z, s: nn.hard_sigmoid(z),
        "Threshold": threshold,
    }


_NAMES = frozenset(("ELU", "Hardtanh", "LeakyReLU", "LogSigmoid", "PReLU", "ReLU", "ReLU6",
                    "RReLU", "SELU", "CELU", "Sigmoid", "Softplus", "Softshrink", "Softsign",
                    "Tanh", "Tanhshrink", "Hardshrink", "GELU", "SiLU", "Mish", "Hardswish",
                    "Hardsigmoid", "Threshold"))


def jax_skip_reason(act):
    """Why JAX cannot be benchmarked on ``act`` (no definition here), or None."""
    if act.name not in _NAMES:
        return f"no JAX definition of {act.name} in gradkern.bench.peers"
    return None


def jax_activation(act):
    """``f(z, slope)`` computing ``act`` in jax.numpy (imports JAX)."""
    reason = jax_skip_reason(act)
    if reason:
        raise LookupError(reason)
    import jax
    import jax.numpy as jnp

    return _table(jax, jnp)[act.name](dict(act.params))
