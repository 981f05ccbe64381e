"""``wrap_env`` for ``ddpgx_torch``: the framework-free gymnasium wrapper shared with ``ddpgx``.

skrl's ``skrl.envs.wrappers.torch.wrap_env`` ports to ``ddpgx_torch.envs.wrap_env``: single and vector gymnasium
environments, reset in the same step, with the finished episodes' last observations in ``infos["final_obs"]``
(the agent stores those as the transitions' next observations).
"""

from ddpgx.envs import GymnasiumWrapper, wrap_env

__all__ = ["GymnasiumWrapper", "wrap_env"]
