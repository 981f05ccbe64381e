"""Running standard scaler: streaming mean/variance and standardisation, as pure functions.

Observations of continuous-control tasks span very different ranges; standardising them with running statistics
helps the networks (skrl's ``RunningStandardScaler``). The statistics are merged batch by batch with the parallel
algorithm of Chan, Golub and LeVeque (1979), so after any sequence of batches ``mean`` and ``var`` equal the
population mean and variance of all samples seen (``numpy.mean``/``numpy.var`` of their concatenation).

Departure from skrl, on purpose: skrl starts from ``count = 1, mean = 0, var = 1`` (a phantom sample that biases
early statistics) and merges sample variances (ddof = 1) into a population variance; here the count starts at 0 and
every term is a population moment, so the statistics are exact.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class ScalerState(NamedTuple):
    """Running statistics of a stream of ``[size]`` vectors."""

    mean: jax.Array  # [size] float32
    var: jax.Array  # [size] float32, population variance (1 before any data)
    count: jax.Array  # [] float32, number of samples merged


def init(size: int) -> ScalerState:
    """Statistics of no data: the identity standardisation (mean 0, variance 1)."""
    return ScalerState(jnp.zeros((size,), jnp.float32), jnp.ones((size,), jnp.float32), jnp.zeros((), jnp.float32))


def update(state: ScalerState, x: jax.Array) -> ScalerState:
    """Merges a batch ``x`` of shape ``[..., size]`` (all leading dimensions are samples) into the statistics."""
    x = jnp.reshape(x, (-1, x.shape[-1])).astype(jnp.float32)
    if x.shape[0] == 0:  # no samples: nothing to merge (and no 0/0)
        return state
    n = jnp.asarray(x.shape[0], jnp.float32)
    batch_mean = jnp.mean(x, axis=0)
    batch_m2 = jnp.sum(jnp.square(x - batch_mean), axis=0)
    total = state.count + n
    delta = batch_mean - state.mean
    mean = state.mean + delta * (n / total)
    m2 = state.var * state.count + batch_m2 + jnp.square(delta) * (state.count * n / total)
    return ScalerState(mean, m2 / total, total)


def standardize(state: ScalerState, x: jax.Array, epsilon: float = 1e-8, clip: float = 5.0) -> jax.Array:
    """``clip((x - mean) / (sqrt(var) + epsilon), -clip, clip)``, skrl's formula."""
    return jnp.clip((x - state.mean) / (jnp.sqrt(state.var) + epsilon), -clip, clip)
