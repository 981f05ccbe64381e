"""``ddpgx train`` / ``eval`` end to end on tiny networks: run.json, resume rules, the torch backend, periodic
evaluation, ``ddpgx.load_policy`` and the one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import gymnasium
import numpy as np
import pytest

import ddpgx
from ddpgx import __main__ as cli
from ddpgx.cli import runner

TINY = ["--set", "networks.policy_hidden_sizes=[16]", "--set", "networks.critic_hidden_sizes=[16]",
        "--write-interval", "0", "--no-progress"]


def test_run_json_resume_rules_and_load_policy(tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", "--timesteps", "400", "--directory", str(tmp_path), "--experiment-name", "run",
            "--eval-episodes", "2", "--memory-size", "1000", "--checkpoint-interval", "200", "--set",
            "cfg.batch_size=32", "--eval-interval", "200", *TINY, "--write-interval", "100"]
    assert cli.main(args) == 0
    capsys.readouterr()
    saved = json.loads((run / "run.json").read_text())
    assert saved["config"]["cfg"]["batch_size"] == 32 and saved["config"]["networks"]["policy_hidden_sizes"] == [16]
    assert saved["preset"] == "Pendulum-v1" and saved["config"]["cfg"]["experiment"]["experiment_name"] == "run"
    assert {"ddpgx", "jax", "gymnasium", "numpy", "python"} <= set(saved["versions"])
    assert saved["versions"]["ddpgx"] == ddpgx.__version__
    summary = json.loads((run / "summary.json").read_text())
    assert summary["eval_timesteps"] == [200, 400] and len(summary["eval_curve"]) == 2  # periodic evaluation
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run))
    acc.Reload()
    assert [e.step for e in acc.Scalars("Reward / Evaluation return (mean)")] == [200, 400]

    # the run is at its target: resuming without --timesteps says so instead of training to some other default
    assert cli.main(["train", "--resume", str(run)]) == 2
    assert "is at timestep 400 " in capsys.readouterr().err
    # a flag that contradicts the run is refused; the same value is fine
    assert cli.main(["train", "--resume", str(run), "--timesteps", "600", "--set", "cfg.batch_size=64"]) == 2
    err = capsys.readouterr().err
    assert "cfg.batch_size=64 contradicts the run being resumed (cfg.batch_size=32 in" in err
    assert cli.main(["train", "--resume", str(run), "--timesteps", "600", "--env", "MountainCarContinuous-v0"]) == 2
    assert "env.id='MountainCarContinuous-v0' contradicts the run being resumed" in capsys.readouterr().err
    # best_agent holds no replay buffer and is not where the run stopped: refused, naming the checkpoint to use
    assert cli.main(["train", "--resume", str(run / "checkpoints" / "best_agent"), "--timesteps", "600"]) == 2
    err = capsys.readouterr().err
    assert "holds no replay buffer" in err and str(run / "checkpoints" / "agent_400") in err
    assert cli.main(["train", "--resume", str(run / "checkpoints" / "agent_200"), "--timesteps", "600"]) == 2
    assert "not the run's newest complete checkpoint" in capsys.readouterr().err

    # load_policy: one observation -> one action, a batch -> a batch, equal to the agent's own deterministic policy
    start = time.perf_counter()
    policy = ddpgx.load_policy(run)
    action = policy(np.array([1.0, 0.0, 0.5], np.float32))
    seconds = time.perf_counter() - start
    print(f"load_policy + first action: {seconds:.2f} s")
    assert action.shape == (1,) and -2.0 <= action[0] <= 2.0
    observations = np.random.default_rng(0).uniform(-1, 1, (5, 3)).astype(np.float32)
    agent, _, checkpoint = runner.load_agent(run)
    assert checkpoint == policy.checkpoint == str(run / "checkpoints" / "agent_400")
    expected, _ = agent.act(observations, timestep=0, timesteps=1)  # training mode off: no noise
    np.testing.assert_allclose(policy(observations), np.asarray(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(policy(observations[0]), np.asarray(agent.act(observations[0], timestep=0,
                                                                             timesteps=1)[0]), rtol=1e-5, atol=1e-6)
    assert seconds < 5  # well under a second on an idle machine (see the report); generous for a busy one

    # eval of the saved agent reproduces the final evaluation of training
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    assert f"mean {summary['eval_mean']:.1f}" in capsys.readouterr().out


def test_resume_keeps_the_runs_environment_and_preset(tmp_path, capsys):
    # MountainCarContinuous with its preset (batch 256, slow OU noise): the resumed run must stay that run.
    run = tmp_path / "car"
    assert cli.main(["train", "--env", "MountainCarContinuous-v0", "--timesteps", "300", "--directory",
                     str(tmp_path), "--experiment-name", "car", "--memory-size", "1000", "--checkpoint-interval",
                     "100", "--eval-episodes", "0", *TINY]) == 0
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(run), "--timesteps", "400", "--eval-episodes", "0",
                     "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "resuming at timestep 300: DDPG (jax) on MountainCarContinuous-v0 to 400 timesteps" in out
    saved = json.loads((run / "run.json").read_text())
    assert saved["preset"] == "MountainCarContinuous-v0" and saved["config"]["cfg"]["batch_size"] == 256
    assert saved["config"]["run"]["timesteps"] == 400  # the new target is the run's target from now on
    # the default retention (cfg.experiment.checkpoint_keep = 3) keeps the last three across the resume
    assert sorted(os.listdir(run / "checkpoints")) == ["agent_200", "agent_300", "agent_400"]


def test_torch_backend_runs_the_same_job(tmp_path, capsys):
    pytest.importorskip("torch")
    run = tmp_path / "torch"
    args = ["train", "--backend", "torch", "--timesteps", "300", "--directory", str(tmp_path), "--experiment-name",
            "torch", "--memory-size", "1000", "--checkpoint-interval", "300", "--eval-episodes", "1", *TINY]
    assert cli.main(args) == 0
    assert "DDPG (torch) on Pendulum-v1" in capsys.readouterr().out
    saved = json.loads((run / "run.json").read_text())
    assert saved["config"]["run"]["backend"] == "torch" and "torch" in saved["versions"]
    assert "agent_300.pt" in os.listdir(run / "checkpoints")
    policy = ddpgx.load_policy(run)
    agent, _, _ = runner.load_agent(run)
    observations = np.random.default_rng(1).uniform(-1, 1, (4, 3)).astype(np.float32)
    expected, _ = agent.act(observations, timestep=0, timesteps=1)
    np.testing.assert_allclose(policy(observations), expected.numpy(), rtol=1e-5, atol=1e-6)
    assert cli.main(["train", "--resume", str(run), "--timesteps", "400", "--eval-episodes", "0",
                     "--no-progress"]) == 0
    assert "from " + str(run / "checkpoints" / "agent_300.pt") + " at timestep 300" in capsys.readouterr().out
    assert cli.main(["train", "--backend", "jax", "--resume", str(run), "--timesteps", "500"]) == 2
    assert "run.backend='jax' contradicts the run being resumed" in capsys.readouterr().err
    assert cli.main(["train", "--mixed-precision", "bf16", "--timesteps", "10", "--directory", str(tmp_path)]) == 2
    assert "run.mixed_precision is a torch option" in capsys.readouterr().err


def test_os_errors_are_one_line(tmp_path, capsys):
    a_file = tmp_path / "file"
    a_file.write_text("not a directory")
    assert cli.main(["train", "--timesteps", "10", "--directory", str(a_file), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ddpgx: error: ") and err.count("\n") == 1 and str(a_file) in err
    if os.geteuid() == 0:  # root writes into read-only directories; /sys refuses even root
        read_only = "/sys/ddpgx-test"
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir(mode=0o555)
    assert cli.main(["train", "--timesteps", "10", "--directory", str(read_only), *TINY]) == 1
    err = capsys.readouterr().err
    assert err.startswith("ddpgx: error: ") and err.count("\n") == 1
    assert "ermi" in err or "not permitted" in err  # Permission denied / Operation not permitted


def test_mujoco_without_imageio_is_one_line():
    pytest.importorskip("mujoco")
    code = ("import sys; sys.modules['imageio'] = None; from ddpgx.__main__ import main; "
            "sys.exit(main(['train', '--env', 'Hopper-v5', '--timesteps', '10', '--no-progress']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "ddpgx: error: env_id='Hopper-v5' could not be made: 'imageio' is missing (MuJoCo environments need the "
        'mujoco and imageio packages: pip install "ddpgx[mujoco]")']


def test_video_needs_moviepy_or_records(tmp_path, capsys):
    run = tmp_path / "run"
    assert cli.main(["train", "--timesteps", "200", "--directory", str(tmp_path), "--experiment-name", "run",
                     "--memory-size", "500", "--eval-episodes", "0", *TINY]) == 0
    capsys.readouterr()
    videos = tmp_path / "videos"
    try:
        import moviepy  # noqa: F401
    except ImportError:
        assert cli.main(["eval", str(run), "--episodes", "1", "--video", str(videos)]) == 2
        assert "--video needs the moviepy package" in capsys.readouterr().err
        return
    try:
        import pygame  # noqa: F401 -- Pendulum renders with it
    except ImportError:
        assert cli.main(["eval", str(run), "--episodes", "1", "--video", str(videos)]) == 2
        assert "--video could not render 'Pendulum-v1': pygame is not installed" in capsys.readouterr().err
        return
    assert cli.main(["eval", str(run), "--episodes", "2", "--video", str(videos)]) == 0
    assert sorted(name for name in os.listdir(videos) if name.endswith(".mp4")) == [
        "rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]


def test_agents_act_on_one_observation():
    env = gymnasium.make("Pendulum-v1")
    obs, _ = env.reset(seed=0)
    agent = ddpgx.DDPG(models={"policy": None}, observation_space=env.observation_space,
                       action_space=env.action_space, seed=0)
    single, _ = agent.act(obs, timestep=0, timesteps=1)
    batch, _ = agent.act(obs[None], timestep=0, timesteps=1)
    assert single.shape == (1,) and batch.shape == (1, 1)
    np.testing.assert_array_equal(np.asarray(single), np.asarray(batch)[0])
    torch_agent = pytest.importorskip("ddpgx_torch")
    from ddpgx_torch.core.networks import DeterministicPolicy

    agent = torch_agent.DDPG(models={"policy": DeterministicPolicy(3, [-2.0], [2.0], (1,))},
                             observation_space=env.observation_space, action_space=env.action_space)
    single, _ = agent.act(obs, timestep=0, timesteps=1)
    batch, _ = agent.act(obs[None], timestep=0, timesteps=1)
    assert tuple(single.shape) == (1,) and tuple(batch.shape) == (1, 1)
    np.testing.assert_array_equal(single.numpy(), batch.numpy()[0])


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "MountainCarContinuous-v0"])
def test_async_vector_mode_steps_the_same_environments(env_id):
    # worker processes (async) and this process (sync) give the same observations, rewards and resets
    from ddpgx.cli.envs import make_env

    envs = {mode: make_env(env_id, 3, vector_mode=mode) for mode in ("sync", "async")}
    try:
        first = {mode: env.reset(seed=5)[0] for mode, env in envs.items()}
        np.testing.assert_array_equal(first["sync"], first["async"])
        actions = np.random.default_rng(0).uniform(-1, 1, (250, 3, 1)).astype(np.float32)
        for a in actions:
            out = {mode: env.step(a) for mode, env in envs.items()}
            for x, y in zip(out["sync"][:4], out["async"][:4], strict=True):
                np.testing.assert_array_equal(x, y)
    finally:
        for env in envs.values():
            env.close()
    with pytest.raises(ValueError, match="vector_mode='threads' is invalid"):
        make_env(env_id, 2, vector_mode="threads")


def test_vector_env_benchmark_reports_both_modes_and_skips_a_bad_task(capsys):
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), "..", "benchmarks", "vector_envs.py")
    spec = importlib.util.spec_from_file_location("vector_envs", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--tasks", "Pendulum-v1", "NoSuchEnv-v9", "--num-envs", "2", "--steps", "20",
                       "--repeats", "1"]) == 0
    rows = [line.split("|")[1:-1] for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    pendulum = next(row for row in rows if row[0].strip() == "Pendulum-v1")
    assert all(float(cell.replace(",", "")) > 0 for cell in pendulum[1:])
    assert "skipped: env_id='NoSuchEnv-v9' could not be made" in next(r[1] for r in rows if "NoSuchEnv" in r[0])
    with pytest.raises(SystemExit):
        bench.main(["--steps", "0"])


def test_default_run_is_the_previous_main_job(tmp_path):
    # `ddpgx train` with no options must still be skrl's Pendulum example as the main job always built it: the agent
    # of the run configuration's defaults equals the previous build (skrl_example_cfg, models None -> default MLPs,
    # the same seed), parameter for parameter, after the same 300 training steps.
    import jax

    from ddpgx.agent import DDPG
    from ddpgx.memories import RandomMemory
    from ddpgx.trainers import SequentialTrainer

    plan = runner.plan({"cfg.experiment.directory": str(tmp_path), "cfg.experiment.experiment_name": "new",
                        "cfg.experiment.write_interval": 0, "cfg.experiment.checkpoint_interval": 0,
                        "run.timesteps": 300, "evaluation.episodes": 0})
    assert plan.preset == "Pendulum-v1" and plan.config["memory.memory_size"] == 15_000
    new = runner.train(plan, progress=False, log=lambda *_: None)["agent"]

    env = runner.make_env("Pendulum-v1", 1)
    cfg = runner.skrl_example_cfg()
    cfg.experiment.directory, cfg.experiment.experiment_name = str(tmp_path), "old"
    cfg.experiment.write_interval = cfg.experiment.checkpoint_interval = 0
    old = DDPG(models=dict.fromkeys(("policy", "critic", "target_policy", "target_critic")),
               memory=RandomMemory(memory_size=15_000, num_envs=1), cfg=cfg, observation_space=env.observation_space,
               action_space=env.action_space, seed=0)
    SequentialTrainer(env=env, agents=old, cfg={"timesteps": 300, "headless": True, "seed": 0,
                                                "disable_progressbar": True}).train()
    env.close()
    for a, b in zip(jax.tree.leaves(old.train_state.policy_params), jax.tree.leaves(new.train_state.policy_params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(jax.tree.leaves(old.train_state.critic_params), jax.tree.leaves(new.train_state.critic_params),
                    strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
