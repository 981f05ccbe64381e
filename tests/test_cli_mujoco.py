"""MuJoCo presets against the environments themselves, and ``benchmarks/mujoco.py`` end to end on a tiny budget."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ddpgx.cli import presets

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
pytest.importorskip("mujoco")
pytest.importorskip("imageio")


@pytest.mark.parametrize("task", presets.MUJOCO)
def test_mujoco_preset_matches_the_td3_papers_ddpg_for_its_environment(task):
    import gymnasium

    env = gymnasium.make(task)
    high = float(np.max(env.action_space.high))
    env.close()
    np.testing.assert_array_equal(-env.action_space.low, env.action_space.high)  # symmetric bounds: one max_action
    settings = presets.preset_for(task)[1]
    assert settings["cfg.exploration_noise"] == "GaussianNoise"
    assert settings["cfg.exploration_noise_kwargs"]["std"] == pytest.approx(0.1 * high)  # N(0, 0.1 max_action)
    start = 10_000 if task in ("HalfCheetah-v5", "Ant-v5") else 1_000
    assert settings["cfg.random_timesteps"] == settings["cfg.learning_starts"] == start
    assert (settings["cfg.batch_size"], settings["cfg.learning_rate"], settings["cfg.polyak"]) == (100, 1e-3, 0.005)
    assert settings["networks.policy_hidden_sizes"] == settings["networks.critic_hidden_sizes"] == [400, 300]


@pytest.mark.slow
def test_mujoco_benchmark_runs_both_libraries_and_reports(tmp_path):
    pytest.importorskip("sbx")
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "mujoco.py"), "--tasks", "Hopper-v5", "--timesteps",
               "200", "--seeds", "0", "--eval-interval", "100", "--eval-episodes", "1", "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| Hopper-v5 | ddpgx | 1 |" in done.stdout and "| Hopper-v5 | sbx | 1 |" in done.stdout
    saved = json.loads((tmp_path / "mujoco_results.json").read_text())
    runs = {r["library"]: r for r in saved["results"]}
    assert set(runs) == {"ddpgx", "sbx"}
    for run in runs.values():
        assert run["eval_timesteps"] == [100, 200] and len(run["eval_returns"]) == 2
        assert run["train_seconds"] > 0 and np.isfinite(run["final_eval"])
        # each interval's training time is recorded, and together they are the run's training time
        assert len(run["chunk_seconds"]) == 2 and min(run["chunk_seconds"]) > 0
        assert sum(run["chunk_seconds"]) == pytest.approx(run["train_seconds"], rel=0.05)
    # the two runs took turns, one interval each, in lockstep
    (pair,) = saved["schedule"]
    first, second = (library for library, _ in pair["turns"][:2])
    assert {first, second} == {"ddpgx", "sbx"}
    assert pair["turns"] == [[first, 100], [second, 100], [first, 200], [second, 200]]
    assert "median of the 2 per-interval ratios" in done.stdout
    assert (tmp_path / "mujoco_Hopper-v5.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_mujoco_benchmark_takes_turns_without_sbx(tmp_path):
    """ddpgx alone (as in CI, where sbx is not installed): the run still trains one interval per turn, and a last
    interval that ends with training rather than at an evaluation (250 = 100 + 100 + 50) is a turn of its own."""
    command = [sys.executable, os.path.join(ROOT, "benchmarks", "mujoco.py"), "--tasks", "Hopper-v5", "--timesteps",
               "250", "--seeds", "0", "--eval-interval", "100", "--eval-episodes", "1", "--libraries", "ddpgx",
               "--out", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    saved = json.loads((tmp_path / "mujoco_results.json").read_text())
    (run,) = saved["results"]
    assert run["library"] == "ddpgx" and run["eval_timesteps"] == [100, 200]
    assert len(run["chunk_seconds"]) == 3 and min(run["chunk_seconds"]) > 0
    assert sum(run["chunk_seconds"]) == pytest.approx(run["train_seconds"], rel=0.05)
    assert saved["schedule"][0]["turns"] == [["ddpgx", 100], ["ddpgx", 200], ["ddpgx", 250]]
    assert "| Hopper-v5 | ddpgx | 1 |" in done.stdout
