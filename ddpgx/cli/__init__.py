"""The application over ddpgx: the ``ddpgx train`` / ``ddpgx eval`` jobs and the multi-process launcher.

- :mod:`ddpgx.cli.runner`: the main job on gymnasium environments (facade and trainer), evaluation, resuming;
- :mod:`ddpgx.cli.jitted_run`: the main job on gymnax environments as one compiled program, with its progress line;
- :mod:`ddpgx.cli.launch`: ``python -m ddpgx.cli.launch --nproc N prog.py``, N local processes as one JAX job.

The command line itself is :mod:`ddpgx.__main__` (``python -m ddpgx``). Nothing in the library imports this package.
"""
