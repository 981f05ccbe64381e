"""ddpgx_torch: the PyTorch backend of ddpgx, DDPG (Lillicrap et al. 2015) with the same names and numbers.

The functional core mirrors ``ddpgx`` one to one::

    train_state = ddpgx_torch.init(seed, ddpgx_torch.DDPGConfig(...), observation_space, action_space)
    actions, train_state, info = ddpgx_torch.act(train_state, observations, timestep=t, timesteps=T)
    train_state, metrics = ddpgx_torch.update(train_state, batch)     # or update_from_replay(train_state, buffer)

with a preallocated replay memory (and sequence sampling for recurrent policies) in :mod:`ddpgx_torch.replay`,
exploration noise in :mod:`ddpgx_torch.noise`, the running standard scaler in :mod:`ddpgx_torch.scaler`, default
networks in :mod:`ddpgx_torch.core.networks`, JAX <-> torch weight conversion in :mod:`ddpgx_torch.core.convert`, and
``torchrun`` support in :mod:`ddpgx_torch.distributed` (all in :mod:`ddpgx_torch.core`, re-exported here).
skrl's agent interface over it: :class:`ddpgx_torch.DDPG`, :class:`ddpgx_torch.DDPG_RNN`, and the pieces a skrl
script uses in :mod:`ddpgx_torch.models` (with ready-made recurrent models), :mod:`ddpgx_torch.memories`,
:mod:`ddpgx_torch.noises`, :mod:`ddpgx_torch.preprocessors`, :mod:`ddpgx_torch.trainers` and
:mod:`ddpgx_torch.envs`; skrl's ``config`` (default device, seed, ``torchrun`` ranks) and ``logger`` in
:mod:`ddpgx_torch.settings`.
"""

from ddpgx_torch.core import (
    convert,
    distributed,
    linear,
    losses,
    networks,
    noise,
    replay,
    scaler,
    spaces,
)
from ddpgx_torch import envs, memories, models, noises, preprocessors, trainers
from ddpgx_torch.agent import DDPG, DDPG_CFG, DDPG_RNN, ExperimentCfg
from ddpgx_torch.core import (
    AgentSpec,
    DDPGConfig,
    Hyperparams,
    RNNSpec,
    TrainState,
    Transition,
    act,
    init,
    update,
    update_from_replay,
)
from ddpgx_torch.core.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx_torch.settings import config, logger

__all__ = [
    "DDPG",
    "DDPG_CFG",
    "DDPG_RNN",
    "ExperimentCfg",
    "envs",
    "memories",
    "models",
    "noises",
    "preprocessors",
    "AgentSpec",
    "DDPGConfig",
    "GaussianNoise",
    "Hyperparams",
    "OrnsteinUhlenbeckNoise",
    "RNNSpec",
    "TrainState",
    "Transition",
    "act",
    "config",
    "convert",
    "distributed",
    "init",
    "linear",
    "logger",
    "losses",
    "networks",
    "noise",
    "replay",
    "scaler",
    "spaces",
    "trainers",
    "update",
    "update_from_replay",
]
