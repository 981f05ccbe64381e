"""Environment steps per second of ``ddpgx train``'s vector environments, in one process and in worker processes.

For each task, ``--num-envs`` copies made by :func:`ddpgx.cli.envs.make_env` (what ``ddpgx train --num-envs N
--vector-mode sync|async`` steps) take uniformly random actions for ``--steps`` vector steps after a reset; the
modes alternate over ``--repeats`` rounds, and the median environment steps per second (vector steps x copies over
seconds) is reported per mode. No agent runs, so this is the ceiling the environments put on training throughput.

    python benchmarks/vector_envs.py                                  # Pendulum-v1 and Hopper-v5, 4 copies
    python benchmarks/vector_envs.py --tasks Pendulum-v1 --num-envs 8 --steps 2000

MuJoCo tasks need ``pip install ".[mujoco]"``; a task that cannot be made is reported and skipped.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import sys
import time

import numpy as np

# benchmarks/mujoco.py would shadow the simulator's package for gymnasium: this directory leaves sys.path
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]


MODES = ("sync", "async")


def steps_per_second(env, steps: int, seed: int) -> float:
    """Vector steps x copies over the seconds of ``steps`` random-action steps (the reset not counted)."""
    space = env.action_space  # one environment's (skrl's convention): a row per copy is drawn
    space.seed(seed)
    actions = np.stack([np.stack([space.sample() for _ in range(env.num_envs)]) for _ in range(steps)])
    env.reset(seed=seed)
    start = time.perf_counter()
    for action in actions:
        env.step(action)
    return steps * env.num_envs / (time.perf_counter() - start)


def make_envs(task: str, num_envs: int) -> dict[str, object]:
    """One vector environment per mode (``ValueError`` naming the task where it cannot be made)."""
    from ddpgx.cli.envs import make_env

    envs: dict[str, object] = {}
    try:
        for mode in MODES:
            envs[mode] = make_env(task, num_envs, vector_mode=mode)
    except ValueError:
        for env in envs.values():
            env.close()
        raise
    return envs


def measure(envs: dict, steps: int, repeats: int) -> dict[str, float]:
    """Median env steps/s per mode, the modes interleaved round by round; closes the environments."""
    try:
        rates: dict[str, list[float]] = {mode: [] for mode in MODES}
        for round_ in range(repeats):
            for mode in MODES if round_ % 2 == 0 else MODES[::-1]:
                rates[mode].append(steps_per_second(envs[mode], steps, seed=round_))
    finally:
        for env in envs.values():
            env.close()
    return {mode: statistics.median(values) for mode, values in rates.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=["Pendulum-v1", "Hopper-v5"],
                        help="gymnasium ids (default: Pendulum-v1 Hopper-v5)")
    parser.add_argument("--num-envs", type=int, default=4, help="copies per vector environment (default 4)")
    parser.add_argument("--steps", type=int, default=1000, help="vector steps per timed round (default 1000)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved rounds per mode (default 3)")
    args = parser.parse_args(argv)
    for name in ("num_envs", "steps", "repeats"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1, got {getattr(args, name)}")
    now = datetime.datetime.now(datetime.timezone.utc)
    print(f"vector_envs.py: {args.num_envs} copies, {args.steps} steps x {args.repeats} rounds, "
          f"{platform.processor() or platform.machine()}, {now:%Y-%m-%d %H:%M} UTC")
    print("| task | sync (one process) | async (a process per environment) | async / sync |")
    print("|---|---:|---:|---:|")
    for task in args.tasks:
        try:
            envs = make_envs(task, args.num_envs)
        except ValueError as error:  # make_env's one-line errors (unknown id, MuJoCo packages missing)
            print(f"| {task} | skipped: {error} | | |")
            continue
        rates = measure(envs, args.steps, args.repeats)
        print(f"| {task} | {rates['sync']:,.0f} | {rates['async']:,.0f} | {rates['async'] / rates['sync']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
