"""Command line: ``ddpgx train`` (or ``python -m ddpgx train``) and ``ddpgx eval``.

``train`` trains DDPG on a gymnasium environment (Pendulum-v1 with skrl's example settings by default) with a
progress bar, evaluates it without exploration noise, and writes TensorBoard logs, checkpoints and a learning curve
under ``<directory>/<experiment-name>/``; ``--resume RUN_OR_CHECKPOINT`` continues a run from its newest complete
checkpoint. ``eval`` loads a saved agent and reports its return over some episodes.
"""

from __future__ import annotations

import argparse
import sys


def _interval(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected an integer or 'auto'") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpgx", description="DDPG in JAX")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train on a gymnasium environment, evaluate, log, checkpoint, plot")
    train.add_argument("--env", default="Pendulum-v1",
                       help="gymnasium environment id (default: Pendulum-v1), or gymnax:<id> (e.g. gymnax:Pendulum-v1) "
                            "to run the whole training as one compiled program")
    train.add_argument("--timesteps", type=int, default=15_000, help="timesteps (per environment) to train to")
    train.add_argument("--num-envs", type=int, default=1, help="parallel environments")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--directory", default="runs", help="root directory of runs (default: ./runs)")
    train.add_argument("--experiment-name", default="", help="run directory name (default: a time stamp)")
    train.add_argument("--memory-size", type=int, default=15_000, help="replay memory size per environment")
    train.add_argument("--write-interval", type=_interval, default="auto",
                       help="timesteps between TensorBoard writes ('auto': timesteps/100, 0: off)")
    train.add_argument("--checkpoint-interval", type=_interval, default="auto",
                       help="timesteps between checkpoints ('auto': timesteps/10, 0: off)")
    train.add_argument("--eval-episodes", type=int, default=10, help="evaluation episodes after training (0: none)")
    train.add_argument("--resume", metavar="RUN_OR_CHECKPOINT",
                       help="continue a run from its newest complete checkpoint (or from the given checkpoint)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate = commands.add_parser("eval", help="evaluate a saved agent without exploration noise")
    evaluate.add_argument("path", help="a run directory (its newest checkpoint is used) or a checkpoint directory")
    evaluate.add_argument("--episodes", type=int, default=10)
    evaluate.add_argument("--seed", type=int, default=10_000, help="seed of the first evaluation episode")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import numpy as np

    from ddpgx.cli import runner  # imported late so that --help is instant

    try:
        if args.command == "train":
            settings = runner.RunSettings(
                env_id=args.env, timesteps=args.timesteps, num_envs=args.num_envs, seed=args.seed,
                directory=args.directory, experiment_name=args.experiment_name, memory_size=args.memory_size,
                write_interval=args.write_interval, checkpoint_interval=args.checkpoint_interval,
                eval_episodes=args.eval_episodes)
            print(f"ddpgx: training DDPG on {settings.env_id} for {settings.timesteps} timesteps x "
                  f"{settings.num_envs} env(s), seed {settings.seed}", flush=True)
            if settings.env_id.startswith("gymnax:"):
                if args.resume:
                    raise ValueError("--resume is not supported for gymnax environments (one compiled program)")
                from ddpgx.cli import jitted_run

                result = jitted_run.train_jitted(settings, progress=not args.no_progress)
            else:
                result = runner.train(settings, resume=args.resume, progress=False if args.no_progress else None,
                                      log=lambda line: print(line, flush=True))
            print(f"trained in {result['train_seconds']:.1f} s ({result['env_steps_per_second']:.0f} env steps/s); "
                  f"{len(result['episode_returns'])} episodes, last 10 returned "
                  f"{np.mean(result['episode_returns'][-10:]) if result['episode_returns'] else float('nan'):.1f}")
            if "eval_mean" in result:
                print(f"evaluation return over {len(result['eval_returns'])} episodes: mean {result['eval_mean']:.1f}, "
                      f"std {result['eval_std']:.1f}")
            print(f"logs, checkpoints and learning curve in {result['experiment_dir']}")
        else:
            agent, settings, checkpoint = runner.load_agent(args.path)
            returns = runner.evaluate(agent, settings.env_id, args.episodes, seed=args.seed)
            print(f"{checkpoint}: evaluation return over {len(returns)} episodes on {settings.env_id}: "
                  f"mean {np.mean(returns):.1f}, std {np.std(returns):.1f}")
    except ValueError as error:
        print(f"ddpgx: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
