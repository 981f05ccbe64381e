"""``SequentialTrainer`` for ``ddpgx_torch`` agents: the framework-free trainer shared with ``ddpgx``.

skrl's ``skrl.trainers.torch.SequentialTrainer`` ports to ``ddpgx_torch.trainers.SequentialTrainer``. The loop is
:mod:`ddpgx.trainers`' (one implementation for both backends): it passes NumPy observations to ``agent.act``,
converts the returned actions with ``np.asarray`` and hands ``record_transition`` NumPy rewards and flags of shape
``[num_envs, 1]``; the torch agent moves them to its device.
"""

from ddpgx.trainers import SequentialTrainer, SequentialTrainerCfg

__all__ = ["SequentialTrainer", "SequentialTrainerCfg"]
