"""ddpgx: Deep Deterministic Policy Gradient (Lillicrap et al. 2015) as pure, jitted JAX functions.

The functional core::

    train_state = ddpgx.init(key, ddpgx.DDPGConfig(...), observation_space, action_space)
    actions, train_state, info = ddpgx.act(train_state, observations, timestep=t, timesteps=T)
    train_state, metrics = ddpgx.update(train_state, batch)            # or update_from_replay(train_state, buffer)

with a device replay buffer in :mod:`ddpgx.replay`, exploration noise in :mod:`ddpgx.noise`, the running
standard scaler in :mod:`ddpgx.scaler` and default networks in :mod:`ddpgx.networks`. Whole training runs on
JAX-native (gymnax) environments compile to one program with :func:`ddpgx.make_train` (:mod:`ddpgx.jitted`).
These pure functions live in :mod:`ddpgx.core` (re-exported here); the command line's jobs in :mod:`ddpgx.cli`.

skrl's agent interface over it: :class:`ddpgx.DDPG` with :class:`ddpgx.DDPG_CFG`, and the pieces a skrl script uses
in :mod:`ddpgx.models`, :mod:`ddpgx.memories`, :mod:`ddpgx.noises`, :mod:`ddpgx.preprocessors`,
:mod:`ddpgx.trainers` and :mod:`ddpgx.envs`; TensorBoard tracking in :mod:`ddpgx.tracking`, orbax checkpoints in
:mod:`ddpgx.checkpoints`; skrl's ``config`` (default device and PRNG key) and ``logger`` in :mod:`ddpgx.settings`.
"""

from ddpgx.core import jitted, losses, networks, noise, replay, scaler, sharding, spaces
from ddpgx.agent import DDPG
from ddpgx.core import (
    AgentSpec,
    DDPGConfig,
    Hyperparams,
    TrainState,
    Transition,
    act,
    add_and_update,
    add_update_act,
    init,
    update,
    update_from_replay,
)
from ddpgx.core.jitted import JittedConfig, make_train, with_hyperparams
from ddpgx.core.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx.ddpg_cfg import DDPG_CFG, ExperimentCfg
from ddpgx.settings import config, logger

__version__ = "0.1.0"

__all__ = [
    "DDPG",
    "DDPG_CFG",
    "AgentSpec",
    "DDPGConfig",
    "ExperimentCfg",
    "GaussianNoise",
    "Hyperparams",
    "JittedConfig",
    "OrnsteinUhlenbeckNoise",
    "TrainState",
    "Transition",
    "act",
    "add_and_update",
    "add_update_act",
    "config",
    "init",
    "jitted",
    "logger",
    "losses",
    "make_train",
    "networks",
    "noise",
    "replay",
    "scaler",
    "sharding",
    "spaces",
    "update",
    "update_from_replay",
    "with_hyperparams",
]
