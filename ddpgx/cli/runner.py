"""The main job: train DDPG on a gymnasium environment with the facade and trainer, evaluate, log, plot, resume.

``python -m ddpgx train`` runs :func:`train` with skrl's Pendulum-v1 example settings
(:func:`skrl_example_cfg`): 15,000 timesteps, batch 100, 400-300 MLPs, Ornstein-Uhlenbeck noise (theta 0.15,
sigma 0.1), 100 random timesteps, learning from timestep 100, a memory of 15,000 transitions. A run writes, under
``<directory>/<experiment_name>/``: ``run.json`` (the settings, so that ``ddpgx eval`` and ``--resume`` can rebuild
the agent), TensorBoard event files, ``checkpoints/agent_<timestep>`` and ``checkpoints/best_agent``,
``learning_curve.png`` and ``summary.json``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import gymnasium
import numpy as np

from ddpgx import checkpoints
from ddpgx.agent import DDPG
from ddpgx.ddpg_cfg import DDPG_CFG
from ddpgx.envs import GymnasiumWrapper, wrap_env
from ddpgx.memories import RandomMemory
from ddpgx.noises import OrnsteinUhlenbeckNoise
from ddpgx.trainers import SequentialTrainer

__all__ = ["RunSettings", "evaluate", "load_agent", "make_env", "plot_learning_curve", "skrl_example_cfg", "train"]


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What a run of the main job is made of (saved as ``run.json``)."""

    env_id: str = "Pendulum-v1"
    timesteps: int = 15_000
    num_envs: int = 1
    seed: int = 0
    directory: str = "runs"
    experiment_name: str = ""
    memory_size: int = 15_000
    write_interval: int | str = "auto"
    checkpoint_interval: int | str = "auto"
    eval_episodes: int = 10

    def __post_init__(self):
        if not isinstance(self.env_id, str) or not self.env_id:
            raise ValueError(f"env_id={self.env_id!r} is invalid: expected a gymnasium environment id")
        for name, low in (("timesteps", 1), ("num_envs", 1), ("memory_size", 1), ("eval_episodes", 0), ("seed", 0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name}={value!r} is invalid: expected an integer >= {low}")
        for name in ("write_interval", "checkpoint_interval"):
            value = getattr(self, name)
            if value != "auto" and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError(f"{name}={value!r} is invalid: expected an integer or 'auto'")


def skrl_example_cfg(cfg: Any = None, noise: Any = OrnsteinUhlenbeckNoise) -> Any:
    """skrl's DDPG example configuration for Pendulum-v1, set on ``cfg`` (a new :class:`DDPG_CFG` by default; the
    benchmarks pass skrl's own ``DDPG_CFG`` and noise class, so both libraries get the same settings)."""
    cfg = DDPG_CFG() if cfg is None else cfg
    cfg.exploration_noise = noise
    cfg.exploration_noise_kwargs = {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0}
    cfg.gradient_steps = 1
    cfg.batch_size = 100
    cfg.discount_factor = 0.99
    cfg.polyak = 0.005
    cfg.learning_rate = 1e-3
    cfg.random_timesteps = 100
    cfg.learning_starts = 100
    return cfg


def make_env(env_id: str, num_envs: int = 1) -> GymnasiumWrapper:
    """A wrapped synchronous gymnasium vector environment (same-step autoreset)."""
    try:
        env = gymnasium.make_vec(env_id, num_envs=num_envs, vectorization_mode="sync",
                                 vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP})
    except gymnasium.error.Error as error:
        raise ValueError(f"env_id={env_id!r} could not be made by gymnasium: {error}") from error
    return wrap_env(env)


def build_agent(env: GymnasiumWrapper, settings: RunSettings, *, training: bool = True) -> DDPG:
    """The default DDPG agent (skrl's example configuration and networks) for ``env``."""
    cfg = skrl_example_cfg()
    cfg.experiment.directory = settings.directory
    cfg.experiment.experiment_name = settings.experiment_name
    cfg.experiment.write_interval = settings.write_interval
    cfg.experiment.checkpoint_interval = settings.checkpoint_interval
    memory = RandomMemory(memory_size=settings.memory_size, num_envs=env.num_envs) if training else None
    models = dict.fromkeys(("policy", "critic", "target_policy", "target_critic"))  # None: the default MLPs
    return DDPG(models=models, memory=memory, cfg=cfg, observation_space=env.observation_space,
                state_space=env.state_space, action_space=env.action_space, seed=settings.seed)


def evaluate(agent: DDPG, env_id: str, episodes: int = 10, seed: int = 10_000) -> list[float]:
    """Returns of ``episodes`` episodes of the deterministic policy (no exploration noise), one environment."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: expected an integer >= 1")
    env = make_env(env_id, 1)
    was_training = agent.training
    agent.enable_training_mode(False)
    returns = []
    try:
        for episode in range(episodes):
            obs, _ = env.reset(seed=seed + episode)
            total, done, t = 0.0, False, 0
            while not done:
                actions, _ = agent.act(obs, None, timestep=t, timesteps=1)
                obs, reward, terminated, truncated, _ = env.step(np.asarray(actions))
                total += float(reward[0, 0])
                done, t = bool(terminated[0, 0] or truncated[0, 0]), t + 1
            returns.append(total)
    finally:
        env.close()
        agent.enable_training_mode(was_training)
    return returns


def plot_learning_curve(path: str, end_timesteps: list[int], returns: list[float], *, title: str,
                        eval_return: float | None = None) -> str:
    """A PNG of episode returns against timesteps with a moving average (and the evaluation return)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if returns:
        ax.plot(end_timesteps, returns, ".", alpha=0.35, label="episode return")
        window = min(10, len(returns))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(end_timesteps[window - 1:], smooth, "-", lw=2, label=f"mean of last {window}")
    if eval_return is not None:
        ax.axhline(eval_return, color="k", ls="--", lw=1, label=f"evaluation (no noise): {eval_return:.1f}")
    ax.set_xlabel("timestep")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _read_json(path: str) -> dict:
    if not os.path.isfile(path):
        return {}
    with open(path) as file:
        return json.load(file)


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as file:
        json.dump(data, file, indent=2)
    os.replace(tmp, path)  # never a half-written file


def train(settings: RunSettings, *, resume: str | None = None, progress: bool | None = None,
          log: Any = print) -> dict[str, Any]:
    """Trains (or resumes: ``resume`` is a run directory or a checkpoint), evaluates, writes logs, checkpoints,
    ``learning_curve.png`` and ``summary.json``; returns the summary."""
    start, checkpoint = 0, None
    if resume is not None:
        run_dir, checkpoint = find_checkpoint(resume)
        saved = read_settings(run_dir)
        settings = dataclasses.replace(saved, timesteps=settings.timesteps, directory=os.path.dirname(run_dir),
                                       experiment_name=os.path.basename(run_dir))
    env = make_env(settings.env_id, settings.num_envs)
    try:
        agent = build_agent(env, settings)
        os.makedirs(agent.experiment_dir, exist_ok=True)
        if checkpoint is not None:
            agent.load(checkpoint)
            start = int(checkpoints.metadata(checkpoint).get("timestep") or 0)
            if start >= settings.timesteps:
                raise ValueError(f"the checkpoint {checkpoint!r} is at timestep {start}: ask for more --timesteps "
                                 f"than that (got {settings.timesteps})")
            log(f"resuming from {checkpoint} at timestep {start}")
        _write_json(os.path.join(agent.experiment_dir, "run.json"), dataclasses.asdict(settings))
        trainer = SequentialTrainer(env=env, agents=agent, cfg={
            "timesteps": settings.timesteps, "headless": True, "seed": settings.seed, "initial_timestep": start,
            "disable_progressbar": (None if progress is None else not progress)})
        summary = trainer.train()
    finally:
        env.close()
    if start:  # the curve continues the episodes of the run resumed
        previous = _read_json(os.path.join(agent.experiment_dir, "summary.json"))
        kept = [(t, r) for t, r in zip(previous.get("episode_end_timesteps", []), previous.get("episode_returns", []),
                                       strict=True) if t <= start]
        summary["episode_end_timesteps"] = [t for t, _ in kept] + summary["episode_end_timesteps"]
        summary["episode_returns"] = [r for _, r in kept] + summary["episode_returns"]
    result = {"experiment_dir": agent.experiment_dir, "train_seconds": summary["seconds"],
              "env_steps_per_second": summary["env_steps_per_second"], "episode_returns": summary["episode_returns"],
              "episode_end_timesteps": summary["episode_end_timesteps"], "start_timestep": start}
    if settings.eval_episodes:
        returns = evaluate(agent, settings.env_id, settings.eval_episodes)
        result.update(eval_returns=returns, eval_mean=float(np.mean(returns)), eval_std=float(np.std(returns)))
    if jax_process_zero():
        result["learning_curve"] = plot_learning_curve(
            os.path.join(agent.experiment_dir, "learning_curve.png"), summary["episode_end_timesteps"],
            summary["episode_returns"], title=f"DDPG on {settings.env_id} (seed {settings.seed})",
            eval_return=result.get("eval_mean"))
        _write_json(os.path.join(agent.experiment_dir, "summary.json"), result)
    agent.close()
    result["agent"] = agent
    return result


def jax_process_zero() -> bool:
    import jax

    return jax.process_index() == 0


def read_settings(run_dir: str) -> RunSettings:
    path = os.path.join(run_dir, "run.json")
    if not os.path.isfile(path):
        raise ValueError(f"{run_dir!r} is not a ddpgx run directory (no run.json)")
    with open(path) as file:
        data = json.load(file)
    return RunSettings(**{f.name: data[f.name] for f in dataclasses.fields(RunSettings) if f.name in data})


def find_checkpoint(path: str) -> tuple[str, str]:
    """``(run directory, checkpoint)`` for a run directory (its newest complete checkpoint) or a checkpoint."""
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, "run.json")):
        found = checkpoints.latest(os.path.join(path, "checkpoints"))
        if found is None:
            raise ValueError(f"the run {path!r} has no complete checkpoint in {os.path.join(path, 'checkpoints')}")
        return path, found
    run_dir = os.path.dirname(os.path.dirname(path))  # <run>/checkpoints/<checkpoint>
    if os.path.isdir(path) and os.path.isfile(os.path.join(run_dir, "run.json")):
        return run_dir, path
    raise ValueError(f"{path!r} is neither a ddpgx run directory (with run.json) nor a checkpoint inside one")


def load_agent(path: str) -> tuple[DDPG, RunSettings, str]:
    """The agent saved in a run directory (newest checkpoint) or a checkpoint, ready to act (no memory)."""
    run_dir, checkpoint = find_checkpoint(path)
    settings = read_settings(run_dir)
    if settings.env_id.startswith("gymnax:"):  # trained on gymnax: evaluated on gymnasium's environment of that id
        settings = dataclasses.replace(settings, env_id=settings.env_id.removeprefix("gymnax:"))
    env = make_env(settings.env_id, 1)
    try:
        agent = build_agent(env, dataclasses.replace(settings, directory=os.path.dirname(run_dir),
                                                     experiment_name=os.path.basename(run_dir)), training=False)
    finally:
        env.close()
    agent.load(checkpoint)
    return agent, settings, checkpoint
