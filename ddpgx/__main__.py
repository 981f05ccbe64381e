"""Command line: ``ddpgx train`` (or ``python -m ddpgx train``) and ``ddpgx eval``.

``train`` trains DDPG on a gymnasium environment (Pendulum-v1 with skrl's example settings by default; other
environments with their preset, see ``--preset``) with a progress bar, evaluates it without exploration noise, and
writes the run configuration, an episode log, TensorBoard logs, checkpoints and a learning curve under
``<directory>/<experiment-name>/``. Every setting can be given in a TOML or JSON file (``--config``) and as
``--set section.key=value`` (``ddpgx train --show-config`` prints them all). ``--resume RUN`` continues a run from
its newest complete checkpoint. SIGINT/SIGTERM stop a run cleanly (checkpoint, summary; exit 130/143). ``eval``
loads a saved agent and reports its return over some episodes, optionally recording videos.

Nothing heavy is imported before the arguments are parsed, so ``ddpgx --help`` is instant.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from typing import Any

#: per-field flags and the configuration keys they set (see ddpgx.cli.config)
FLAG_KEYS = {
    "env": "env.id", "num_envs": "env.num_envs", "vector_mode": "env.vector_mode", "timesteps": "run.timesteps",
    "seed": "run.seed", "backend": "run.backend", "device": "run.device", "mixed_precision": "run.mixed_precision",
    "preset": "run.preset", "directory": "cfg.experiment.directory",
    "experiment_name": "cfg.experiment.experiment_name", "memory_size": "memory.memory_size",
    "write_interval": "cfg.experiment.write_interval", "checkpoint_interval": "cfg.experiment.checkpoint_interval",
    "eval_episodes": "evaluation.episodes", "eval_interval": "evaluation.interval",
}


def _interval(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected an integer or 'auto'") from None


def _precision(text: str) -> bool | str:
    if text in ("bf16", "fp16"):
        return text
    if text.lower() in ("true", "auto", "1"):
        return True
    if text.lower() in ("false", "0", "off"):
        return False
    raise argparse.ArgumentTypeError(f"invalid mixed precision {text!r}: expected bf16, fp16, true or false")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddpgx", description="DDPG in JAX (and PyTorch): train and evaluate agents "
                                     "on gymnasium environments")
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser(
        "train", help="train on a gymnasium environment, evaluate, log, checkpoint, plot",
        description="Train DDPG. Settings resolve as: defaults (skrl's Pendulum example), the environment's preset, "
                    "--config FILE, the flags below, then --set KEY=VALUE. A flag left out keeps the value before it.",
        epilog="examples: ddpgx train --env HalfCheetah-v5 --timesteps 300000 | ddpgx train --set cfg.batch_size=256 "
               "--set networks.policy_hidden_sizes=[64,64] | ddpgx train --resume runs/mine --timesteps 30000")
    train.add_argument("--config", metavar="FILE", help="a TOML or JSON file of settings, one table per section "
                       "([env], [run], [cfg], [cfg.experiment], [networks], [memory], [evaluation])")
    train.add_argument("--set", dest="assignments", metavar="KEY=VALUE", action="append", default=[],
                       help="set any setting, e.g. --set cfg.batch_size=256, --set env.kwargs={'g':9.81}; values are "
                            "Python literals (strings may go unquoted); repeat for several; --show-config lists them")
    train.add_argument("--show-config", action="store_true", help="print the resolved settings and exit")
    train.add_argument("--env", default=None,
                       help="gymnasium environment id (default: Pendulum-v1), your own as module:Env-v0 (imported "
                            "first), or gymnax:<id> (e.g. gymnax:Pendulum-v1) to run the whole training as one "
                            "compiled program")
    train.add_argument("--preset", default=None,
                       help="settings preset: 'auto' (default: by env id), 'none', or a preset's name (Pendulum-v1, "
                            "MountainCarContinuous-v0, HalfCheetah-v5, Hopper-v5, ...)")
    train.add_argument("--timesteps", type=int, default=None, help="timesteps (per environment) to train to "
                       "(default: the preset's; Pendulum 15000; on --resume the run's own target)")
    train.add_argument("--num-envs", type=int, default=None, help="parallel environments (default 1)")
    train.add_argument("--vector-mode", choices=("sync", "async"), default=None,
                       help="step the environments in this process (sync, default) or one process each (async)")
    train.add_argument("--seed", type=int, default=None, help="seed of the networks, exploration and environments "
                       "(default 0)")
    train.add_argument("--backend", choices=("jax", "torch"), default=None,
                       help="the agent: ddpgx.DDPG (jax, default) or ddpgx_torch.DDPG (torch)")
    train.add_argument("--device", default=None, help="device of the agent, e.g. cpu or cuda:0 (default: the "
                       "backend's default)")
    train.add_argument("--mixed-precision", nargs="?", const=True, type=_precision, default=None,
                       metavar="bf16|fp16", help="torch backend: networks under autocast (bf16 on CPU, fp16 on CUDA "
                       "when no type is given)")
    train.add_argument("--directory", default=None, help="root directory of runs (default: ./runs)")
    train.add_argument("--experiment-name", default=None, help="run directory name (default: a time stamp)")
    train.add_argument("--memory-size", type=int, default=None, help="replay memory size per environment "
                       "(default: the preset's; Pendulum 15000)")
    train.add_argument("--write-interval", type=_interval, default=None,
                       help="timesteps between TensorBoard writes ('auto': timesteps/100, 0: off)")
    train.add_argument("--checkpoint-interval", type=_interval, default=None,
                       help="timesteps between checkpoints ('auto': timesteps/10, 0: off)")
    train.add_argument("--eval-episodes", type=int, default=None,
                       help="evaluation episodes after training and at each --eval-interval (default 10; 0: none)")
    train.add_argument("--eval-interval", type=int, default=None,
                       help="timesteps between evaluations during training (default: the preset's; 0: none)")
    train.add_argument("--resume", metavar="RUN",
                       help="continue a run from its newest complete checkpoint, with its own configuration, to its "
                            "own target (or --timesteps); a flag that contradicts the run is refused")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    evaluate = commands.add_parser("eval", help="evaluate a saved agent without exploration noise")
    evaluate.add_argument("path", help="a run directory (its newest checkpoint is used) or a checkpoint")
    evaluate.add_argument("--episodes", type=int, default=10, help="episodes to run (default 10)")
    evaluate.add_argument("--seed", type=int, default=10_000, help="seed of the first evaluation episode")
    evaluate.add_argument("--video", metavar="DIR", help="record every episode as an MP4 into DIR with gymnasium's "
                          "RecordVideo (needs moviepy)")
    return parser


def overrides_of(args: argparse.Namespace) -> dict:
    """The dotted settings a ``train`` command line asks for: ``--config``'s, then the flags', then ``--set``'s."""
    from ddpgx.cli import config as config_lib

    overrides = config_lib.load_file(args.config) if args.config else {}
    for name, key in FLAG_KEYS.items():
        value = getattr(args, name)
        if value is not None:
            overrides[key] = value
    for text in args.assignments:
        key, value = config_lib.parse_assignment(text)
        overrides[key] = value
    return overrides


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "train":
            return _train(args)
        return _evaluate(args)
    except ValueError as error:
        print(f"ddpgx: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        where = f": {error.filename!r}" if error.filename else ""
        print(f"ddpgx: error: {error.strerror or error}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("ddpgx: interrupted", file=sys.stderr)
        return 130


def _train(args: argparse.Namespace) -> int:
    overrides = overrides_of(args)
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # distrax's TFP substrate warns on import
    import json

    from ddpgx.cli import runner  # imported late so that --help is instant

    plan = runner.plan(overrides, resume=args.resume)
    config = plan.config
    if args.show_config:
        print(json.dumps({"preset": plan.preset, "run_dir": plan.run_dir, "config": config.to_dict()}, indent=2))
        return 0
    verb = f"resuming at timestep {plan.start}:" if plan.checkpoint else "training"
    print(f"ddpgx: {verb} DDPG ({config['run.backend']}) on {config['env.id']} to {config['run.timesteps']} timesteps "
          f"x {config['env.num_envs']} env(s), seed {config['run.seed']}, preset {plan.preset}", flush=True)
    progress = False if args.no_progress else None
    if config["env.id"].startswith("gymnax:"):
        from ddpgx.cli import jitted_run

        result = jitted_run.train_jitted(plan, progress=progress, log=lambda line: print(line, flush=True))
    else:
        try:
            result = runner.train(plan, progress=progress, log=lambda line: print(line, flush=True))
        except runner.EnvironmentFailed as failed:
            return _environment_failed(failed)
    returns = result["episode_returns"]
    last = sum(returns[-10:]) / len(returns[-10:]) if returns else float("nan")
    evals = result.get("periodic_eval_seconds") or 0.0
    print(f"trained in {result['train_seconds']:.1f} s"
          + (f" ({evals:.1f} s of it periodic evaluation)" if evals else "")
          + f", {result['env_steps_per_second']:.0f} env steps/s; "
          f"{len(returns)} episodes, last 10 returned {last:.1f}")
    if "eval_mean" in result:
        print(f"evaluation return over {len(result['eval_returns'])} episodes: mean {result['eval_mean']:.1f}, "
              f"std {result['eval_std']:.1f}")
    print(f"logs, checkpoints and learning curve in {result['experiment_dir']}")
    if result.get("interrupted"):
        import signal

        name = signal.Signals(result["interrupted"]).name
        print(f"ddpgx: stopped by {name} at timestep {result['end_timestep']}: checkpoint and summary written; "
              f"resume with: ddpgx train --resume {result['experiment_dir']}", file=sys.stderr, flush=True)
        return 128 + int(result["interrupted"])
    return 0


def _environment_failed(failed: Any) -> int:
    """Reports an environment's error during training (its traceback first: the error is in the environment's
    code) and what was saved; exit status 1."""
    import traceback

    traceback.print_exception(failed.__cause__, file=sys.stderr)
    result = failed.result
    saved = (f"checkpoint at timestep {result['end_timestep']} and summary written; resume with: ddpgx train --resume "
             f"{result['experiment_dir']}" if result["end_timestep"] > result["start_timestep"] else
             f"no timestep was done, nothing to resume; logs in {result['experiment_dir']}")
    print(f"ddpgx: error: {failed}; {saved}", file=sys.stderr, flush=True)
    return 1


def _evaluate(args: argparse.Namespace) -> int:
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    import numpy as np

    from ddpgx.cli import runner
    from ddpgx.cli.policy import load_policy

    policy = load_policy(args.path)
    env_id = policy.env_id.removeprefix("gymnax:")
    returns = runner.evaluate(policy, env_id, args.episodes, seed=args.seed, kwargs=policy.env_kwargs,
                              video_dir=args.video)
    print(f"{policy.checkpoint}: evaluation return over {len(returns)} episodes on {env_id}: "
          f"mean {np.mean(returns):.1f}, std {np.std(returns):.1f}")
    if args.video:
        print(f"videos in {args.video}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
