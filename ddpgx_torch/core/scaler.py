"""Running standard scaler (torch), the twin of :mod:`ddpgx.scaler`: exact streaming mean and variance.

Statistics are merged batch by batch with the parallel algorithm of Chan, Golub and LeVeque (1979), so ``mean``
and ``var`` are the population moments of all samples seen. Departure from skrl, on purpose (as in ``ddpgx``):
the count starts at 0, not at a phantom sample with mean 0 and variance 1.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch


class ScalerState(NamedTuple):
    """Running statistics of a stream of ``[size]`` vectors."""

    mean: torch.Tensor  # [size] float32
    var: torch.Tensor  # [size] float32, population variance (1 before any data)
    count: torch.Tensor  # [] float32, number of samples merged


def init(size: int, device: Any = None) -> ScalerState:
    """Statistics of no data: the identity standardisation (mean 0, variance 1)."""
    return ScalerState(
        torch.zeros((size,), dtype=torch.float32, device=device),
        torch.ones((size,), dtype=torch.float32, device=device),
        torch.zeros((), dtype=torch.float32, device=device),
    )


def update(state: ScalerState, x: torch.Tensor) -> ScalerState:
    """Merges a batch ``x`` of shape ``[..., size]`` (all leading dimensions are samples) into the statistics."""
    x = x.reshape(-1, x.shape[-1]).float()
    if x.shape[0] == 0:
        return state
    n = float(x.shape[0])
    batch_var, batch_mean = torch.var_mean(x, dim=0, correction=0)
    total = state.count + n
    delta = batch_mean - state.mean
    mean = state.mean + delta * (n / total)
    m2 = state.var * state.count + batch_var * n + torch.square(delta) * (state.count * n / total)
    return ScalerState(mean, m2 / total, total)


def standardize(state: ScalerState, x: torch.Tensor, epsilon: float = 1e-8, clip: float = 5.0) -> torch.Tensor:
    """``clip((x - mean) / (sqrt(var) + epsilon), -clip, clip)``, skrl's formula."""
    return torch.clamp((x - state.mean) / (torch.sqrt(state.var) + epsilon), -clip, clip)
