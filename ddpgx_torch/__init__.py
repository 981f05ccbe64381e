"""ddpgx_torch: the PyTorch backend of ddpgx, DDPG (Lillicrap et al. 2015) with the same names and numbers.

The functional core mirrors ``ddpgx`` one to one::

    train_state = ddpgx_torch.init(seed, ddpgx_torch.DDPGConfig(...), observation_space, action_space)
    actions, train_state, info = ddpgx_torch.act(train_state, observations, timestep=t, timesteps=T)
    train_state, metrics = ddpgx_torch.update(train_state, batch)     # or update_from_replay(train_state, buffer)

with a preallocated replay memory (and sequence sampling for recurrent policies) in :mod:`ddpgx_torch.replay`,
exploration noise in :mod:`ddpgx_torch.noise`, the running standard scaler in :mod:`ddpgx_torch.scaler`, default
networks in :mod:`ddpgx_torch.networks`, JAX <-> torch weight conversion in :mod:`ddpgx_torch.convert`, and
``torchrun`` support in :mod:`ddpgx_torch.distributed`.
"""

from ddpgx_torch import (
    convert,
    distributed,
    envs,
    losses,
    memories,
    models,
    networks,
    noise,
    noises,
    preprocessors,
    replay,
    scaler,
    spaces,
    trainers,
)
from ddpgx_torch.agent import DDPG, DDPG_CFG, DDPG_RNN, ExperimentCfg
from ddpgx_torch.config import DDPGConfig
from ddpgx_torch.core import (
    AgentSpec,
    Hyperparams,
    RNNSpec,
    TrainState,
    act,
    init,
    update,
    update_from_replay,
)
from ddpgx_torch.noise import GaussianNoise, OrnsteinUhlenbeckNoise
from ddpgx_torch.types import Transition

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
    "convert",
    "distributed",
    "init",
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
