"""A trained policy as a plain function: ``ddpgx.load_policy(path)`` (observation -> action) for a ddpgx run.

:func:`load_policy` reads a run directory's ``run.json`` and only the policy's part of a checkpoint (its parameters
and the observation scaler's statistics; not the critic, the optimizers or the replay buffer), so it takes well
under a second for the default networks, against seconds for rebuilding the whole training agent. The result maps
one observation to one action, or a batch ``[n, ...]`` to ``[n, ...]`` actions, as NumPy arrays: the deterministic
policy, standardised as in training and clipped to the action bounds (no exploration noise).
"""

from __future__ import annotations

import functools
import json
import os
import re
from typing import Any

import numpy as np

__all__ = ["Policy", "find_policy_checkpoint", "load_policy", "read_run"]

RUN_FILE = "run.json"


def read_run(run_dir: str) -> dict[str, Any]:
    """The parsed ``run.json`` of a run directory (``{"config": ..., "versions": ..., ...}``); a run written before
    configurations were saved whole is converted. Raises ``ValueError`` if there is none."""
    path = os.path.join(run_dir, RUN_FILE)
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a ddpgx run directory (no {RUN_FILE})")
    with open(path) as file:
        data = json.load(file)
    if "config" not in data:  # the first format: RunSettings' fields, skrl's Pendulum settings throughout
        from ddpgx.cli import config as config_lib

        legacy = {"env.id": data.get("env_id", "Pendulum-v1"), "run.timesteps": data.get("timesteps", 15_000),
                  "env.num_envs": data.get("num_envs", 1), "run.seed": data.get("seed", 0),
                  "memory.memory_size": data.get("memory_size", 15_000),
                  "cfg.experiment.write_interval": data.get("write_interval", "auto"),
                  "cfg.experiment.checkpoint_interval": data.get("checkpoint_interval", "auto"),
                  "evaluation.episodes": data.get("eval_episodes", 10), "run.preset": "none"}
        data = {"config": config_lib.resolve(legacy).to_dict(), "preset": "none", "versions": {}}
    return data


_AGENT = re.compile(r"^agent_(\d+)(\.pt)?$")


def agent_checkpoints(checkpoints_dir: str) -> list[tuple[int, str]]:
    """``(timestep, path)`` of the ``agent_<timestep>`` checkpoints (orbax directories or ``.pt`` files), newest
    first, whatever their state."""
    if not os.path.isdir(checkpoints_dir):
        return []
    found = [(int(m.group(1)), os.path.join(checkpoints_dir, name)) for name in os.listdir(checkpoints_dir)
             if (m := _AGENT.match(name))]
    return sorted(found, reverse=True)


def find_policy_checkpoint(path: str) -> tuple[str, str]:
    """``(run directory, checkpoint)`` for a run directory (its newest complete checkpoint) or any checkpoint of a
    run (``best_agent`` included)."""
    path = os.path.abspath(str(path).rstrip("/"))
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        backend = read_run(path)["config"]["run"]["backend"]
        for _, candidate in agent_checkpoints(os.path.join(path, "checkpoints")):
            if complete(candidate, backend):
                return path, candidate
        raise ValueError(f"the run {path!r} has no complete checkpoint in {os.path.join(path, 'checkpoints')}")
    run_dir = os.path.dirname(os.path.dirname(path))  # <run>/checkpoints/<checkpoint>
    if os.path.exists(path) and os.path.isfile(os.path.join(run_dir, RUN_FILE)):
        return run_dir, path
    raise ValueError(f"{path!r} is neither a ddpgx run directory (with {RUN_FILE}) nor a checkpoint inside one")


def complete(checkpoint: str, backend: str) -> bool:
    """Whether ``checkpoint`` is whole: a verified orbax checkpoint, or a sealed ``.pt`` file
    (:func:`ddpgx_torch.checkpoints.verify`)."""
    if backend == "torch":
        from ddpgx_torch import checkpoints as torch_checkpoints

        try:
            torch_checkpoints.verify(checkpoint)
        except ValueError:
            return False
        return True
    from ddpgx import checkpoints

    try:
        checkpoints.verify(checkpoint)
    except ValueError:
        return False
    return True


class Policy:
    """A deterministic policy: ``policy(observation) -> action``; a batch ``[n, ...]`` gives ``[n, ...]``.

    Attributes:
      env_id: the environment it was trained on.
      observation_space, action_space: its gymnasium spaces.
      checkpoint: the checkpoint it was read from, in the run directory ``run_dir``.
      env_kwargs: the keyword arguments its environment was made with.
    """

    def __init__(self, batch_fn: Any, observation_space: Any, action_space: Any, env_id: str, checkpoint: str,
                 run_dir: str = "", env_kwargs: dict | None = None):
        self._batch_fn = batch_fn
        self.observation_space, self.action_space = observation_space, action_space
        self.env_id, self.checkpoint, self.run_dir = env_id, checkpoint, run_dir
        self.env_kwargs = dict(env_kwargs or {})

    def __call__(self, observations: Any) -> np.ndarray:
        single = _is_single(self.observation_space, observations)
        if single:
            observations = _add_batch(observations)
        actions = np.asarray(self._batch_fn(observations), np.float32)
        return actions[0] if single else actions

    def __repr__(self) -> str:
        return f"Policy(env_id={self.env_id!r}, checkpoint={self.checkpoint!r})"


def _is_single(space: Any, observations: Any) -> bool:
    import gymnasium

    if isinstance(space, gymnasium.spaces.Dict):
        key = next(iter(space.spaces))
        return _is_single(space.spaces[key], observations[key])
    return np.ndim(observations) == len(space.shape)


def _add_batch(observations: Any) -> Any:
    if isinstance(observations, dict):
        return {k: _add_batch(v) for k, v in observations.items()}
    return np.asarray(observations)[None]


def env_spaces(env_id: str, kwargs: dict) -> tuple[Any, Any]:
    """The observation and action spaces of ``env_id`` (the environment is made and closed at once)."""
    from ddpgx.cli.envs import make_single

    env = make_single(env_id, kwargs)
    try:
        return env.observation_space, env.action_space
    finally:
        env.close()


def jax_policy_fn(module: Any, params: Any, stats: Any, observation_space: Any, action_space: Any,
                  standardize: bool, epsilon: float, clip: float) -> Any:
    """A jitted ``observations [n, ...] -> actions [n, *action_shape]`` of a flax policy with fixed parameters."""
    from ddpgx.core import spaces

    layout = spaces.input_layout(observation_space)
    low = tuple(np.asarray(action_space.low, np.float32).reshape(-1).tolist())
    high = tuple(np.asarray(action_space.high, np.float32).reshape(-1).tolist())
    batch_fn = _compiled_policy(module, layout, low, high, tuple(action_space.shape), standardize, epsilon, clip)
    return lambda observations: np.asarray(batch_fn(params, stats, observations))


@functools.lru_cache(maxsize=16)
def _compiled_policy(module: Any, layout: Any, low: tuple, high: tuple, shape: tuple, standardize: bool,
                     epsilon: float, clip: float) -> Any:
    """One jitted function per network and space (cached, so loading another checkpoint of the same run, or the
    same networks, compiles nothing new)."""
    import jax
    import jax.numpy as jnp

    from ddpgx.core import scaler, spaces

    lo, hi = np.asarray(low, np.float32).reshape(shape), np.asarray(high, np.float32).reshape(shape)

    @jax.jit
    def batch_fn(params, stats, observations):
        x = spaces.flatten(layout, observations, "observations")
        if standardize:
            x = scaler.standardize(stats, x, epsilon, clip)
        actions = module.apply(params, x).reshape((x.shape[0],) + shape)
        return jnp.clip(actions, lo, hi)

    return batch_fn


def load_policy(path: str) -> Policy:
    """The deterministic policy saved in a ddpgx run directory (its newest complete checkpoint) or in one of its
    checkpoints (``best_agent`` included), as a function from an observation (or a batch) to an action.

    Example::

        policy = ddpgx.load_policy("runs/mine")
        action = policy(observation)          # one observation -> one action, as NumPy arrays

    Raises:
      ValueError: ``path`` is not a run directory or a checkpoint of one, or the checkpoint does not match it.
    """
    run_dir, checkpoint = find_policy_checkpoint(path)
    config = read_run(run_dir)["config"]
    env_id = config["env"]["id"].removeprefix("gymnax:")
    observation_space, action_space = env_spaces(env_id, config["env"]["kwargs"])
    cfg = config["cfg"]
    standardize = cfg["observation_preprocessor"] is not None
    kwargs = cfg["observation_preprocessor_kwargs"]
    epsilon, clip = float(kwargs.get("epsilon", 1e-8)), float(kwargs.get("clip_threshold", 5.0))
    hidden = tuple(config["networks"]["policy_hidden_sizes"])
    if config["run"]["backend"] == "torch":
        batch_fn = _torch_policy(checkpoint, observation_space, action_space, hidden, standardize, epsilon, clip)
    else:
        batch_fn = _jax_policy(checkpoint, observation_space, action_space, hidden, standardize, epsilon, clip)
    return Policy(batch_fn, observation_space, action_space, config["env"]["id"], checkpoint, run_dir,
                  config["env"]["kwargs"])


def _jax_policy(checkpoint, observation_space, action_space, hidden, standardize, epsilon, clip):
    import jax
    import jax.numpy as jnp

    from ddpgx import checkpoints
    from ddpgx.core import networks, scaler, spaces

    layout = spaces.input_layout(observation_space)
    module = networks.DeterministicPolicy(tuple(np.asarray(action_space.low, float).reshape(-1).tolist()),
                                          tuple(np.asarray(action_space.high, float).reshape(-1).tolist()),
                                          tuple(action_space.shape), hidden)
    abstract = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, layout.size), jnp.float32))
    stats = scaler.init(layout.size)
    saved = _read_partial(checkpoints, checkpoint, {"train_state": {"policy_params": abstract,
                                                                    "observation_stats": stats}})["train_state"]
    stats = scaler.ScalerState(*(jnp.asarray(x) for x in saved["observation_stats"]))
    params = jax.tree.map(jnp.asarray, saved["policy_params"])
    return jax_policy_fn(module, params, stats, observation_space, action_space, standardize, epsilon, clip)


def _read_partial(checkpoints: Any, checkpoint: str, target: dict) -> dict:
    """Only the arrays of ``target`` (a sub-tree of what was saved) from a verified ddpgx checkpoint."""
    import jax
    import orbax.checkpoint as ocp

    directory = checkpoints.resolve(checkpoint)
    checkpoints.verify(directory)
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype)
                            if not hasattr(x, "dtype") else jax.ShapeDtypeStruct(x.shape, x.dtype), target)
    try:
        with ocp.PyTreeCheckpointer() as reader:
            items = reader.restore(directory, args=ocp.args.PyTreeRestore(
                item=abstract, restore_args=jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), abstract),
                partial_restore=True))
    except (ValueError, KeyError, TypeError, FileNotFoundError) as error:
        raise ValueError(f"checkpoint {directory!r} does not hold this run's policy: {error}") from error
    for (path, got), (_, want) in zip(jax.tree_util.tree_flatten_with_path(items)[0],
                                      jax.tree_util.tree_flatten_with_path(abstract)[0], strict=True):
        if np.shape(got) != tuple(want.shape):
            raise ValueError(f"checkpoint {directory!r} does not match this run's policy: {jax.tree_util.keystr(path)} "
                             f"has shape {np.shape(got)}, expected {tuple(want.shape)}")
    return items


def _torch_policy(checkpoint, observation_space, action_space, hidden, standardize, epsilon, clip):
    import torch

    from ddpgx_torch.core import networks, scaler, spaces
    from ddpgx_torch.core.spaces import input_layout

    layout = input_layout(observation_space)
    from ddpgx_torch import checkpoints as torch_checkpoints

    modules = torch_checkpoints.load(checkpoint, map_location="cpu")  # verified, read as data only
    if not isinstance(modules, dict) or "policy" not in modules:
        raise ValueError(f"{checkpoint!r} is not a ddpgx_torch agent checkpoint (no 'policy')")
    policy = networks.DeterministicPolicy(layout.size, np.asarray(action_space.low).reshape(-1),
                                          np.asarray(action_space.high).reshape(-1), action_space.shape, hidden)
    policy.load_state_dict(modules["policy"])
    policy.eval()
    stats = None
    if standardize:
        saved = modules["observation_preprocessor"]
        stats = scaler.ScalerState(saved["running_mean"], saved["running_variance"], saved["current_count"])
    low = torch.as_tensor(np.asarray(action_space.low, np.float32))
    high = torch.as_tensor(np.asarray(action_space.high, np.float32))

    def batch_fn(observations):
        with torch.no_grad():
            x = spaces.flatten(layout, observations, "observations", "cpu")
            if stats is not None:
                x = scaler.standardize(stats, x, epsilon, clip)
            return torch.clamp(policy(x), low, high).numpy()

    return batch_fn
