"""The pure layer of ddpgx: the train state and ``init``/``act``/``update``, and the functions they are made of.

No I/O and no imports from the layers above (the skrl-style objects at :mod:`ddpgx`'s top level, the command line
in :mod:`ddpgx.cli`). The modules:

- :mod:`ddpgx.core.ddpg`: the train state, :func:`init`, :func:`act`, :func:`update`, :func:`update_from_replay`;
- :mod:`ddpgx.core.config`: :class:`DDPGConfig`, the algorithm's frozen configuration;
- :mod:`ddpgx.core.losses`, :mod:`ddpgx.core.networks`: the loss functions and the default flax networks;
- :mod:`ddpgx.core.noise`, :mod:`ddpgx.core.replay`, :mod:`ddpgx.core.scaler`: exploration noise, the device
  replay buffer and the running standard scaler;
- :mod:`ddpgx.core.spaces`, :mod:`ddpgx.core.types`: gymnasium spaces as flat layouts, the :class:`Transition`;
- :mod:`ddpgx.core.packing`: a pytree in few buffers, for loops bound by the cost of a jitted call;
- :mod:`ddpgx.core.sharding`: meshes and shardings over several devices and hosts;
- :mod:`ddpgx.core.jitted`: whole training runs on JAX-native environments as one compiled program.
"""

from ddpgx.core import config, losses, networks, noise, packing, replay, scaler, spaces, types
from ddpgx.core import ddpg, jitted, sharding
from ddpgx.core.config import DDPGConfig
from ddpgx.core.ddpg import (
    DATA_AXIS,
    AgentSpec,
    Hyperparams,
    TrainState,
    act,
    adam,
    add_and_update,
    add_update_act,
    add_update_act_packed,
    check_numeric,
    init,
    update,
    update_from_replay,
)
from ddpgx.core.types import Transition

__all__ = [
    "DATA_AXIS",
    "AgentSpec",
    "DDPGConfig",
    "Hyperparams",
    "TrainState",
    "Transition",
    "act",
    "adam",
    "add_and_update",
    "add_update_act",
    "add_update_act_packed",
    "check_numeric",
    "config",
    "ddpg",
    "init",
    "jitted",
    "losses",
    "networks",
    "noise",
    "packing",
    "replay",
    "scaler",
    "sharding",
    "spaces",
    "types",
    "update",
    "update_from_replay",
]
