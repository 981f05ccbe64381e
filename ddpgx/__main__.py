"""Command line: ``python -m ddpgx train`` (or ``ddpgx train``) trains DDPG and prints its evaluation return."""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpgx", description="DDPG in JAX")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train on a gymnasium environment, then evaluate without noise")
    train.add_argument("--env", default="Pendulum-v1", help="gymnasium environment id (default: Pendulum-v1)")
    train.add_argument("--timesteps", type=int, default=15_000, help="environment steps per environment")
    train.add_argument("--num-envs", type=int, default=1, help="parallel environments")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--eval-episodes", type=int, default=10)
    train.add_argument("--log-interval", type=int, default=1_000, help="timesteps between progress lines (0: off)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # distrax's TFP substrate warns on import
    from ddpgx import loop  # imported late so that --help is instant

    try:
        settings = loop.LoopConfig(env_id=args.env, timesteps=args.timesteps, num_envs=args.num_envs,
                                   seed=args.seed, log_interval=args.log_interval)
        print(f"ddpgx: training DDPG on {args.env} for {args.timesteps} timesteps x {args.num_envs} env(s), "
              f"seed {args.seed}", flush=True)
        ts, summary = loop.train(settings, log=lambda line: print(line, flush=True))
        returns = loop.evaluate(ts, args.env, episodes=args.eval_episodes)
    except ValueError as error:
        print(f"ddpgx: error: {error}", file=sys.stderr)
        return 2
    print(f"trained in {summary['train_seconds']:.1f} s ({summary['env_steps_per_second']:.0f} env steps/s)")
    print(f"evaluation return over {len(returns)} episodes: mean {np.mean(returns):.1f}, std {np.std(returns):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
