"""skrl-style names for exploration noise: ``ddpgx.noises.GaussianNoise`` and ``OrnsteinUhlenbeckNoise``.

They are the functional core's noise parameters (:mod:`ddpgx.noise`), whose fields already match skrl's keyword
arguments (``mean``, ``std``; ``theta``, ``sigma``, ``base_scale``, ``mean``, ``std``), so a skrl configuration such as
``cfg.exploration_noise = OrnsteinUhlenbeckNoise`` with ``cfg.exploration_noise_kwargs = {"theta": 0.15,
"sigma": 0.1, "base_scale": 1.0, "device": device}`` works as it is: the facade drops ``device`` (the noise is drawn
inside the agent's jitted ``act``, on the agent's device).
"""

from ddpgx.core.noise import GaussianNoise, OrnsteinUhlenbeckNoise

__all__ = ["GaussianNoise", "OrnsteinUhlenbeckNoise"]
