"""The main job: train DDPG on a gymnasium environment with the facade and trainer, evaluate, log, plot, resume.

``python -m ddpgx train`` runs :func:`train` on a :class:`ddpgx.cli.config.RunConfig`: by default skrl's Pendulum-v1
example (15,000 timesteps, batch 100, 400-300 MLPs, Ornstein-Uhlenbeck noise (theta 0.15, sigma 0.1), 100 random
timesteps, learning from timestep 100, a memory of 15,000 transitions), other environments with their preset
(:mod:`ddpgx.cli.presets`). A run writes, under ``<directory>/<experiment_name>/``:

* ``run.json``: the whole resolved configuration, the preset, and the versions of ddpgx, Python, NumPy, JAX,
  gymnasium (and torch with the torch backend), so that ``ddpgx eval``, ``--resume`` and :func:`ddpgx.load_policy`
  rebuild exactly this run;
* ``episodes.csv``: one row per finished training episode (``timestep,kind,return,std`` with kind ``train``) and
  per periodic evaluation (kind ``eval``: mean and std over the evaluation episodes), appended and flushed as the
  run goes, so a killed run loses no curve;
* TensorBoard event files, ``checkpoints/agent_<timestep>`` and ``checkpoints/best_agent``;
* ``learning_curve.png`` and ``summary.json``, rebuilt from ``episodes.csv`` so that a resumed run's hold every
  episode since the start.

SIGINT and SIGTERM stop the run at the end of the current timestep: a checkpoint of that timestep and the summary
are written, the way to resume is printed, and ``ddpgx train`` exits with 130 (SIGINT) or 143 (SIGTERM).
"""

from __future__ import annotations

import csv
import dataclasses
import datetime
import json
import os
import signal
import sys
import threading
import time
from typing import Any

import numpy as np

from ddpgx.cli import config as config_lib
from ddpgx.cli import presets
from ddpgx.cli.config import RunConfig
from ddpgx.cli.envs import make_env, make_single
from ddpgx.cli.policy import RUN_FILE, agent_checkpoints, complete, read_run

__all__ = ["EnvironmentFailed", "RunPlan", "build_agent", "evaluate", "load_agent", "make_env", "plan",
           "plot_learning_curve", "policy_of", "skrl_example_cfg", "train", "versions"]

RUN_FORMAT = "ddpgx-run-2"
EPISODES_FILE = "episodes.csv"
EPISODE_FIELDS = ("timestep", "kind", "return", "std")
#: Keys a resumed run may change; every other one is the run's own and a different value is refused.
RESUMABLE_KEYS = ("run.timesteps", "evaluation.episodes")


# ---------------------------------------------------------------------------------------------------------------------
# configuration of a run


@dataclasses.dataclass(frozen=True)
class RunPlan:
    """What :func:`train` runs: the configuration, its preset, the run directory and, to resume, the checkpoint and
    its timestep."""

    config: RunConfig
    preset: str
    run_dir: str
    checkpoint: str | None = None
    start: int = 0


def versions(backend: str = "jax") -> dict[str, str]:
    """The versions a run depends on (written into ``run.json``)."""
    import platform
    from importlib import metadata

    found = {"python": platform.python_version()}
    names = ["ddpgx", "numpy", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "gymnasium"]
    names += ["torch"] if backend == "torch" else []
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "not installed"
    import ddpgx

    found["ddpgx"] = ddpgx.__version__
    return found


def plan(overrides: dict[str, Any] | None = None, resume: str | None = None) -> RunPlan:
    """The run asked for: the defaults, the environment's preset and ``overrides`` (dotted keys, see
    :mod:`ddpgx.cli.config`); or, with ``resume`` (a run directory or its newest checkpoint), that run's own
    configuration, where ``overrides`` may only change ``run.timesteps`` (and ``evaluation.episodes``): any other
    value that differs from the run's is refused with a ``ValueError`` naming both."""
    overrides = dict(overrides or {})
    if resume is None:
        env_id = overrides.get("env.id", config_lib.default_config()["env"]["id"])
        choice = overrides.get("run.preset", "auto")
        if not isinstance(env_id, str) or not isinstance(choice, str):
            config_lib.resolve(overrides)  # raises the configuration's own message
        name, settings = presets.preset_for(env_id, choice)
        config = config_lib.resolve(overrides, settings)
        if ("memory.memory_size" in settings and "memory.memory_size" not in overrides
                and config["memory.memory_size"] > config["run.timesteps"]):
            # a preset's replay (1e6 for MuJoCo) never fills in a shorter run: hold only what the run can collect
            config = config.replace({"memory.memory_size": config["run.timesteps"]})
        experiment = config["cfg.experiment"]
        name_dir = experiment["experiment_name"] or f"{datetime.datetime.now():%y-%m-%d_%H-%M-%S-%f}_DDPG"
        run_dir = os.path.abspath(os.path.join(experiment["directory"] or "runs", name_dir))
        config = config.replace({"cfg.experiment.directory": os.path.dirname(run_dir),
                                 "cfg.experiment.experiment_name": os.path.basename(run_dir)})
        return RunPlan(config, name, run_dir)
    run_dir, checkpoint = resume_checkpoint(resume)
    saved = read_run(run_dir)
    config = RunConfig(saved["config"])
    known = set(config_lib.valid_keys())
    for key, value in overrides.items():
        if key in RESUMABLE_KEYS:
            continue
        if key in ("cfg.experiment.directory", "cfg.experiment.experiment_name"):
            here = os.path.abspath(value) if key.endswith("directory") else value
            if here != config[key]:
                raise ValueError(f"--resume continues the run in {run_dir}: {key}={value!r} contradicts it")
            continue
        current = config[key] if key in known else _lookup(config, key)
        if not config_lib.same(current, value):
            raise ValueError(
                f"{key}={value!r} contradicts the run being resumed ({key}={current!r} in "
                f"{os.path.join(run_dir, RUN_FILE)}): a resumed run keeps its configuration; only "
                f"{', '.join(RESUMABLE_KEYS)} may change (start a new run to change anything else)")
    config = config.replace({k: v for k, v in overrides.items() if k in RESUMABLE_KEYS})
    # a run moved or copied elsewhere continues where it now is
    config = config.replace({"cfg.experiment.directory": os.path.dirname(run_dir),
                             "cfg.experiment.experiment_name": os.path.basename(run_dir)})
    start = checkpoint_timestep(checkpoint, config["run.backend"])
    if start >= config["run.timesteps"]:
        raise ValueError(f"the run {run_dir!r} is at timestep {start} (checkpoint {checkpoint}), its target is "
                         f"{config['run.timesteps']}: ask for more with --timesteps")
    return RunPlan(config, saved.get("preset", "none"), run_dir, checkpoint, start)


def _lookup(config: RunConfig, key: str) -> Any:
    try:
        return config[key]
    except (KeyError, TypeError):
        config_lib.apply_overrides(config.to_dict(), {key: None})  # raises the unknown-key message
        return None  # a new key of a dict field (e.g. env.kwargs.x): absent in the run


def checkpoint_timestep(checkpoint: str, backend: str) -> int:
    name = os.path.basename(checkpoint.rstrip("/"))
    if backend == "torch":
        return int(name.removeprefix("agent_").removesuffix(".pt"))
    from ddpgx import checkpoints

    return int(checkpoints.metadata(checkpoint).get("timestep") or 0)


def _holds_replay(checkpoint: str, backend: str) -> bool:
    if backend == "torch":
        from ddpgx_torch import checkpoints as torch_checkpoints

        return "memory" in torch_checkpoints.load(checkpoint, map_location="cpu")
    from ddpgx import checkpoints

    return "memory" in checkpoints.metadata(checkpoint).get("items", ())


def resume_checkpoint(path: str) -> tuple[str, str]:
    """``(run directory, checkpoint)`` to resume from: the run's newest complete checkpoint, which must hold the
    replay buffer. A checkpoint path is accepted only if it is that one: ``best_agent`` (no replay buffer, and not
    where the run stopped) or an older checkpoint is refused with a ``ValueError`` that names the right one."""
    path = os.path.abspath(str(path).rstrip("/"))
    if os.path.isfile(os.path.join(path, RUN_FILE)):
        run_dir, given = path, None
    else:
        run_dir = os.path.dirname(os.path.dirname(path))  # <run>/checkpoints/<checkpoint>
        if not (os.path.exists(path) and os.path.isfile(os.path.join(run_dir, RUN_FILE))):
            raise ValueError(f"{path!r} is neither a ddpgx run directory (with {RUN_FILE}) nor a checkpoint inside one")
        given = path
    saved = read_run(run_dir)["config"]
    if saved["env"]["id"].startswith("gymnax:"):
        raise ValueError("--resume is not supported for gymnax environments (one compiled program)")
    backend = saved["run"]["backend"]
    checkpoints_dir = os.path.join(run_dir, "checkpoints")
    newest = next((c for _, c in agent_checkpoints(checkpoints_dir) if complete(c, backend)), None)
    if newest is None:
        raise ValueError(f"the run {run_dir!r} has no complete checkpoint in {checkpoints_dir} to resume from")
    if given is not None and given != newest:
        what = ("the best agent's checkpoint, which holds no replay buffer and is not where the run stopped"
                if os.path.basename(given).startswith("best") else "not the run's newest complete checkpoint")
        raise ValueError(f"cannot resume from {given!r}: it is {what}. Resume the run itself (--resume {run_dir}) to "
                         f"continue from its newest complete checkpoint, {newest}")
    if not _holds_replay(newest, backend):
        raise ValueError(f"cannot resume from {newest!r}: it holds no replay buffer, so training would restart with "
                         "an empty memory; start a new run instead")
    return run_dir, newest


# ---------------------------------------------------------------------------------------------------------------------
# agents and policies


def build_agent(env: Any, config: RunConfig, *, training: bool = True) -> Any:
    """The DDPG agent of ``config`` for ``env``: ``ddpgx.DDPG`` or ``ddpgx_torch.DDPG`` (``run.backend``) with the
    default MLPs of ``networks``, a memory of ``memory.memory_size`` per environment (training only) and the
    ``cfg`` section as its ``DDPG_CFG``."""
    backend = config["run.backend"]
    cfg = config_lib.build_ddpg_cfg(config["cfg"], backend)
    policy_sizes = tuple(config["networks.policy_hidden_sizes"])
    critic_sizes = tuple(config["networks.critic_hidden_sizes"])
    obs_space, act_space, state_space = env.observation_space, env.action_space, env.state_space
    low = np.asarray(act_space.low, float).reshape(-1)
    high = np.asarray(act_space.high, float).reshape(-1)
    if backend == "torch":
        from ddpgx_torch import DDPG
        from ddpgx_torch.core import networks
        from ddpgx_torch.memories import RandomMemory
        from ddpgx_torch.models import set_seed
        from ddpgx_torch.core.spaces import input_layout

        cfg.mixed_precision = config["run.mixed_precision"]
        set_seed(config["run.seed"])
        device = config["run.device"] or "cpu"
        obs_size = input_layout(obs_space).size
        critic_input = obs_size if state_space is None else input_layout(state_space).size
        models = {"policy": networks.DeterministicPolicy(obs_size, low, high, act_space.shape, policy_sizes),
                  "critic": networks.QFunction(critic_input, low.size, critic_sizes)}
        memory = RandomMemory(memory_size=config["memory.memory_size"], num_envs=env.num_envs,
                              device=device) if training else None
        return DDPG(models=models, memory=memory, cfg=cfg, observation_space=obs_space, state_space=state_space,
                    action_space=act_space, device=device)
    if config["run.mixed_precision"]:
        raise ValueError("run.mixed_precision is a torch option: use --backend torch (the JAX agent runs float32)")
    from ddpgx.core import networks
    from ddpgx.agent import DDPG
    from ddpgx.memories import RandomMemory

    models = {"policy": networks.DeterministicPolicy(tuple(low.tolist()), tuple(high.tolist()),
                                                     tuple(act_space.shape), policy_sizes),
              "critic": networks.QFunction(critic_sizes), "target_policy": None, "target_critic": None}
    memory = RandomMemory(memory_size=config["memory.memory_size"], num_envs=env.num_envs) if training else None
    return DDPG(models=models, memory=memory, cfg=cfg, observation_space=obs_space, state_space=state_space,
                action_space=act_space, seed=config["run.seed"], device=config["run.device"])


def skrl_example_cfg(cfg: Any = None, noise: Any = None) -> Any:
    """skrl's DDPG example configuration for Pendulum-v1 (the ``cfg`` defaults of :mod:`ddpgx.cli.config`), set on
    ``cfg`` (a new :class:`ddpgx.DDPG_CFG` by default; the benchmarks pass skrl's own ``DDPG_CFG`` and noise class,
    so both libraries get the same settings). ``noise`` defaults to :class:`ddpgx.noises.OrnsteinUhlenbeckNoise`."""
    from ddpgx.ddpg_cfg import DDPG_CFG
    from ddpgx.noises import OrnsteinUhlenbeckNoise

    cfg = DDPG_CFG() if cfg is None else cfg
    values = config_lib.default_config()["cfg"]
    cfg.exploration_noise = OrnsteinUhlenbeckNoise if noise is None else noise
    for name in ("exploration_noise_kwargs", "gradient_steps", "batch_size", "discount_factor", "polyak",
                 "learning_rate", "random_timesteps", "learning_starts"):
        setattr(cfg, name, values[name])
    return cfg


def policy_of(agent: Any) -> Any:
    """``observations [n, ...] -> actions`` (NumPy) of an agent's current deterministic policy, leaving the agent's
    state (noise, keys, training mode) untouched."""
    if type(agent).__module__.startswith("ddpgx_torch"):
        from ddpgx_torch import core as torch_core

        def act(observations):
            actions, _, _ = torch_core.act(agent.train_state, observations, explore=False)
            return actions.detach().cpu().numpy()

        return act
    from ddpgx import core

    def act(observations):
        actions, _, _ = core.act(agent.train_state, observations, explore=False)
        return np.asarray(actions)

    return act


def evaluate(policy: Any, env_id: str, episodes: int = 10, seed: int = 10_000, *, kwargs: dict | None = None,
             video_dir: str | None = None) -> list[float]:
    """Returns of ``episodes`` episodes of ``policy`` (``observations [1, ...] -> actions [1, ...]``, e.g.
    :func:`policy_of` an agent, or an agent itself) on one environment, episode ``i`` reset with ``seed + i``.
    With ``video_dir``, gymnasium's ``RecordVideo`` writes every episode there as an MP4 (needs moviepy)."""
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes={episodes!r} is invalid: expected an integer >= 1")
    if hasattr(policy, "train_state"):
        policy = policy_of(policy)
    if video_dir is not None:
        try:
            import moviepy  # noqa: F401 -- gymnasium's RecordVideo encodes with it
        except ImportError as error:
            raise ValueError("--video needs the moviepy package (gymnasium's RecordVideo writes MP4 files with it): "
                             "pip install moviepy") from error
        import gymnasium

        env = gymnasium.wrappers.RecordVideo(make_single(env_id, kwargs, render_mode="rgb_array"), video_dir,
                                             episode_trigger=lambda _: True, disable_logger=True)
    else:
        env = make_single(env_id, kwargs)
    returns = []
    try:
        for episode in range(episodes):
            try:
                obs, _ = env.reset(seed=seed + episode)
            except (ImportError, gymnasium_error()) as error:  # rendering for the video needs a package
                if video_dir is None:
                    raise
                raise ValueError(f"--video could not render {env_id!r}: {error}") from error
            total, done = 0.0, False
            while not done:
                action = np.asarray(policy(_batch_of_one(obs)))[0]
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = bool(terminated or truncated)
            returns.append(total)
    finally:
        env.close()
    return returns


def _batch_of_one(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _batch_of_one(v) for k, v in obs.items()}
    return np.asarray(obs)[None]


def gymnasium_error() -> type:
    import gymnasium

    return gymnasium.error.Error


def load_agent(path: str) -> tuple[Any, RunConfig, str]:
    """The agent saved in a run directory (newest complete checkpoint) or a checkpoint of one, ready to act (no
    memory), with its run configuration and the checkpoint read."""
    from ddpgx.cli.policy import find_policy_checkpoint

    run_dir, checkpoint = find_policy_checkpoint(path)
    config = RunConfig(read_run(run_dir)["config"])
    if config["env.id"].startswith("gymnax:"):  # trained on gymnax: evaluated on gymnasium's environment of that id
        config = config.replace({"env.id": config["env.id"].removeprefix("gymnax:")})
    env = make_env(config["env.id"], 1, kwargs=config["env.kwargs"])
    try:
        agent = build_agent(env, config, training=False)
    finally:
        env.close()
    agent.load(checkpoint)
    return agent, config, checkpoint


# ---------------------------------------------------------------------------------------------------------------------
# logs and pictures


def read_episodes(run_dir: str) -> list[dict[str, Any]]:
    """The rows of a run's ``episodes.csv`` (timestep int, kind str, return float, std float or None)."""
    path = os.path.join(run_dir, EPISODES_FILE)
    if not os.path.isfile(path):
        return []
    rows = []
    with open(path, newline="") as file:
        for row in csv.DictReader(file):
            try:
                rows.append({"timestep": int(row["timestep"]), "kind": row["kind"], "return": float(row["return"]),
                             "std": float(row["std"]) if row.get("std") else None})
            except (TypeError, ValueError, KeyError):
                continue  # a row cut short by a kill
    return rows


class EpisodeLog:
    """``episodes.csv``, appended and flushed row by row (a killed run keeps every row written)."""

    def __init__(self, run_dir: str, keep_until: int | None):
        self.path = os.path.join(run_dir, EPISODES_FILE)
        kept = [] if keep_until is None else [r for r in read_episodes(run_dir) if r["timestep"] <= keep_until]
        if keep_until is not None and not kept and not os.path.isfile(self.path):
            kept = _episodes_from_summary(run_dir, keep_until)  # a run of the first format
        tmp = self.path + ".tmp"
        with open(tmp, "w", newline="") as file:
            writer = csv.writer(file)
            writer.writerow(EPISODE_FIELDS)
            for row in kept:
                writer.writerow(_csv_row(row))
        os.replace(tmp, self.path)
        self._file = open(self.path, "a", newline="")  # noqa: SIM115 -- open for the run, closed by close()
        self._writer = csv.writer(self._file)

    def add(self, timestep: int, kind: str, value: float, std: float | None = None) -> None:
        self._writer.writerow(_csv_row({"timestep": timestep, "kind": kind, "return": value, "std": std}))
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def _csv_row(row: dict[str, Any]) -> list[Any]:
    return [row["timestep"], row["kind"], repr(float(row["return"])), "" if row["std"] is None else repr(row["std"])]


def _episodes_from_summary(run_dir: str, keep_until: int) -> list[dict[str, Any]]:
    path = os.path.join(run_dir, "summary.json")
    if not os.path.isfile(path):
        return []
    with open(path) as file:
        summary = json.load(file)
    return [{"timestep": t, "kind": "train", "return": r, "std": None}
            for t, r in zip(summary.get("episode_end_timesteps", []), summary.get("episode_returns", []), strict=False)
            if t <= keep_until]


def plot_learning_curve(path: str, end_timesteps: list[int], returns: list[float], *, title: str,
                        eval_return: float | None = None, eval_timesteps: list[int] | None = None,
                        eval_means: list[float] | None = None, eval_stds: list[float] | None = None) -> str:
    """A PNG of episode returns against timesteps with a moving average, the periodic evaluations (mean and std)
    and the final evaluation return."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    if returns:
        ax.plot(end_timesteps, returns, ".", alpha=0.35, label="episode return")
        window = min(10, len(returns))
        smooth = np.convolve(returns, np.ones(window) / window, mode="valid")
        ax.plot(end_timesteps[window - 1:], smooth, "-", lw=2, label=f"mean of last {window}")
    if eval_timesteps:
        means = np.asarray(eval_means, float)
        ax.plot(eval_timesteps, means, "o-", color="C3", lw=1.5, ms=4, label="evaluation (no noise)")
        if eval_stds and all(s is not None for s in eval_stds):
            stds = np.asarray(eval_stds, float)
            ax.fill_between(eval_timesteps, means - stds, means + stds, color="C3", alpha=0.15)
    if eval_return is not None:
        ax.axhline(eval_return, color="k", ls="--", lw=1, label=f"final evaluation: {eval_return:.1f}")
    ax.set_xlabel("timestep")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _write_json(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as file:
        json.dump(data, file, indent=2)
    os.replace(tmp, path)  # never a half-written file


def _write_run_file(plan: RunPlan, history: list[dict[str, Any]]) -> None:
    backend = plan.config["run.backend"]
    _write_json(os.path.join(plan.run_dir, RUN_FILE),
                {"format": RUN_FORMAT, "config": plan.config.to_dict(), "preset": plan.preset,
                 "versions": versions(backend), "segments": history})


def _summary(plan: RunPlan, result: dict[str, Any]) -> dict[str, Any]:
    """``result`` completed with every episode and evaluation of the run (from ``episodes.csv``) and its curve."""
    rows = read_episodes(plan.run_dir)
    train_rows = [r for r in rows if r["kind"] == "train"]
    evals = [r for r in rows if r["kind"] == "eval"]
    result.update(episode_returns=[r["return"] for r in train_rows],
                  episode_end_timesteps=[r["timestep"] for r in train_rows],
                  eval_timesteps=[r["timestep"] for r in evals], eval_curve=[r["return"] for r in evals])
    config = plan.config
    result["learning_curve"] = plot_learning_curve(
        os.path.join(plan.run_dir, "learning_curve.png"), result["episode_end_timesteps"], result["episode_returns"],
        title=f"DDPG ({config['run.backend']}) on {config['env.id']} (seed {config['run.seed']})",
        eval_return=result.get("eval_mean"), eval_timesteps=result["eval_timesteps"], eval_means=result["eval_curve"],
        eval_stds=[r["std"] for r in evals])
    _write_json(os.path.join(plan.run_dir, "summary.json"), result)
    return result


# ---------------------------------------------------------------------------------------------------------------------
# training


class StopRequest:
    """SIGINT/SIGTERM handlers that ask the run to stop at the end of the current timestep (a second SIGINT
    interrupts at once); the previous handlers are restored on exit."""

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopRequest:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def train(run: RunPlan | RunConfig, *, progress: bool | None = None, log: Any = print) -> dict[str, Any]:
    """Trains the planned run (a :class:`RunPlan` from :func:`plan`, or a configuration for a new run), evaluating
    every ``evaluation.interval`` timesteps and after training, and writes ``run.json``, ``episodes.csv``,
    TensorBoard logs, checkpoints, ``learning_curve.png`` and ``summary.json``; returns the summary (with the agent
    under ``"agent"``). If SIGINT or SIGTERM arrives, the run stops at the end of that timestep, writes a checkpoint
    there and the summary, and the summary's ``"interrupted"`` holds the signal's number. If the environment
    raises (in training or in an evaluation), the run is saved the same way at the last complete timestep and
    :class:`EnvironmentFailed` is raised from the environment's error (the summary's ``"failed"`` names it); an error
    of the agent's own propagates as it is."""
    if isinstance(run, RunConfig):
        run = plan(config_lib.flatten(run.to_dict()))
    config = run.config
    if config["env.id"].startswith("gymnax:"):
        raise ValueError(f"env.id={config['env.id']!r} is a gymnax environment: its main job is one compiled program, "
                         "ddpgx.cli.jitted_run.train_jitted")
    os.makedirs(run.run_dir, exist_ok=True)
    history = read_run(run.run_dir).get("segments", []) if run.checkpoint else []
    history.append({"start": run.start, "target": config["run.timesteps"],
                    "started": datetime.datetime.now().isoformat(timespec="seconds")})
    _write_run_file(run, history)
    log_file = EpisodeLog(run.run_dir, run.start if run.checkpoint else None)
    env = make_env(config["env.id"], config["env.num_envs"], vector_mode=config["env.vector_mode"],
                   kwargs=config["env.kwargs"])
    eval_env_kwargs = config["env.kwargs"]
    stop = StopRequest()
    try:
        agent = build_agent(env, config)
        if run.checkpoint is not None:
            agent.load(run.checkpoint)
            log(f"resuming {config['env.id']} from {run.checkpoint} at timestep {run.start} "
                f"(target {config['run.timesteps']})")
        policy = policy_of(agent)
        interval, episodes = config["evaluation.interval"], config["evaluation.episodes"]
        eval_seconds = [0.0]  # periodic evaluations' share of the trainer's wall time
        eval_failure: list[Exception] = []  # an evaluation environment's error stops the run like a signal

        def callback(timestep: int, returns: list[float]) -> bool:
            for value in returns:
                log_file.add(timestep, "train", value)
            if interval and episodes and timestep % interval == 0:
                began = time.perf_counter()
                try:
                    values = evaluate(policy, config["env.id"], episodes, config["evaluation.seed"],
                                      kwargs=eval_env_kwargs)
                except Exception as error:
                    error.add_note(f"(raised by the evaluation environment at timestep {timestep})")
                    eval_failure.append(error)
                    return True
                eval_seconds[0] += time.perf_counter() - began
                mean, std = float(np.mean(values)), float(np.std(values))
                log_file.add(timestep, "eval", mean, std)
                writer = agent.tracker.writer
                if writer is not None:
                    writer.add_scalar("Reward / Evaluation return (mean)", mean, timestep)
                    writer.add_scalar("Reward / Evaluation return (std)", std, timestep)
            return stop.signal is not None

        from ddpgx.trainers import SequentialTrainer

        trainer = SequentialTrainer(env=env, agents=agent, callback=callback, cfg={
            "timesteps": config["run.timesteps"], "headless": True, "seed": config["run.seed"],
            "initial_timestep": run.start, "disable_progressbar": (None if progress is None else not progress)})

        def save_at(timestep: int) -> None:
            os.makedirs(os.path.join(agent.experiment_dir, "checkpoints"), exist_ok=True)
            if hasattr(agent, "_flush"):  # the JAX agent may hold one recorded transition not yet stored
                agent._flush()
            agent.write_checkpoint(timestep=timestep, timesteps=config["run.timesteps"])

        failure = None
        with stop:
            try:
                summary = trainer.train()
            except Exception as error:
                if trainer.failed_at is None:  # the agent's own error: its state may be half-updated, save nothing
                    raise
                failure, summary = error, dict(trainer.summary, stopped_at=trainer.failed_at)
            failure = eval_failure[0] if eval_failure else failure
            stopped = summary["stopped_at"]
            if stopped is not None and stopped > run.start:
                save_at(stopped)
    finally:
        env.close()
        log_file.close()
    result: dict[str, Any] = {
        "experiment_dir": run.run_dir, "env_id": config["env.id"], "backend": config["run.backend"],
        "preset": run.preset, "train_seconds": summary["seconds"], "periodic_eval_seconds": eval_seconds[0],
        "env_steps_per_second": summary["env_steps_per_second"] * summary["seconds"] / max(
            summary["seconds"] - eval_seconds[0], 1e-9), "start_timestep": run.start,
        "end_timestep": stopped if stopped is not None else config["run.timesteps"],
        "target_timesteps": config["run.timesteps"], "interrupted": stop.signal,
        "failed": None if failure is None else f"{type(failure).__name__}: {failure}"}
    if stop.signal is None and failure is None and episodes:
        try:
            returns = evaluate(policy, config["env.id"], episodes, config["evaluation.seed"], kwargs=eval_env_kwargs)
            result.update(eval_returns=returns, eval_mean=float(np.mean(returns)), eval_std=float(np.std(returns)))
        except Exception as error:  # the training is done: keep it
            error.add_note("(raised by the evaluation environment after training)")
            failure, result["failed"] = error, f"{type(error).__name__}: {error}"
            save_at(result["end_timestep"])
    if agent.tracker.writer is not None:  # both backends' agents write TensorBoard through the shared tracker
        agent.tracker.writer.close()
        agent.tracker.writer = None
    result = _summary(run, result)
    if failure is not None:
        raise EnvironmentFailed(result) from failure
    result["agent"] = agent
    return result


class EnvironmentFailed(RuntimeError):
    """The environment raised during :func:`train` (the error is the ``__cause__``); the run was saved at the last
    complete timestep, ``result["end_timestep"]`` (a checkpoint there if any timestep was done since the start), with
    its summary, which :attr:`result` holds."""

    def __init__(self, result: dict[str, Any]):
        self.result = result
        super().__init__(f"the environment {result['env_id']!r} raised at timestep {result['end_timestep']}: "
                         f"{result['failed']}")


def jax_process_zero() -> bool:
    import jax

    return jax.process_index() == 0


def resume_command(run_dir: str) -> str:
    return f"{os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0].endswith('ddpgx') else 'ddpgx'} train " \
           f"--resume {run_dir}"
