"""ddpgx: Deep Deterministic Policy Gradient (Lillicrap et al. 2015) as pure, jitted JAX functions.

The functional core::

    train_state = ddpgx.init(key, ddpgx.DDPGConfig(...), observation_space, action_space)
    actions, train_state, info = ddpgx.act(train_state, observations, timestep=t, timesteps=T)
    train_state, metrics = ddpgx.update(train_state, batch)            # or update_from_replay(train_state, buffer)

with a device replay buffer in :mod:`ddpgx.replay`, exploration noise in :mod:`ddpgx.noise`, the running
standard scaler in :mod:`ddpgx.scaler` and default networks in :mod:`ddpgx.networks`. Whole training runs on
JAX-native (gymnax) environments compile to one program with :func:`ddpgx.make_train` (:mod:`ddpgx.jitted`).

skrl's agent interface over it: :class:`ddpgx.DDPG` with :class:`ddpgx.DDPG_CFG`, and the pieces a skrl script uses
in :mod:`ddpgx.models`, :mod:`ddpgx.memories`, :mod:`ddpgx.noises`, :mod:`ddpgx.preprocessors`,
:mod:`ddpgx.trainers` and :mod:`ddpgx.envs`; TensorBoard tracking in :mod:`ddpgx.tracking`, orbax checkpoints in
:mod:`ddpgx.checkpoints`.
"""

from ddpgx import jitted, losses, networks, noise, replay, scaler, spaces
from ddpgx.agent import DDPG
from ddpgx.config import DDPGConfig
from ddpgx.core import (
    AgentSpec,
    Hyperparams,
    TrainState,
    act,
    add_and_update,
    add_update_act,
    init,
    update,
    update_from_replay,
)
from ddpgx.ddpg_cfg import DDPG_CFG, ExperimentCfg
from ddpgx.jitted import JittedConfig, make_train, train_gymnax, with_hyperparams
from ddpgx.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx.types import Transition

__version__ = "0.1.0"


def load_policy(path: str):
    """The deterministic policy of a ``ddpgx train`` run (a run directory or one of its checkpoints) as a function
    from an observation (or a batch) to an action; see :func:`ddpgx.cli.policy.load_policy`."""
    from ddpgx.cli.policy import load_policy as _load_policy  # the application layer, imported on first use

    return _load_policy(path)


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
    "init",
    "jitted",
    "load_policy",
    "losses",
    "make_train",
    "networks",
    "noise",
    "replay",
    "scaler",
    "spaces",
    "train_gymnax",
    "update",
    "update_from_replay",
    "with_hyperparams",
]
