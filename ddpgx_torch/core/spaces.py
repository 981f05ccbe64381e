"""Gymnasium spaces -> flat float32 tensors, with the layouts of :mod:`ddpgx.spaces` (shared, framework-free).

``Box`` or (nested) ``Dict``-of-``Box`` observations are flattened to one float32 vector per sample in gymnasium's
flattening order, exactly as ``ddpgx`` does, so the two backends read the same inputs in the same order.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ddpgx.core.spaces import (
    ActionLayout,
    InputLayout,
    action_layout,
    get_path,
    input_layout,
)

__all__ = ["ActionLayout", "InputLayout", "action_layout", "flatten", "flatten_with_batch_shape", "input_layout"]


def _tensor(x: Any, device: Any) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(device=device)
    return torch.as_tensor(np.asarray(x), device=device)


def flatten_with_batch_shape(
    layout: InputLayout, inputs: Any, name: str = "observations", device: Any = None
) -> tuple[torch.Tensor, tuple[int, ...]]:
    """Flattens a batch of (possibly dict) inputs to float32 ``[*batch, layout.size]``; also returns ``batch``.

    Raises:
      ValueError: naming the field and the shapes when the structure or trailing shape does not match the space.
    """
    if isinstance(inputs, dict):
        if layout.keys is None:
            raise ValueError(f"{name} is a dict but the space is a Box of shape {layout.shapes[0]}")
        parts, batch = [], None
        for path, shape in zip(layout.keys, layout.shapes, strict=True):
            leaf = _tensor(get_path(inputs, path, name, layout.keys), device)
            lead = _lead_shape(tuple(leaf.shape), shape, f"{name}[{'/'.join(path)!r}]")
            if batch is not None and lead != batch:
                raise ValueError(f"{name} entries disagree on batch shape: {batch} vs {lead} at {'/'.join(path)!r}")
            batch = lead
            parts.append(leaf.reshape(lead + (-1,)).float())
        return torch.cat(parts, dim=-1), batch
    tensor = _tensor(inputs, device)
    trailing = layout.shapes[0] if layout.keys is None else (layout.size,)
    lead = _lead_shape(tuple(tensor.shape), trailing, name)
    return tensor.reshape(lead + (layout.size,)).float(), lead


def flatten(layout: InputLayout, inputs: Any, name: str = "observations", device: Any = None) -> torch.Tensor:
    """Like :func:`flatten_with_batch_shape`, without the batch shape."""
    return flatten_with_batch_shape(layout, inputs, name, device)[0]


def _lead_shape(shape: tuple[int, ...], trailing: tuple[int, ...], name: str) -> tuple[int, ...]:
    n = len(trailing)
    if len(shape) < n or tuple(shape[len(shape) - n :]) != tuple(trailing):
        raise ValueError(f"{name} has shape {tuple(shape)}, expected (*batch, {', '.join(map(str, trailing))})")
    return tuple(shape[: len(shape) - n])
