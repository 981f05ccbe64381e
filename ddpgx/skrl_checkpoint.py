"""skrl's JAX agent checkpoints (``agent_<timestep>.pickle``) read as data and mapped onto a ddpgx train state.

skrl 2.x's JAX ``Agent.save`` pickles a dict from module name (``policy``, ``target_policy``, ``critic``,
``target_critic``, ``policy_optimizer``, ``critic_optimizer``, ``observation_preprocessor``, ``state_preprocessor``)
to ``flax.serialization.to_bytes`` of the module's state: a model's parameter tree (``{"params": ...}``), an
optimizer's optax state (``{"state": {"0": {"count", "mu", "nu"}, "1": {}}}`` for Adam, nested one level deeper
behind gradient clipping), a preprocessor's ``running_mean``, ``running_variance`` and ``current_count``.

The pickle is read with :func:`ddpgx.safe_io.restricted_load` (a pickle naming any function or class other than
NumPy's array reconstructors is refused, nothing runs), the bytes with flax's msgpack reader (data only). Then
:func:`restore` puts each module where ddpgx keeps it, checking every tree's structure and shapes against the agent's:
a checkpoint of other networks, or holding a module the agent has no place for, is refused with a ``ValueError``
naming it. skrl's Adam moments and step count fill the ``optax.ScaleByAdamState`` of ddpgx's optimizers (skrl's
JAX ``load`` itself drops them). skrl's scaler counts one phantom sample (it starts at ``count = 1``); the count is
taken as it is.
"""

from __future__ import annotations

from typing import Any

import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np
import optax

from ddpgx import safe_io

__all__ = ["read", "restore"]

_MODELS = {"policy": "policy_params", "target_policy": "target_policy_params", "critic": "critic_params",
           "target_critic": "target_critic_params"}
_OPTIMIZERS = {"policy_optimizer": ("policy_opt_state", "policy_params"),
               "critic_optimizer": ("critic_opt_state", "critic_params")}
_SCALERS = {"observation_preprocessor": "observation_stats", "state_preprocessor": "state_stats"}


def read(path: str) -> dict[str, Any]:
    """The modules of a skrl JAX agent checkpoint, as trees of NumPy arrays (read as data only).

    Raises:
      ValueError: naming ``path``: a pickle that is not data (the refused global is named), not a skrl agent
        checkpoint (a dict of module name to bytes), or a module that is not flax msgpack.
    """
    saved = safe_io.restricted_load(path)
    if not isinstance(saved, dict) or not all(isinstance(k, str) and isinstance(v, bytes) for k, v in saved.items()):
        raise ValueError(f"{path!r} is not a skrl JAX agent checkpoint (expected a dict of module name to the bytes "
                         f"of flax.serialization.to_bytes, got {type(saved).__name__})")
    modules = {}
    for name, data in saved.items():
        try:
            modules[name] = flax.serialization.msgpack_restore(data)
        except Exception as error:  # msgpack raises its own exception types
            raise ValueError(f"{path!r}: module {name!r} is not flax msgpack data ({error})") from error
    return modules


def _shapes(tree: Any) -> list[tuple[str, tuple[int, ...]]]:
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [(jax.tree_util.keystr(p), tuple(np.shape(x))) for p, x in flat]


def _matching(path: str, name: str, saved: Any, target: Any) -> Any:
    """``saved`` cast to ``target``'s structure and dtypes, after checking that their paths and shapes agree."""
    if _shapes(saved) != _shapes(target):
        raise ValueError(f"{path!r}: skrl's {name!r} does not match this agent: it holds {_shapes(saved)}, the agent "
                         f"{_shapes(target)} (build the agent with the same networks and spaces as the skrl agent)")
    pairs = zip(jax.tree.leaves(saved), jax.tree.leaves(target), strict=True)
    leaves = [jnp.asarray(x, dtype=jnp.asarray(t).dtype) for x, t in pairs]
    return jax.tree.unflatten(jax.tree.structure(target), leaves)


def _adam_state(path: str, name: str, saved: Any) -> dict[str, Any]:
    """skrl's Adam moments: the one ``{"count", "mu", "nu"}`` dict inside its optax state."""
    found = []

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            if {"count", "mu", "nu"} <= set(node):
                found.append(node)
            else:
                for value in node.values():
                    visit(value)

    visit(saved)
    if len(found) != 1:
        raise ValueError(f"{path!r}: skrl's {name!r} is not an Adam state (found {len(found)} count/mu/nu entries, "
                         "expected 1)")
    return found[0]


def _with_adam(path: str, name: str, opt_state: Any, saved: dict[str, Any], params: Any) -> Any:
    is_adam = lambda s: isinstance(s, optax.ScaleByAdamState)  # noqa: E731
    if sum(map(is_adam, jax.tree.leaves(opt_state, is_leaf=is_adam))) != 1:
        raise ValueError(f"{path!r}: skrl's {name!r} is Adam, this agent's optimizer has no single Adam state to "
                         "put it in")
    count = jnp.asarray(saved["count"], jnp.int32)
    mu, nu = _matching(path, f"{name}.mu", saved["mu"], params), _matching(path, f"{name}.nu", saved["nu"], params)

    def replace(s: Any) -> Any:
        if is_adam(s):
            return optax.ScaleByAdamState(count=count, mu=mu, nu=nu)
        if isinstance(s, optax.InjectStatefulHyperparamsState):
            return s._replace(count=count, inner_state=jax.tree.map(replace, s.inner_state, is_leaf=is_adam))
        return s

    is_node = lambda s: is_adam(s) or isinstance(s, optax.InjectStatefulHyperparamsState)  # noqa: E731
    return jax.tree.map(replace, opt_state, is_leaf=is_node)


def restore(ts: Any, modules: dict[str, Any], path: str) -> Any:
    """``ts`` (a :class:`ddpgx.TrainState`) with the skrl ``modules`` of :func:`read` in place.

    Needs ``policy``; every other module is optional, but a module the agent has no place for (a preprocessor it
    does not use, a name ddpgx does not know) is refused, as is a preprocessor the agent uses and the checkpoint
    lacks.

    Raises:
      ValueError: naming ``path`` and the module that does not fit.
    """
    unknown = sorted(set(modules) - set(_MODELS) - set(_OPTIMIZERS) - set(_SCALERS))
    if unknown:
        raise ValueError(f"{path!r}: skrl module {unknown[0]!r} has no counterpart in ddpgx.DDPG (it maps "
                         f"{sorted([*_MODELS, *_OPTIMIZERS, *_SCALERS])})")
    if "policy" not in modules:
        raise ValueError(f"{path!r} holds no 'policy' (it holds {sorted(modules)})")
    config = ts.spec.config
    for name, field, used in (("observation_preprocessor", "observation_stats", config.observation_preprocessor),
                              ("state_preprocessor", "state_stats", config.state_preprocessor)):
        if (name in modules) != bool(used):
            raise ValueError(f"{path!r}: {'holds' if name in modules else 'has no'} {name!r}, but this agent "
                             f"{'does not standardise' if name in modules else 'standardises'} its "
                             f"{'observations' if field == 'observation_stats' else 'states'} (set cfg.{name} "
                             "as the skrl agent had it)")
    fields = {field: _matching(path, name, modules[name], getattr(ts, field)) for name, field in _MODELS.items()
              if name in modules}
    for name, (field, params_field) in _OPTIMIZERS.items():
        if name in modules:
            fields[field] = _with_adam(path, name, getattr(ts, field), _adam_state(path, name, modules[name]),
                                       getattr(ts, params_field))
    for name, field in _SCALERS.items():
        if name in modules:
            saved, stats = modules[name], getattr(ts, field)
            missing = {"running_mean", "running_variance", "current_count"} - set(saved)
            if missing:
                raise ValueError(f"{path!r}: skrl's {name!r} lacks {sorted(missing)}")
            fields[field] = type(stats)(
                mean=_matching(path, f"{name}.running_mean", saved["running_mean"], stats.mean),
                var=_matching(path, f"{name}.running_variance", saved["running_variance"], stats.var),
                count=jnp.asarray(np.asarray(saved["current_count"]).reshape(()), stats.count.dtype))
    return ts.replace(**fields)
