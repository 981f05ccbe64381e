"""The pure layer of ddpgx_torch: the train state and ``init``/``act``/``update``, and what they are made of.

The torch twin of :mod:`ddpgx.core`, module for module, with no imports from the layers above (the skrl-style
objects at :mod:`ddpgx_torch`'s top level):

- :mod:`ddpgx_torch.core.ddpg`: the train state, :func:`init`, :func:`act`, :func:`update`,
  :func:`update_from_replay`;
- :mod:`ddpgx_torch.core.config`: :class:`DDPGConfig`;
- :mod:`ddpgx_torch.core.losses`, :mod:`ddpgx_torch.core.networks`: the loss functions and the default networks,
  with their fused CPU/CUDA layers in :mod:`ddpgx_torch.core.linear`;
- :mod:`ddpgx_torch.core.noise`, :mod:`ddpgx_torch.core.replay`, :mod:`ddpgx_torch.core.scaler`: exploration
  noise, the replay memory (with sequence sampling for recurrent policies) and the running standard scaler;
- :mod:`ddpgx_torch.core.spaces`, :mod:`ddpgx_torch.core.types`: input layouts and the :class:`Transition`;
- :mod:`ddpgx_torch.core.distributed`: ``torch.distributed`` for SPMD training (the twin of
  :mod:`ddpgx.core.sharding`: the gradient all-reduce is part of ``update``);
- :mod:`ddpgx_torch.core.convert`: JAX <-> torch weight conversion.
"""

from ddpgx_torch.core import config, distributed, linear, losses, noise, replay, scaler, spaces, types
from ddpgx_torch.core import convert, ddpg, networks
from ddpgx_torch.core.config import DDPGConfig
from ddpgx_torch.core.ddpg import (
    AgentSpec,
    Hyperparams,
    RNNSpec,
    TrainState,
    act,
    adam,
    init,
    update,
    update_from_replay,
)
from ddpgx_torch.core.types import Transition

__all__ = [
    "AgentSpec",
    "DDPGConfig",
    "Hyperparams",
    "RNNSpec",
    "TrainState",
    "Transition",
    "act",
    "adam",
    "config",
    "convert",
    "ddpg",
    "distributed",
    "init",
    "linear",
    "losses",
    "networks",
    "noise",
    "replay",
    "scaler",
    "spaces",
    "types",
    "update",
    "update_from_replay",
]
