"""Optional skrl reference for the ddpgx throughput benchmarks.

This module times skrl 2.x's own DDPG ``update()`` (``skrl.agents.jax.ddpg.DDPG``
and ``skrl.agents.torch.ddpg.DDPG``) on a fixed Pendulum-sized configuration, so
that ddpgx's update throughput can be compared against an established
implementation. It is used by the benchmarks only: skrl is **never** a runtime
dependency of ddpgx, it is imported lazily here, and every benchmark must keep
working when it is not installed (check :func:`skrl_available` first).

Configuration (both backends, CPU only):

* spaces: ``Box(-inf, inf, (obs_dim,))`` observations, ``Box(-2, 2, (act_dim,))``
  actions, no state space;
* policy: ``obs -> hidden[0] relu -> hidden[1] relu -> act_dim -> tanh * 2``;
* critic: ``concat(obs, action) -> hidden[0] relu -> hidden[1] relu -> 1``;
* target copies of both (hard-copied by skrl at construction);
* ``RandomMemory(memory_size, num_envs=1)`` holding ``fill`` random transitions;
* ``DDPG_CFG`` defaults (lr 1e-3, discount 0.99, polyak 0.005, no gradient
  clipping, no preprocessors, no exploration noise) with ``batch_size``,
  ``gradient_steps``, ``learning_starts=0`` and TensorBoard writing /
  checkpointing disabled.

One call of the callable returned by :func:`make_skrl_update` is exactly one
``agent.update(...)`` -- ``gradient_steps`` iterations of skrl's sample-from-memory,
critic step, policy step and polyak target update -- followed by a wait for the
result (JAX dispatch is asynchronous).

Run ``python benchmarks/skrl_reference.py`` for a stand-alone measurement.
"""

from __future__ import annotations

import functools
import importlib
import logging
import os
import tempfile
from contextlib import contextmanager
from typing import Any, Callable, Iterator

import numpy as np

__all__ = ["BACKENDS", "available_backends", "make_skrl_update", "quiet_skrl", "skrl_available", "skrl_models"]

BACKENDS: tuple[str, ...] = ("jax", "torch")

#: Pendulum's action bound: actions live in [-ACTION_BOUND, ACTION_BOUND].
ACTION_BOUND = 2.0

# Data-tensor names skrl's DDPG creates in its memory (``states`` is skipped
# because there is no state space).
_MEMORY_TENSORS = ("observations", "next_observations", "actions", "rewards", "terminated")


# --------------------------------------------------------------------------- #
# availability
# --------------------------------------------------------------------------- #
@functools.lru_cache(maxsize=None)
def _backend_importable(backend: str) -> bool:
    try:
        importlib.import_module(f"skrl.agents.{backend}.ddpg")
        importlib.import_module(f"skrl.memories.{backend}")
        importlib.import_module(f"skrl.models.{backend}")
        importlib.import_module("gymnasium")
    except Exception:  # ImportError, or a broken optional dependency of skrl
        return False
    return True


def skrl_available(backend: str | None = None) -> bool:
    """Whether skrl (and the given backend of it) can be imported.

    :param backend: ``"jax"``, ``"torch"`` or ``None`` (any backend).
    """
    if backend is None:
        return bool(available_backends())
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return _backend_importable(backend)


def available_backends() -> tuple[str, ...]:
    """The skrl backends (subset of :data:`BACKENDS`) importable here."""
    return tuple(b for b in BACKENDS if _backend_importable(b))


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #
@contextmanager
def quiet_skrl() -> Iterator[None]:
    """Silence skrl's logger (e.g. the 'no exploration noise' warning)."""
    from skrl import logger

    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _spaces(obs_dim: int, act_dim: int):
    import gymnasium

    observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(obs_dim,), dtype=np.float32)
    action_space = gymnasium.spaces.Box(-ACTION_BOUND, ACTION_BOUND, shape=(act_dim,), dtype=np.float32)
    return observation_space, action_space


def _ddpg_cfg(backend: str, *, batch_size: int, gradient_steps: int, mixed_precision: bool = False):
    ddpg = importlib.import_module(f"skrl.agents.{backend}.ddpg")
    extra = {"mixed_precision": True} if mixed_precision else {}  # skrl torch's option (autocast + GradScaler)
    return ddpg.DDPG_CFG(
        **extra,
        batch_size=batch_size,
        gradient_steps=gradient_steps,
        learning_starts=0,
        random_timesteps=0,
        exploration_noise=None,
        experiment={
            # <= 0 disables TensorBoard writing and checkpointing. Agent.__init__
            # still derives an experiment path from ``directory`` (never created
            # with both intervals disabled); point it at /tmp, not the CWD.
            "directory": os.path.join(tempfile.gettempdir(), "ddpgx-skrl-reference"),
            "experiment_name": f"{backend}-ddpg",
            "write_interval": 0,
            "checkpoint_interval": 0,
            "wandb": False,
        },
    )


def _random_transitions(n: int, obs_dim: int, act_dim: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` random Pendulum-like transitions, as ``(n, size)`` arrays."""
    rng = np.random.default_rng(seed)
    return {
        "observations": rng.uniform(-1.0, 1.0, (n, obs_dim)).astype(np.float32),
        "next_observations": rng.uniform(-1.0, 1.0, (n, obs_dim)).astype(np.float32),
        "actions": rng.uniform(-ACTION_BOUND, ACTION_BOUND, (n, act_dim)).astype(np.float32),
        "rewards": rng.uniform(-16.3, 0.0, (n, 1)).astype(np.float32),
        # Pendulum never terminates (it only truncates)
        "terminated": np.zeros((n, 1), dtype=bool),
    }


def _fill_memory(
    memory: Any,
    transitions: dict[str, np.ndarray],
    to_host: Callable[[Any], np.ndarray],
    to_backend: Callable[[np.ndarray], Any],
) -> None:
    """Store ``transitions`` in rows ``[0, n)`` of a ``num_envs=1`` skrl memory.

    skrl's memory tensors are ``(memory_size, num_envs, size)``. Its batched
    ``add_samples`` path cannot be used for ``num_envs=1``: the JAX memory raises
    ``NotImplementedError``, and the torch one advances ``memory_index`` once per
    *tensor* (misaligning the fields). So the whole buffers are written through
    the public ``get_tensor_by_name`` / ``set_tensor_by_name`` and the write
    index is advanced as ``add_samples`` would have done.
    """
    n = len(next(iter(transitions.values())))
    for name in _MEMORY_TENSORS:
        current = memory.get_tensor_by_name(name)
        buffer = np.array(to_host(current), copy=True)  # writable host copy, same dtype
        buffer[:n, 0] = transitions[name].astype(buffer.dtype)
        memory.set_tensor_by_name(name, to_backend(buffer))
    memory.env_index = 0
    memory.memory_index = n % memory.memory_size
    memory.filled = n >= memory.memory_size
    assert len(memory) == n


# --------------------------------------------------------------------------- #
# JAX backend
# --------------------------------------------------------------------------- #
def _jax_models(observation_space, action_space, hidden, seed):
    """skrl's example policy and critic (and their targets) as skrl JAX models, initialised on the CPU."""
    import flax.linen as nn
    import jax
    import jax.numpy as jnp
    from skrl import config
    from skrl.models.jax import DeterministicMixin, Model

    cpu = jax.devices("cpu")[0]
    config.jax.device = cpu  # skrl's default device would otherwise be "cuda:0"
    h1, h2 = hidden

    # Policy and Critic repeat their constructor on purpose: a shared base class with this __init__ breaks flax's
    # re-instantiation from dataclass fields (the fields then arrive positionally in the wrong order).
    class Policy(DeterministicMixin, Model):
        # flax re-instantiates (clones) modules from their dataclass fields
        # (state_space, parent, name, ...): they must be accepted and passed on
        def __init__(self, observation_space=None, action_space=None, device=None, **kwargs):
            Model.__init__(
                self, observation_space=observation_space, action_space=action_space, device=device, **kwargs
            )
            DeterministicMixin.__init__(self, clip_actions=False)

        @nn.compact
        def __call__(self, inputs, role):
            x = nn.relu(nn.Dense(h1)(inputs["observations"]))
            x = nn.relu(nn.Dense(h2)(x))
            return ACTION_BOUND * jnp.tanh(nn.Dense(self.num_actions)(x)), {}

    class Critic(DeterministicMixin, Model):
        # flax re-instantiates (clones) modules from their dataclass fields
        # (state_space, parent, name, ...): they must be accepted and passed on
        def __init__(self, observation_space=None, action_space=None, device=None, **kwargs):
            Model.__init__(
                self, observation_space=observation_space, action_space=action_space, device=device, **kwargs
            )
            DeterministicMixin.__init__(self, clip_actions=False)

        @nn.compact
        def __call__(self, inputs, role):
            x = jnp.concatenate([inputs["observations"], inputs["taken_actions"]], axis=-1)
            x = nn.relu(nn.Dense(h1)(x))
            x = nn.relu(nn.Dense(h2)(x))
            return nn.Dense(1)(x), {}

    with jax.default_device(cpu):
        keys = jax.random.split(jax.random.PRNGKey(seed), 4)
        models = {}
        for key, (role, cls) in zip(
            keys,
            [("policy", Policy), ("target_policy", Policy), ("critic", Critic), ("target_critic", Critic)],
            strict=True,
        ):
            model = cls(observation_space, action_space, cpu)
            model.init_state_dict(role=role, key=key)
            models[role] = model
    return models, cpu


def _build_jax_agent(*, batch_size, obs_dim, act_dim, hidden, gradient_steps, memory_size, fill, seed):
    import jax
    import jax.numpy as jnp
    from skrl.agents.jax.ddpg import DDPG
    from skrl.memories.jax import RandomMemory

    observation_space, action_space = _spaces(obs_dim, act_dim)
    np.random.seed(seed)  # RandomMemory.sample draws indexes from NumPy's global RNG
    models, cpu = _jax_models(observation_space, action_space, hidden, seed)
    with jax.default_device(cpu):
        memory = RandomMemory(memory_size=memory_size, num_envs=1, device=cpu)
        with quiet_skrl():
            agent = DDPG(
                models=models,
                memory=memory,
                observation_space=observation_space,
                action_space=action_space,
                device=cpu,
                cfg=_ddpg_cfg("jax", batch_size=batch_size, gradient_steps=gradient_steps),
            )
            agent.init()  # creates the memory tensors and jit-wraps the models
        _fill_memory(
            memory,
            _random_transitions(fill, obs_dim, act_dim, seed),
            to_host=np.asarray,
            to_backend=lambda a: jnp.asarray(a, device=cpu),
        )
    return agent, cpu


# --------------------------------------------------------------------------- #
# torch backend
# --------------------------------------------------------------------------- #
def _torch_models(observation_space, action_space, hidden, seed, device="cpu"):
    """skrl's example policy and critic (and their targets) as skrl torch models, on ``device``."""
    import torch
    import torch.nn as nn
    from skrl.models.torch import DeterministicMixin, Model

    cpu = torch.device(device)
    h1, h2 = hidden

    def mlp(n_in: int, n_out: int) -> nn.Sequential:
        return nn.Sequential(nn.Linear(n_in, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, n_out))

    class Policy(DeterministicMixin, Model):
        def __init__(self, observation_space, action_space, device):
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            DeterministicMixin.__init__(self, clip_actions=False)
            self.net = mlp(self.num_observations, self.num_actions)

        # DeterministicMixin.act calls ``self.compute(inputs, role)`` positionally
        def compute(self, inputs, role=""):
            return ACTION_BOUND * torch.tanh(self.net(inputs["observations"])), {}

    class Critic(DeterministicMixin, Model):
        def __init__(self, observation_space, action_space, device):
            Model.__init__(self, observation_space=observation_space, action_space=action_space, device=device)
            DeterministicMixin.__init__(self, clip_actions=False)
            self.net = mlp(self.num_observations + self.num_actions, 1)

        def compute(self, inputs, role=""):
            return self.net(torch.cat([inputs["observations"], inputs["taken_actions"]], dim=-1)), {}

    torch.manual_seed(seed)
    models = {
        "policy": Policy(observation_space, action_space, cpu),
        "target_policy": Policy(observation_space, action_space, cpu),
        "critic": Critic(observation_space, action_space, cpu),
        "target_critic": Critic(observation_space, action_space, cpu),
    }
    for model in models.values():
        model.to(cpu)
    return models, cpu


def skrl_models(backend: str, observation_space: Any, action_space: Any, *, hidden=(400, 300), seed: int = 0):
    """skrl's DDPG example networks for ``backend`` (``"jax"`` or ``"torch"``): ``(models dict, device)``."""
    build = _jax_models if backend == "jax" else _torch_models
    return build(observation_space, action_space, tuple(hidden), seed)


def _build_torch_agent(*, batch_size, obs_dim, act_dim, hidden, gradient_steps, memory_size, fill, seed,
                       mixed_precision=False, models=None, device="cpu"):
    import torch
    from skrl.agents.torch.ddpg import DDPG, DDPG_RNN
    from skrl.memories.torch import RandomMemory

    observation_space, action_space = _spaces(obs_dim, act_dim)
    np.random.seed(seed)  # RandomMemory.sample draws indexes from NumPy's global RNG
    cpu = torch.device(device)  # (named for the usual case)
    if models is None:
        models, cpu = _torch_models(observation_space, action_space, hidden, seed, device)
    spec = getattr(models["policy"], "get_specification", dict)()
    agent_class = DDPG_RNN if spec.get("rnn") else DDPG
    memory = RandomMemory(memory_size=memory_size, num_envs=1, device=cpu)
    with quiet_skrl():
        agent = agent_class(
            models=models,
            memory=memory,
            observation_space=observation_space,
            action_space=action_space,
            device=cpu,
            cfg=_ddpg_cfg("torch", batch_size=batch_size, gradient_steps=gradient_steps,
                          mixed_precision=mixed_precision),
        )
        agent.init()  # creates the memory tensors
    _fill_memory(
        memory,
        _random_transitions(fill, obs_dim, act_dim, seed),
        to_host=lambda t: t.detach().cpu().numpy(),
        to_backend=lambda a: torch.from_numpy(a).to(cpu),
    )
    for name, tensor in memory.tensors.items():  # DDPG_RNN's stored hidden states: zero, as after episode starts
        if name.startswith("rnn_"):
            tensor.zero_()
    return agent, cpu


# --------------------------------------------------------------------------- #
# public entry point
# --------------------------------------------------------------------------- #
def make_skrl_update(
    backend: str,
    *,
    batch_size: int,
    obs_dim: int = 3,
    act_dim: int = 1,
    hidden: tuple[int, int] = (400, 300),
    gradient_steps: int = 1,
    memory_size: int = 100_000,
    seed: int = 0,
    fill: int = 10_000,
    mixed_precision: bool = False,
    models: dict | None = None,
    device: str = "cpu",
) -> Callable[[], None]:
    """Build a skrl DDPG agent on CPU and return a zero-argument update callable.

    Each call runs exactly one ``agent.update(timestep=t, timesteps=...)`` (that is,
    ``gradient_steps`` gradient steps, each sampling ``batch_size`` transitions
    from the replay memory as skrl does) and returns once the new parameters are
    computed. The agent is attached to the callable as ``.agent`` for inspection.

    :param backend: ``"jax"`` (``skrl.agents.jax.ddpg.DDPG``) or ``"torch"``
        (``skrl.agents.torch.ddpg.DDPG``).
    :param batch_size: ``DDPG_CFG.batch_size``.
    :param obs_dim: Observation size (Pendulum: 3).
    :param act_dim: Action size (Pendulum: 1); actions are bounded to [-2, 2].
    :param hidden: The two hidden-layer widths of both the policy and the critic.
    :param gradient_steps: ``DDPG_CFG.gradient_steps`` (gradient steps per update).
    :param memory_size: Capacity of the skrl ``RandomMemory``.
    :param seed: Seed for parameter init, the random transitions, and NumPy's
        global RNG (which skrl's ``RandomMemory`` samples indexes from).
    :param fill: Number of random transitions stored in the memory before timing.
    :param mixed_precision: skrl torch's ``DDPG_CFG.mixed_precision`` (autocast, bf16 on the CPU); torch only.
    :param models: torch only: skrl-style ``policy``/``target_policy``/``critic``/``target_critic`` models to use
        instead of skrl's example MLPs. A policy whose ``get_specification()`` declares RNN sizes gets skrl's
        ``DDPG_RNN`` (``batch_size`` sequences of the declared length per gradient step).
    :param device: torch only: the agent's device (``"cuda"``: each call waits for the GPU before returning).

    :raises ImportError: skrl (or the backend's framework) is not installed.
    :raises ValueError: Invalid backend or sizes.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not skrl_available(backend):
        raise ImportError(f"skrl with the {backend!r} backend is not importable")
    hidden = tuple(int(h) for h in hidden)
    if len(hidden) != 2:
        raise ValueError(f"hidden must have exactly two widths, got {hidden}")
    if not 0 < batch_size <= fill <= memory_size:
        # RandomMemory samples without replacement: a batch never exceeds len(memory)
        raise ValueError(f"need 0 < batch_size ({batch_size}) <= fill ({fill}) <= memory_size ({memory_size})")

    if (mixed_precision or models is not None or device != "cpu") and backend != "torch":
        raise ValueError("mixed_precision, models and device are skrl torch options")
    build = _build_jax_agent if backend == "jax" else functools.partial(_build_torch_agent,
                                                                          mixed_precision=mixed_precision,
                                                                          models=models, device=device)
    agent, device = build(
        batch_size=batch_size,
        obs_dim=obs_dim,
        act_dim=act_dim,
        hidden=hidden,
        gradient_steps=gradient_steps,
        memory_size=memory_size,
        fill=fill,
        seed=seed,
    )
    # the trainer switches the models to training mode around every update
    agent.enable_models_training_mode(True)
    timesteps = 1 << 30  # only read by schedulers, none configured
    step = iter(range(timesteps))

    if backend == "jax":
        import jax

        models = [agent.policy, agent.critic, agent.target_policy, agent.target_critic]

        def update() -> None:
            with jax.default_device(device):
                agent.update(timestep=next(step), timesteps=timesteps)
            # skrl appends losses/Q stats every step and only clears them when writing
            agent.tracking_data.clear()
            jax.block_until_ready([m.state_dict.params for m in models])

    else:

        import torch

        synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)

        def update() -> None:
            agent.update(timestep=next(step), timesteps=timesteps)
            agent.tracking_data.clear()
            synchronize()  # CPU torch is synchronous; on a GPU wait for the update's kernels

    update.agent = agent  # type: ignore[attr-defined]
    update.backend = backend  # type: ignore[attr-defined]
    return update


# --------------------------------------------------------------------------- #
# stand-alone measurement
# --------------------------------------------------------------------------- #
def _param_vectors(agent: Any, backend: str) -> dict[str, np.ndarray]:
    """Host copies of the (flattened) policy and critic parameters."""
    if backend == "jax":
        import jax

        def flat(model: Any) -> np.ndarray:
            return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree_util.tree_leaves(model.state_dict.params)])

    else:

        def flat(model: Any) -> np.ndarray:
            return np.concatenate([p.detach().cpu().numpy().ravel() for p in model.parameters()])

    return {name: flat(getattr(agent, name)) for name in ("policy", "critic", "target_policy", "target_critic")}


def _main(argv: list[str] | None = None) -> None:
    import argparse
    import time

    parser = argparse.ArgumentParser(
        description="Time skrl 2.x's own DDPG update() (JAX and torch, whichever is installed) on the Pendulum-sized "
                    "configuration of this module's docstring; prints a median time per update and whether the first "
                    "update changed every network.")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256], help="batch sizes (default 64 256)")
    parser.add_argument("--calls", type=int, default=50, help="timed updates per batch size (default 50)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed updates first (default 5)")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.warmup < 1:
        parser.error("--calls and --warmup must be >= 1")

    backends = available_backends()
    if not backends:
        print("skrl is not installed: nothing to measure")
        return
    if "torch" in backends:
        import torch

        print(f"torch {torch.__version__}, {torch.get_num_threads()} intra-op threads")
    if "jax" in backends:
        import jax

        print(f"jax {jax.__version__}, devices {jax.devices('cpu')}")
    import skrl

    print(f"skrl {skrl.__version__}")

    warmup, calls = args.warmup, args.calls
    for batch_size in args.batch_sizes:
        for backend in backends:
            update = make_skrl_update(backend, batch_size=batch_size)
            before = _param_vectors(update.agent, backend)
            update()  # first call also compiles (JAX)
            after = _param_vectors(update.agent, backend)
            changed = {k: float(np.max(np.abs(after[k] - before[k]))) for k in before}
            ok = all(v > 0 for v in changed.values()) and all(np.isfinite(a).all() for a in after.values())
            for _ in range(warmup - 1):
                update()
            times = []
            for _ in range(calls):
                t0 = time.perf_counter()
                update()
                times.append(time.perf_counter() - t0)
            ms = 1e3 * np.asarray(times)
            print(
                f"skrl {backend:5s} batch {batch_size:3d}: median {np.median(ms):6.2f} ms/update "
                f"(min {ms.min():.2f}, max {ms.max():.2f}; {calls} calls after {warmup} warm-up)"
            )
            print(
                "    params changed by first update: "
                + ", ".join(f"{k} {v:.2e}" for k, v in changed.items())
                + f" -> {'OK' if ok else 'FAILED'}"
            )


if __name__ == "__main__":
    _main()
