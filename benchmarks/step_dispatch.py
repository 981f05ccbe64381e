"""The environment loop's step: the train state as ~70 buffers or packed into ~20, and XLA's options or ddpgx's.

Each environment step of the agent's training loop runs the real environment, then one call of the fused
update-and-act, then waits for the action: the loop ``ddpgx.DDPG`` runs once learning has started, without the
agent's bookkeeping. Three contenders, same numbers bit for bit (``tests/test_packing.py``):

* ``plain``: :func:`ddpgx.core.add_update_act` on the :class:`ddpgx.TrainState`, then the action's randomness
  committed with ``train_state.replace`` (what the agent ran before packing);
* ``packed``: :func:`ddpgx.core.add_update_act_packed` on ``packing.pack(train_state)`` (what it runs now);
* ``packed-xla-defaults``: the same compiled with XLA's default options instead of :mod:`ddpgx.core.xla_cpu`'s
  (which apply up to 128 rows; the same numbers, ``tests/test_xla_cpu.py``).

With ``--no-env`` every call gets the same recorded transition and no environment runs between calls: the step
alone, called back to back.

They alternate in blocks of ``--steps`` steps in one process, ``--rounds`` times; reported: each one's median time
per step and the medians of the per-round ratios packed / plain and packed / packed-xla-defaults. Defaults:
HalfCheetah-v5 (needs ``ddpgx[mujoco]``), batch 100, 400-300 networks, a memory of 300,000 (the MuJoCo preset's
settings).

Usage::

    python benchmarks/step_dispatch.py
    python benchmarks/step_dispatch.py --env Pendulum-v1 --memory 15000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np

from ddpgx import core
from ddpgx.core import packing, replay, xla_cpu
from ddpgx.core.types import Transition

# benchmarks/mujoco.py would shadow the simulator's package for gymnasium: this directory leaves sys.path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="HalfCheetah-v5", help="gymnasium id (default HalfCheetah-v5)")
    parser.add_argument("--memory", type=int, default=300_000, help="replay capacity (default 300000)")
    parser.add_argument("--batch", type=int, default=100, help="batch size (default 100)")
    parser.add_argument("--steps", type=int, default=300, help="steps per timed block (default 300)")
    parser.add_argument("--rounds", type=int, default=12, help="blocks of each contender (default 12)")
    parser.add_argument("--no-env", action="store_true",
                        help="no environment between calls: one recorded transition for every call (the step alone)")
    args = parser.parse_args()

    env = gymnasium.make(args.env)
    obs_size, act_size = env.observation_space.shape[0], env.action_space.shape[0]
    config = core.DDPGConfig(batch_size=args.batch, exploration_noise=core.noise.GaussianNoise(std=0.1))
    zeros = Transition(np.zeros(obs_size, np.float32), np.zeros(act_size, np.float32), np.float32(0),
                       np.zeros(obs_size, np.float32), np.bool_(False))
    state = {"obs": env.reset(seed=0)[0], "buffer": replay.init(args.memory, zeros),
             "plain": core.init(jax.random.key(0), config, env.observation_space, env.action_space)}
    state["packed"] = jax.jit(packing.pack)(jax.tree.map(jnp.copy, state["plain"]))
    state["packed-xla-defaults"] = jax.jit(packing.pack)(jax.tree.map(jnp.copy, state["plain"]))
    starts = np.zeros(1, bool)

    def env_step(actions):
        next_obs, reward, terminated, truncated, _ = env.step(np.asarray(actions, np.float32).reshape(act_size))
        transition = Transition(state["obs"][None].astype(np.float32), np.reshape(actions, (1, act_size)),
                                np.array([reward], np.float32), next_obs[None].astype(np.float32),
                                np.array([terminated]))
        state["obs"] = env.reset()[0] if terminated or truncated else next_obs
        return transition, state["obs"][None].astype(np.float32)

    for _ in range(1000):
        state["buffer"] = replay.add(state["buffer"], env_step(env.action_space.sample())[0])
    recorded = env_step(env.action_space.sample())  # the transition of every call with --no-env

    def block(name, steps):
        actions = np.zeros((1, act_size), np.float32)
        start = time.perf_counter()
        for i in range(steps):
            transition, next_obs = recorded if args.no_env else env_step(actions)
            if name == "plain":
                actions, (key, noise), ts, state["buffer"], _, _ = core.add_update_act(
                    state["plain"], state["buffer"], transition, next_obs, 1000 + i, 10**6, starts, metrics=False)
                state["plain"] = ts.replace(key=key, noise_state=noise)
            else:
                actions, state[name], _, state["buffer"], _, _ = core.add_update_act_packed(
                    state[name], state["buffer"], transition, next_obs, 1000 + i, 10**6, starts, metrics=False)
            actions = np.asarray(actions)
        return (time.perf_counter() - start) / steps

    def timed(name, steps):
        max_rows = xla_cpu.MAX_ROWS
        xla_cpu.MAX_ROWS = 0 if name == "packed-xla-defaults" else max_rows  # read at each call
        try:
            return block(name, steps)
        finally:
            xla_cpu.MAX_ROWS = max_rows

    times = {"plain": [], "packed": [], "packed-xla-defaults": []}
    for name in times:
        timed(name, 100)  # compile, warm up
    for _ in range(args.rounds):
        for name in times:
            times[name].append(timed(name, args.steps))
    print(f"{platform.machine()}, {jax.devices()[0].device_kind}; {args.env}, batch {args.batch}, memory "
          f"{args.memory}, {args.rounds} rounds of {args.steps} steps{', no environment' if args.no_env else ''}; "
          f"xla_cpu options accepted: {xla_cpu.accepted()}")
    for name, values in times.items():
        print(f"{name:19s} {1e3 * np.median(values):.3f} ms a step (median of {args.rounds} blocks)")
    for other in ("plain", "packed-xla-defaults"):
        ratios = np.array(times["packed"]) / np.array(times[other])
        print(f"packed / {other}: median {np.median(ratios):.3f} (range {ratios.min():.3f}-{ratios.max():.3f})")


if __name__ == "__main__":
    main()
