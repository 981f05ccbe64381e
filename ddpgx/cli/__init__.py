"""The application over ddpgx: the ``ddpgx train`` / ``ddpgx eval`` jobs, their run configuration and presets,
and the multi-process launcher.

- :mod:`ddpgx.cli.config`: the one run configuration (defaults, presets, ``--config`` files, flags, ``--set``);
- :mod:`ddpgx.cli.presets`: settings per environment, each with its published source;
- :mod:`ddpgx.cli.runner`: the main job on gymnasium environments (either backend's agent and the trainer),
  evaluation, resuming, interruption, the episode log and the learning curve;
- :mod:`ddpgx.cli.jitted_run`: the main job on gymnax environments as one compiled program, with its progress line;
- :mod:`ddpgx.cli.policy`: :func:`ddpgx.load_policy`, a trained policy as a function;
- :mod:`ddpgx.cli.launch`: ``python -m ddpgx.cli.launch --nproc N prog.py``, N local processes as one JAX job.

The command line itself is :mod:`ddpgx.__main__` (``python -m ddpgx``). Nothing in the library imports this package
(``ddpgx.load_policy`` imports :mod:`ddpgx.cli.policy` when called).
"""
