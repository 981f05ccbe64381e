"""Policy and critic weights between the JAX (flax) and torch backends: train in one, deploy in the other.

A flax ``Dense`` layer holds ``kernel [in, out]`` and ``bias [out]``; a torch ``nn.Linear`` holds
``weight [out, in]`` and ``bias [out]``. The default networks of both backends (400-300 ReLU MLPs, the policy's
tanh scaled to the bounds) have the same layers in the same order, so their parameters map one to one: the i-th
``Dense`` (in the flax parameter tree's order) is the i-th ``nn.Linear`` (in ``module.modules()`` order), kernel
transposed. Any pair of networks made only of dense layers in matching order converts the same way.

Examples:
  >>> import gymnasium, jax, numpy as np, torch, ddpgx, ddpgx_torch
  >>> from ddpgx_torch import convert
  >>> obs_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
  >>> act_space = gymnasium.spaces.Box(-2, 2, (1,), np.float32)
  >>> jax_ts = ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), obs_space, act_space)
  >>> policy = convert.policy_from_jax(jax_ts)          # a torch DeterministicPolicy with jax_ts's weights
  >>> x = np.ones((1, 3), np.float32)
  >>> a_jax, _, _ = ddpgx.act(jax_ts, x, explore=False)
  >>> bool(np.allclose(policy(torch.from_numpy(x)).detach().numpy(), np.asarray(a_jax), atol=1e-6))
  True
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from ddpgx_torch.core import networks


def _dense_paths(params: Any, prefix: tuple = ()) -> list[tuple]:
    """Paths of the dicts holding a ``kernel`` in a flax parameter tree, in the tree's order."""
    if not isinstance(params, dict) and not hasattr(params, "items"):
        return []
    if "kernel" in params:
        return [prefix]
    paths = []
    for key, value in params.items():
        paths += _dense_paths(value, prefix + (key,))
    return paths


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _check_counts(flax_paths: list, linears: list, module: nn.Module) -> None:
    if len(flax_paths) != len(linears):
        raise ValueError(f"cannot convert: the flax parameters have {len(flax_paths)} dense layers but "
                         f"{type(module).__name__} has {len(linears)} nn.Linear layers")


def load_flax_params(module: nn.Module, flax_params: Any) -> nn.Module:
    """Copies flax dense-layer parameters into ``module``'s ``nn.Linear`` layers, in place; returns ``module``.

    Raises:
      ValueError: if the numbers of layers or their shapes differ.
    """
    paths, linears = _dense_paths(flax_params), _linears(module)
    _check_counts(paths, linears, module)
    with torch.no_grad():
        for path, linear in zip(paths, linears, strict=True):
            dense = _get(flax_params, path)
            kernel = torch.from_numpy(np.array(dense["kernel"], dtype=np.float32)).T
            if tuple(kernel.shape) != tuple(linear.weight.shape):
                raise ValueError(f"cannot convert: flax layer {'/'.join(map(str, path))} has kernel "
                                 f"{tuple(kernel.shape[::-1])}, torch layer has weight {tuple(linear.weight.shape)}")
            linear.weight.copy_(kernel)
            if linear.bias is not None:
                linear.bias.copy_(torch.from_numpy(np.array(dense["bias"], dtype=np.float32)))
    return module


def to_flax_params(module: nn.Module, flax_params: Any) -> Any:
    """A copy of the flax parameter tree ``flax_params`` with its dense layers taken from ``module``.

    Raises:
      ValueError: if the numbers of layers or their shapes differ.
    """
    import jax
    import jax.numpy as jnp

    paths, linears = _dense_paths(flax_params), _linears(module)
    _check_counts(paths, linears, module)
    new = {path: linear for path, linear in zip(paths, linears, strict=True)}

    def rebuild(tree, prefix=()):
        if prefix in new:
            linear = new[prefix]
            kernel = jnp.asarray(linear.weight.detach().cpu().numpy().T)
            if kernel.shape != tree["kernel"].shape:
                raise ValueError(f"cannot convert: torch weight {tuple(linear.weight.shape)} does not match flax "
                                 f"kernel {tree['kernel'].shape} at {'/'.join(map(str, prefix))}")
            out = dict(tree)
            out["kernel"] = kernel
            if linear.bias is not None:
                out["bias"] = jnp.asarray(linear.bias.detach().cpu().numpy())
            return out
        if isinstance(tree, dict) or hasattr(tree, "items"):
            return {k: rebuild(v, prefix + (k,)) for k, v in tree.items()}
        return tree

    return jax.tree.map(lambda x: x, rebuild(flax_params))


def policy_from_jax(jax_train_state: Any, *, target: bool = False) -> networks.DeterministicPolicy:
    """A torch :class:`~ddpgx_torch.core.networks.DeterministicPolicy` holding a ``ddpgx`` train state's policy weights
    (default networks; hidden sizes read from the parameters)."""
    spec = jax_train_state.spec
    params = jax_train_state.target_policy_params if target else jax_train_state.policy_params
    paths = _dense_paths(params)
    hidden = [int(_get(params, p)["kernel"].shape[1]) for p in paths[:-1]]
    policy = networks.DeterministicPolicy(spec.observation.size, spec.action.low, spec.action.high,
                                          spec.action.shape, hidden_sizes=hidden)
    return load_flax_params(policy, params)


def load_jax_train_state(torch_train_state: Any, jax_train_state: Any) -> Any:
    """Copies a ``ddpgx`` train state's four networks (online and target) into a ``ddpgx_torch`` train state's."""
    for name in ("policy", "critic", "target_policy", "target_critic"):
        load_flax_params(getattr(torch_train_state, name), getattr(jax_train_state, f"{name}_params"))
    return torch_train_state


def to_jax_train_state(torch_train_state: Any, jax_train_state: Any) -> Any:
    """A ``ddpgx`` train state with its four networks' parameters taken from a ``ddpgx_torch`` train state (the
    optimizer states are left as they are)."""
    changes = {f"{name}_params": to_flax_params(getattr(torch_train_state, name),
                                                getattr(jax_train_state, f"{name}_params"))
               for name in ("policy", "critic", "target_policy", "target_critic")}
    return jax_train_state.replace(**changes)
