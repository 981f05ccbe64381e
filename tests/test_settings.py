"""``from ddpgx import config, logger`` (and ``ddpgx_torch``'s) as skrl scripts use ``from skrl import config, logger``:
the lines of skrl's examples run, the default device and PRNG key they set reach the agent and models, and bad
values raise naming them."""

from __future__ import annotations

import logging
import subprocess
import sys

import gymnasium
import jax
import numpy as np
import pytest

import ddpgx
from ddpgx import models, settings


@pytest.fixture(autouse=True)
def fresh_jax_config(monkeypatch):
    """Each test starts from the defaults and leaves them as it found them (config is process-wide)."""
    monkeypatch.setattr(settings, "config", settings.Config(settings.JaxConfig()))
    monkeypatch.setattr(ddpgx, "config", settings.config)


def test_skrl_example_lines_run():
    """The lines of skrl's JAX examples, in a fresh interpreter: what the user sees on standard error."""
    script = ("from ddpgx import config, logger\n"
              "config.jax.backend = 'jax'\n"
              "config.jax.backend = 'numpy'\n"
              "config.jax.backend = 'numpy'\n"
              "logger.info('training starts')\n"
              "assert config.jax.backend == 'numpy'\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines.count("[ddpgx:INFO] config.jax.backend = 'numpy' changes nothing: ddpgx always computes with JAX "
                       "arrays") == 1, done.stderr
    assert "[ddpgx:INFO] training starts" in lines
    assert isinstance(ddpgx.logger, logging.Logger) and ddpgx.logger.name == "ddpgx"


def test_bad_backend_raises_naming_the_value():
    with pytest.raises(ValueError, match=r"config.jax.backend='torch' is invalid: expected one of \('jax', 'numpy'\)"):
        ddpgx.config.jax.backend = "torch"
    assert ddpgx.config.jax.backend == "jax"


def test_key_seeds_models_and_agents_like_set_seed():
    config = ddpgx.config
    assert jax.random.key_data(config.jax.key).tolist() == jax.random.key_data(jax.random.key(0)).tolist()
    config.jax.key = 7
    expected = jax.random.key_data(jax.random.fold_in(jax.random.key(7), 3))
    np.testing.assert_array_equal(jax.random.key_data(models.default_key(3)), expected)
    assert models.set_seed(9) == 9
    np.testing.assert_array_equal(jax.random.key_data(config.jax.key), jax.random.key_data(jax.random.key(9)))
    # skrl keeps a legacy uint32[2] key; a typed key is taken as it is
    config.jax.key = np.asarray(jax.random.PRNGKey(11))
    np.testing.assert_array_equal(jax.random.key_data(config.jax.key), np.asarray(jax.random.PRNGKey(11)))
    typed = jax.random.key(12)
    config.jax.key = typed
    assert config.jax.key is typed
    np.testing.assert_array_equal(jax.random.key_data(models.default_key(1)),
                                  jax.random.key_data(jax.random.fold_in(typed, 1)))


@pytest.mark.parametrize("value", [-1, 1.5, "0", np.zeros(3, np.uint32), True])
def test_bad_key_raises_naming_the_value(value):
    with pytest.raises(ValueError, match=r"config.jax.key=.* is invalid: expected a seed >= 0"):
        ddpgx.config.jax.key = value


def test_device_is_the_default_of_agents_and_parse_device():
    config = ddpgx.config
    assert config.jax.device == jax.devices()[0]
    config.jax.device = "cpu"
    assert config.jax.parse_device(None) == jax.devices("cpu")[0]
    assert config.jax.parse_device("cpu:0") == jax.devices("cpu")[0]
    with pytest.raises(ValueError, match=r"device='cpu:99' is not available here"):
        config.jax.device = "cpu:99"
    with pytest.raises(ValueError, match=r"device=3 is invalid: expected None, a jax.Device or a string"):
        config.jax.parse_device(3)
    assert config.jax.device == jax.devices("cpu")[0]  # a refused value leaves the setting as it was


def test_agent_takes_the_configured_device_and_key():
    from ddpgx.core import networks
    obs = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
    act = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
    nets = {"policy": networks.DeterministicPolicy((-2.0,), (2.0,), (1,), hidden_sizes=(8,))}

    def policy_params(seed):
        ddpgx.config.jax.key = seed
        agent = ddpgx.DDPG(models=nets, observation_space=obs, action_space=act)
        assert agent.device == ddpgx.config.jax.device
        return jax.tree.leaves(agent.train_state.policy_params)

    first, same, other = policy_params(5), policy_params(5), policy_params(6)
    for a, b in zip(first, same, strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_distributed_fields_read_the_launcher_variables(monkeypatch):
    config = ddpgx.config
    assert (config.jax.rank, config.jax.world_size, config.jax.is_distributed) == (0, 1, False)
    monkeypatch.setenv("DDPGX_PROCESS_ID", "1")
    monkeypatch.setenv("DDPGX_NUM_PROCESSES", "2")
    monkeypatch.setenv("DDPGX_COORDINATOR_ADDRESS", "127.0.0.1:1234")
    assert (config.jax.rank, config.jax.world_size, config.jax.is_distributed) == (1, 2, True)
    assert config.jax.coordinator_address == "127.0.0.1:1234"
    monkeypatch.setenv("DDPGX_PROCESS_ID", "one")
    with pytest.raises(ValueError, match=r"DDPGX_PROCESS_ID='one' is invalid: expected an integer"):
        _ = config.jax.rank


def test_torch_config_is_ddpgx_torch_s():
    with pytest.raises(AttributeError, match=r"from ddpgx_torch import config"):
        _ = ddpgx.config.torch


def test_torch_twin(monkeypatch, caplog):
    torch = pytest.importorskip("torch")
    import ddpgx_torch
    from ddpgx_torch import settings as torch_settings

    monkeypatch.setattr(torch_settings, "config",
                        settings.Config(ddpgx.config.jax, torch_settings.TorchConfig()))
    from ddpgx_torch import logger
    from ddpgx_torch.memories import RandomMemory
    from ddpgx_torch.models import set_seed

    config = torch_settings.config
    assert config.jax is ddpgx.config.jax
    assert config.torch.device == torch.device("cpu")
    config.torch.device = "cpu"
    assert RandomMemory(8).device == torch.device("cpu")
    with pytest.raises(ValueError, match=r"device='nonsense' is invalid"):
        config.torch.device = "nonsense"
    with pytest.raises(ValueError, match=r"device=1.5 is invalid: expected None, a torch.device or a string"):
        config.torch.parse_device(1.5)
    assert set_seed(3) == 3 and config.torch.key == 3
    with pytest.raises(ValueError, match=r"config.torch.key=-2 is invalid"):
        config.torch.key = -2
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (config.torch.rank, config.torch.local_rank, config.torch.world_size, config.torch.is_distributed) == \
        (1, 1, 4, True)
    caplog.clear()  # (set_seed above logged its seed)
    with caplog.at_level(logging.WARNING, logger="ddpgx_torch"):
        logger.warning("hello")
    assert [(r.name, r.levelname, r.getMessage()) for r in caplog.records] == [("ddpgx_torch", "WARNING", "hello")]
    assert ddpgx_torch.logger is logger and logger.name == "ddpgx_torch"


@pytest.mark.parametrize("value, flushed", [(None, True), ("1", True), ("0", False)])
def test_importing_ddpgx_torch_flushes_denormals_unless_told_not_to(value, flushed):
    """As XLA's CPU programs do (checked in the same interpreter); DDPGX_TORCH_FLUSH_DENORMAL=0 leaves them."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "DDPGX_TORCH_FLUSH_DENORMAL"}
    if value is not None:
        env["DDPGX_TORCH_FLUSH_DENORMAL"] = value
    script = ("import torch, ddpgx_torch, jax, jax.numpy as jnp, numpy as np\n"
              "tiny = np.float32(1e-39)\n"
              "print(float(torch.tensor(tiny) * 2.0), float(jax.jit(lambda x: x * 2.0)(jnp.asarray(tiny))))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    torch_value, jax_value = map(float, done.stdout.split())
    assert (torch_value == 0.0) is flushed and (flushed or torch_value > 1.9e-39) and jax_value == 0.0


def test_a_bad_flush_denormal_setting_raises_naming_it(monkeypatch):
    from ddpgx_torch import settings as torch_settings

    monkeypatch.setenv("DDPGX_TORCH_FLUSH_DENORMAL", "yes")
    with pytest.raises(ValueError, match="DDPGX_TORCH_FLUSH_DENORMAL='yes' is invalid"):
        torch_settings.flush_denormals()
