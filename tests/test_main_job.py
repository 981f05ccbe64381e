"""The main job and the environment wrapper: same-step autoreset from any gymnasium mode, the CLI's train / resume /
eval with its logs, checkpoints and learning curve, and its errors."""

from __future__ import annotations

import json
import os

import gymnasium
import numpy as np
import pytest

from ddpgx import __main__ as cli
from ddpgx.cli import runner
from ddpgx.envs import true_next_observations, wrap_env


def test_true_next_observations_uses_final_observation_of_finished_envs():
    next_obs = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], np.float32)  # env 1 was reset: [2, 2] is a reset obs
    final = np.array([None, np.array([9.0, 9.0], np.float32), None], dtype=object)
    infos = {"final_obs": final, "_final_obs": np.array([False, True, False])}
    out = true_next_observations(next_obs, infos)
    np.testing.assert_array_equal(out, [[1, 1], [9, 9], [3, 3]])
    np.testing.assert_array_equal(next_obs[1], [2, 2])  # the caller's array (the next step's input) is untouched
    dict_obs = {"a": next_obs.copy()}
    final_dict = np.array([None, {"a": np.array([7.0, 7.0])}, None], dtype=object)
    out = true_next_observations(dict_obs, {"final_obs": final_dict, "_final_obs": infos["_final_obs"]})
    np.testing.assert_array_equal(out["a"][1], [7, 7])
    assert true_next_observations(next_obs, {}) is next_obs


@pytest.mark.parametrize("mode", ["next_step", "same_step", "single"])
def test_wrapper_resets_in_the_same_step_whatever_the_gymnasium_mode(mode):
    # Pendulum truncates after 200 steps. Whatever the mode, step 200 returns the new episode's first observation
    # and the true final observation in infos, and no step is spent on an autoreset.
    if mode == "single":
        env = wrap_env(gymnasium.make("Pendulum-v1"))
    else:
        autoreset = {"next_step": gymnasium.vector.AutoresetMode.NEXT_STEP,
                     "same_step": gymnasium.vector.AutoresetMode.SAME_STEP}[mode]
        env = wrap_env(gymnasium.make_vec("Pendulum-v1", num_envs=2, vectorization_mode="sync",
                                          vector_kwargs={"autoreset_mode": autoreset}))
    obs, _ = env.reset(seed=0)
    actions = np.zeros((env.num_envs, 1), np.float32)
    for t in range(200):
        previous = obs
        obs, rewards, terminated, truncated, infos = env.step(actions)
        assert rewards.shape == (env.num_envs, 1) and not terminated.any()
        if t < 199:
            assert not truncated.any()
            # Pendulum's dynamics link consecutive observations: no reset happened in between.
            assert np.all(np.abs(obs[:, 2] - previous[:, 2]) < 1.5)
    assert truncated.all()
    final = true_next_observations(obs, infos)
    assert not np.allclose(final, obs)  # the reset observation differs from the final one
    assert np.all(np.abs(final[:, 2] - previous[:, 2]) < 1.5)  # the final one continues the episode
    obs2, _, _, truncated2, _ = env.step(actions)  # the new episode runs at once
    assert not truncated2.any() and np.all(np.abs(obs2[:, 2] - obs[:, 2]) < 1.5)


def test_main_job_trains_resumes_and_evaluates(tmp_path, capsys):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    run = tmp_path / "run"
    args = ["train", "--timesteps", "400", "--directory", str(tmp_path), "--experiment-name", "run",
            "--eval-episodes", "2", "--no-progress", "--memory-size", "1000"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "evaluation return over 2 episodes" in out and str(run) in out
    # "auto": every timesteps / 10; retention keeps the newest 3 (only the newest with the replay buffer) and the best
    expected = {f"agent_{t}" for t in range(320, 401, 40)} | {"best_agent"}
    assert set(os.listdir(run / "checkpoints")) == expected
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["episode_returns"]) == 2 and len(summary["eval_returns"]) == 2
    assert (run / "learning_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    acc = event_accumulator.EventAccumulator(str(run))
    acc.Reload()
    assert "Reward / Total reward (mean)" in acc.Tags()["scalars"]

    # eval of the saved agent reproduces the evaluation printed after training.
    assert cli.main(["eval", str(run), "--episodes", "2"]) == 0
    assert f"mean {summary['eval_mean']:.1f}" in capsys.readouterr().out

    # --resume continues from the newest checkpoint to the new number of timesteps.
    assert cli.main(["train", "--timesteps", "500", "--resume", str(run), "--eval-episodes", "1",
                     "--no-progress"]) == 0
    assert f"from {run / 'checkpoints' / 'agent_400'} at timestep 400 (target 500)" in capsys.readouterr().out
    assert "agent_500" in os.listdir(run / "checkpoints")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["start_timestep"] == 400 and summary["episode_end_timesteps"][:2] == [200, 400]


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys):
    assert cli.main(["train", "--env", "NoSuchEnv-v0", "--timesteps", "10", "--directory", str(tmp_path)]) == 2
    assert "env_id='NoSuchEnv-v0' could not be made" in capsys.readouterr().err
    assert cli.main(["train", "--timesteps", "0"]) == 2
    assert "timesteps=0 is invalid" in capsys.readouterr().err
    assert cli.main(["train", "--env", "CartPole-v1", "--timesteps", "10", "--directory", str(tmp_path)]) == 2
    assert "is not supported: DDPG needs a Box" in capsys.readouterr().err
    assert cli.main(["eval", str(tmp_path / "nothing")]) == 2
    assert "is neither a ddpgx run directory" in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(tmp_path / "nothing"), "--timesteps", "10"]) == 2
    assert "is neither a ddpgx run directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--timesteps", "ten"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--write-interval", "often"])
    with pytest.raises(ValueError, match="cfg.experiment.write_interval='often' is invalid"):
        runner.plan({"cfg.experiment.write_interval": "often"})


def test_main_job_on_gymnax_runs_as_one_program_and_evaluates(tmp_path, capsys):
    pytest.importorskip("gymnax")
    args = ["train", "--env", "gymnax:Pendulum-v1", "--timesteps", "1000", "--directory", str(tmp_path),
            "--experiment-name", "jit", "--eval-episodes", "2", "--no-progress"]
    assert cli.main(args) == 0
    assert "evaluation return over 2 episodes" in capsys.readouterr().out
    run = tmp_path / "jit"
    assert {"run.json", "summary.json", "learning_curve.png", "checkpoints"} <= set(os.listdir(run))
    assert os.listdir(run / "checkpoints") == ["agent_1000"]
    assert cli.main(["eval", str(run), "--episodes", "1"]) == 0  # a gymnax-trained policy on gymnasium's Pendulum
    assert "on Pendulum-v1: mean" in capsys.readouterr().out
    assert cli.main(args + ["--resume", str(run)]) == 2
    assert "--resume is not supported for gymnax" in capsys.readouterr().err
