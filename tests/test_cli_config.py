"""The run configuration of ``ddpgx train`` and the presets: resolution order, flags, files, errors (no training)."""

from __future__ import annotations

import json

import pytest

from ddpgx import __main__ as cli
from ddpgx.cli import runner
from ddpgx.cli import config as config_lib
from ddpgx.cli import presets


def test_defaults_are_skrls_pendulum_example():
    config = config_lib.resolve({})
    assert config["env.id"] == "Pendulum-v1" and config["run.timesteps"] == 15_000
    assert config["memory.memory_size"] == 15_000 and config["networks.policy_hidden_sizes"] == [400, 300]
    cfg = config["cfg"]
    assert (cfg["batch_size"], cfg["random_timesteps"], cfg["learning_starts"]) == (100, 100, 100)
    assert cfg["exploration_noise"] == "OrnsteinUhlenbeckNoise"
    assert cfg["exploration_noise_kwargs"] == {"theta": 0.15, "sigma": 0.1, "base_scale": 1.0}
    # the same values the benchmarks give skrl (runner.skrl_example_cfg reads them from here)
    example = runner.skrl_example_cfg()
    assert (example.batch_size, example.learning_starts, example.polyak) == (100, 100, 0.005)


def test_every_ddpg_cfg_field_is_a_key_and_translates_to_each_backend():
    import dataclasses

    from ddpgx import DDPG_CFG, ExperimentCfg

    keys = set(config_lib.valid_keys())
    assert {f"cfg.{f.name}" for f in dataclasses.fields(DDPG_CFG) if f.name != "experiment"} <= keys
    assert {f"cfg.experiment.{f.name}" for f in dataclasses.fields(ExperimentCfg)} <= keys
    config = config_lib.resolve({"cfg.batch_size": 256, "cfg.exploration_noise": "GaussianNoise",
                                 "cfg.exploration_noise_kwargs": {"std": 0.3},
                                 "cfg.observation_preprocessor": "RunningStandardScaler",
                                 "cfg.learning_rate": [1e-4, 1e-3], "cfg.rewards_shaper": "operator:neg"})
    cfg = config_lib.build_ddpg_cfg(config["cfg"], "jax")
    from ddpgx.noises import GaussianNoise
    from ddpgx.preprocessors import RunningStandardScaler

    assert cfg.batch_size == 256 and cfg.exploration_noise is GaussianNoise and cfg.learning_rate == (1e-4, 1e-3)
    assert cfg.observation_preprocessor is RunningStandardScaler and cfg.rewards_shaper(3) == -3
    torch_cfg = config_lib.build_ddpg_cfg(config["cfg"], "torch")
    from ddpgx_torch import agent as torch_agent
    from ddpgx_torch import noises as torch_noises

    assert isinstance(torch_cfg, torch_agent.DDPG_CFG) and torch_cfg.exploration_noise is torch_noises.GaussianNoise


def test_unknown_keys_and_bad_values_are_refused_with_what_is_valid():
    with pytest.raises(ValueError, match=r"unknown configuration key 'cfg.batchsize': valid keys of cfg are .*"
                                         r"cfg\.batch_size"):
        config_lib.resolve({"cfg.batchsize": 32})
    with pytest.raises(ValueError, match="unknown configuration key 'nets.x': valid keys are env, evaluation, memory, networks, run, cfg"):
        config_lib.resolve({"nets.x": 1})
    with pytest.raises(ValueError, match=r"cfg.batch_size=0 is invalid: expected an integer >= 1"):
        config_lib.resolve({"cfg.batch_size": 0})
    with pytest.raises(ValueError, match=r"env.vector_mode='fast' is invalid: expected 'sync' or 'async'"):
        config_lib.resolve({"env.vector_mode": "fast"})
    with pytest.raises(ValueError, match=r"networks.policy_hidden_sizes=\[64, 0\] is invalid"):
        config_lib.resolve({"networks.policy_hidden_sizes": [64, 0]})
    with pytest.raises(ValueError, match="cfg.exploration_noise='Pink' is invalid: expected one of GaussianNoise"):
        config_lib.resolve({"cfg.exploration_noise": "Pink"})
    with pytest.raises(ValueError, match="cfg.rewards_shaper='nowhere:fn' could not be imported"):
        config_lib.build_ddpg_cfg(config_lib.resolve({"cfg.rewards_shaper": "nowhere:fn"})["cfg"], "jax")
    with pytest.raises(ValueError, match="run.preset='Mars-v0' is invalid: expected 'auto', 'none' or one of"):
        runner.plan({"run.preset": "Mars-v0"})


def test_assignments_parse_python_literals_and_bare_strings():
    assert config_lib.parse_assignment("cfg.batch_size=256") == ("cfg.batch_size", 256)
    assert config_lib.parse_assignment("cfg.learning_rate=1e-4") == ("cfg.learning_rate", 1e-4)
    assert config_lib.parse_assignment("networks.policy_hidden_sizes=[64, 64]") == ("networks.policy_hidden_sizes",
                                                                                   [64, 64])
    assert config_lib.parse_assignment("cfg.exploration_noise=GaussianNoise") == ("cfg.exploration_noise",
                                                                                  "GaussianNoise")
    assert config_lib.parse_assignment("cfg.exploration_noise=none") == ("cfg.exploration_noise", None)
    assert config_lib.parse_assignment("env.kwargs={'g': 9.81}") == ("env.kwargs", {"g": 9.81})
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        config_lib.parse_assignment("cfg.batch_size")


def test_presets_are_chosen_by_env_id_and_overridden_by_flags(capsys):
    name, settings = presets.preset_for("HalfCheetah-v5")
    assert name == "HalfCheetah-v5" and settings["cfg.random_timesteps"] == 10_000
    assert presets.preset_for("Hopper-v5")[1]["cfg.random_timesteps"] == 1_000
    assert presets.preset_for("Humanoid-v5")[1]["cfg.exploration_noise_kwargs"]["std"] == pytest.approx(0.04)
    assert set(presets.MUJOCO) == {f"{n}-v5" for n in ("HalfCheetah", "Hopper", "Walker2d", "Ant", "Humanoid",
                                                        "InvertedPendulum", "InvertedDoublePendulum", "Reacher",
                                                        "Swimmer")}
    assert presets.preset_for("my_pkg:MyEnv-v0") == ("none", {})
    plan = runner.plan({"env.id": "MountainCarContinuous-v0", "cfg.batch_size": 64})
    assert plan.preset == "MountainCarContinuous-v0"
    assert plan.config["cfg.batch_size"] == 64  # the flag wins over the preset
    assert plan.config["cfg.exploration_noise_kwargs"] == {"theta": 0.0015, "sigma": 0.05, "base_scale": 1.0}
    assert runner.plan({"env.id": "MountainCarContinuous-v0", "run.preset": "none"}).config["cfg.batch_size"] == 100

    assert cli.main(["train", "--env", "Hopper-v5", "--set", "cfg.batch_size=256", "--timesteps", "5000",
                     "--show-config"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["preset"] == "Hopper-v5"
    assert shown["config"]["cfg"]["batch_size"] == 256 and shown["config"]["cfg"]["learning_starts"] == 1_000
    # the preset's replay of 1e6 is capped at what a 5,000-step run collects; given explicitly, it is kept
    assert shown["config"]["run"]["timesteps"] == 5000 and shown["config"]["memory"]["memory_size"] == 5000
    assert runner.plan({"env.id": "Hopper-v5", "run.timesteps": 5000, "memory.memory_size": 10**6}
                       ).config["memory.memory_size"] == 10**6
    assert runner.plan({"env.id": "Hopper-v5"}).config["memory.memory_size"] == 10**6


def test_config_file_then_flags_then_set(tmp_path, capsys):
    path = tmp_path / "run.toml"
    path.write_text('[env]\nid = "MountainCarContinuous-v0"\n[cfg]\nbatch_size = 32\nexploration_noise = "none"\n'
                    '[cfg.experiment]\nwrite_interval = 0\n[networks]\npolicy_hidden_sizes = [64, 64]\n')
    args = ["train", "--config", str(path), "--show-config", "--set", "networks.critic_hidden_sizes=[32]"]
    assert cli.main(args + ["--timesteps", "1000"]) == 0
    config = json.loads(capsys.readouterr().out)["config"]
    assert config["env"]["id"] == "MountainCarContinuous-v0" and config["cfg"]["batch_size"] == 32
    assert config["cfg"]["exploration_noise"] is None and config["cfg"]["experiment"]["write_interval"] == 0
    assert config["networks"] == {"policy_hidden_sizes": [64, 64], "critic_hidden_sizes": [32]}
    assert config["run"]["timesteps"] == 1000
    assert cli.main(args + ["--set", "cfg.batch_size=8"]) == 0  # --set comes last
    assert json.loads(capsys.readouterr().out)["config"]["cfg"]["batch_size"] == 8
    path.write_text("[cfg]\nbatchsize = 32\n")
    assert cli.main(["train", "--config", str(path), "--show-config"]) == 2
    assert "unknown configuration key 'cfg.batchsize'" in capsys.readouterr().err
    assert cli.main(["train", "--config", str(tmp_path / "missing.toml")]) == 2
    assert "is not a file" in capsys.readouterr().err
