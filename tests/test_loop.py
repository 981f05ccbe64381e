"""The gymnasium loop behind the main job: autoreset handling, a short vectorised run, and the CLI."""

from __future__ import annotations

import numpy as np
import pytest

from ddpgx import __main__ as cli
from ddpgx import loop


def test_true_next_observations_uses_final_observation_of_finished_envs():
    next_obs = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], np.float32)  # env 1 was reset: [2, 2] is a reset obs
    final = np.array([None, np.array([9.0, 9.0], np.float32), None], dtype=object)
    infos = {"final_obs": final, "_final_obs": np.array([False, True, False])}
    out = loop.true_next_observations(next_obs, infos, np.array([False, True, False]))
    np.testing.assert_array_equal(out, [[1, 1], [9, 9], [3, 3]])
    np.testing.assert_array_equal(next_obs[1], [2, 2])  # the caller's array (the next step's input) is untouched
    dict_obs = {"a": next_obs.copy()}
    final_dict = np.array([None, {"a": np.array([7.0, 7.0])}, None], dtype=object)
    out = loop.true_next_observations(dict_obs, {"final_obs": final_dict, "_final_obs": infos["_final_obs"]},
                                      np.array([False, True, False]))
    np.testing.assert_array_equal(out["a"][1], [7, 7])


def test_short_vectorised_training_run_records_episodes():
    # Pendulum truncates at 200 steps: 2 envs x 450 steps finish 4 episodes, all through SAME_STEP autoreset.
    settings = loop.LoopConfig(timesteps=450, num_envs=2, learning_starts=100, memory_size=1000, log_interval=0)
    ts, summary = loop.train(settings, loop.pendulum_config().replace(batch_size=32))
    assert len(summary["episode_returns"]) == 4
    assert all(-2000 < r < 0 for r in summary["episode_returns"])  # Pendulum's reward is in [-16.3, 0] per step
    assert int(ts.step) == 450 - 100  # one gradient step per timestep once learning has started
    returns = loop.evaluate(ts, "Pendulum-v1", episodes=2)
    assert len(returns) == 2 and all(np.isfinite(returns))


def test_loop_config_rejects_bad_values():
    with pytest.raises(ValueError, match=r"timesteps=0 is invalid"):
        loop.LoopConfig(timesteps=0)
    with pytest.raises(ValueError, match=r"num_envs=-1 is invalid"):
        loop.LoopConfig(num_envs=-1)
    with pytest.raises(ValueError, match=r"episodes=0 is invalid"):
        loop.evaluate(None, "Pendulum-v1", episodes=0)


def test_cli_reports_bad_input_without_a_traceback(capsys):
    assert cli.main(["train", "--env", "NoSuchEnv-v0", "--timesteps", "10"]) == 2
    assert "env_id='NoSuchEnv-v0' could not be made" in capsys.readouterr().err
    assert cli.main(["train", "--timesteps", "0"]) == 2
    assert "timesteps=0 is invalid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "--timesteps", "ten"])
