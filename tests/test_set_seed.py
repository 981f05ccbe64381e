"""``set_seed`` of both backends behaves like skrl's ``skrl.utils.set_seed``: ``set_seed()``/``set_seed(None)`` picks
a seed and logs it, ``set_seed(seed, deterministic)``, Python's ``random`` and NumPy seeded too, the seed returned."""

from __future__ import annotations

import logging
import random

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ddpgx.models  # noqa: E402
import ddpgx_torch.models  # noqa: E402


@pytest.fixture(autouse=True)
def _restore_global_state(monkeypatch):
    """set_seed writes process-wide settings; put them back after each test."""
    for name in ("PYTHONHASHSEED", "XLA_FLAGS", "CUBLAS_WORKSPACE_CONFIG"):
        monkeypatch.setenv(name, "")
    flags = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.are_deterministic_algorithms_enabled())
    jax_seed = ddpgx.settings.config.jax.key
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = flags[:2]
    torch.use_deterministic_algorithms(flags[2])
    ddpgx.settings.config.jax.key = jax_seed


def _draws():
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def _expected_draws(seed):
    """What the three global generators give after seeding them directly (the independent reference)."""
    return (random.Random(seed).random(), float(np.random.RandomState(seed).rand()),
            float(torch.rand((), generator=torch.Generator().manual_seed(seed))))


@pytest.mark.parametrize("module, logger_name", [(ddpgx_torch.models, "ddpgx_torch"), (ddpgx.models, "ddpgx")])
def test_set_seed_none_picks_logs_and_returns_a_seed_that_seeds_everything(module, logger_name, caplog):
    with caplog.at_level(logging.INFO, logger=logger_name):
        seed = module.set_seed()  # the examples' call: `set_seed()  # e.g. set_seed(42) for fixed seed`
    assert isinstance(seed, int) and 0 <= seed < 2**31
    assert f"Seed: {seed}" in [r.getMessage() for r in caplog.records if r.name == logger_name]
    assert _draws() == _expected_draws(seed)  # random, NumPy and torch (already imported) all seeded
    other = module.set_seed(None)
    assert other != seed  # a fresh draw (equal with probability 2**-31)


@pytest.mark.parametrize("module", [ddpgx_torch.models, ddpgx.models])
def test_set_seed_with_a_fixed_seed_repeats_the_draws(module):
    assert module.set_seed(1234) == 1234
    first = _draws()
    assert module.set_seed(np.int64(1234)) == 1234
    assert _draws() == first == _expected_draws(1234)


def test_jax_set_seed_sets_the_models_and_agents_default_key():
    ddpgx.models.set_seed(99)
    expected = jax.random.fold_in(jax.random.key(99), 3)
    assert bool((jax.random.key_data(ddpgx.models.default_key(3)) == jax.random.key_data(expected)).all())


def test_torch_set_seed_deterministic_turns_on_torch_deterministic_algorithms(caplog):
    with caplog.at_level(logging.INFO, logger="ddpgx_torch"):
        assert ddpgx_torch.models.set_seed(5, True) == 5
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert any(r.levelno == logging.WARNING and "deterministic" in r.getMessage() for r in caplog.records)
    ddpgx_torch.models.set_seed(5, deterministic=False)
    assert torch.backends.cudnn.benchmark and not torch.backends.cudnn.deterministic  # skrl's default


def test_jax_set_seed_deterministic_asks_xla_for_deterministic_ops(caplog):
    import os

    with caplog.at_level(logging.WARNING, logger="ddpgx"):
        ddpgx.models.set_seed(5, deterministic=True)
    assert "--xla_gpu_deterministic_ops=true" in os.environ["XLA_FLAGS"]
    assert torch.are_deterministic_algorithms_enabled()  # torch is imported here, so it is set too
    assert any("eterministic" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("module", [ddpgx_torch.models, ddpgx.models])
@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "3", True])
def test_set_seed_rejects_bad_seeds(module, bad):
    with pytest.raises(ValueError, match=r"seed=.* is invalid: expected an integer in \[0, 2\*\*32\) or None"):
        module.set_seed(bad)


@pytest.mark.parametrize("module", [ddpgx_torch.models, ddpgx.models])
def test_set_seed_rejects_a_non_bool_deterministic(module):
    with pytest.raises(ValueError, match="deterministic='yes' is invalid"):
        module.set_seed(1, deterministic="yes")
