"""Bad inputs raise ValueError whose message names the offending value."""

from __future__ import annotations

import math
import re

import gymnasium
import jax
import numpy as np
import optax
import pytest

import ddpgx
from ddpgx.core import networks
from ddpgx.core.types import Transition

Box, Dict, Discrete, MultiDiscrete = (gymnasium.spaces.Box, gymnasium.spaces.Dict, gymnasium.spaces.Discrete,
                                      gymnasium.spaces.MultiDiscrete)
OBS_SPACE = Box(-np.inf, np.inf, (3,), np.float32)
ACT_SPACE = Box(-1.0, 1.0, (1,), np.float32)
STATE_SPACE = Box(-np.inf, np.inf, (2,), np.float32)


def small_state(config=None, **kwargs):
    config = config or ddpgx.DDPGConfig(batch_size=8)
    kwargs.setdefault("policy", networks.DeterministicPolicy((-1.0,), (1.0,), (1,), hidden_sizes=(16,)))
    kwargs.setdefault("critic", networks.QFunction(hidden_sizes=(16,)))
    return ddpgx.init(jax.random.key(0), config, kwargs.pop("observation_space", OBS_SPACE),
                      kwargs.pop("action_space", ACT_SPACE), **kwargs)


def value(name, v):
    """A regex for ``name=<repr of v>`` as the messages write it."""
    return re.escape(f"{name}={v!r}")


# --------------------------------------------------------------------------------------------- spaces


@pytest.mark.parametrize("space", [Discrete(3), MultiDiscrete([3, 4])], ids=repr)
def test_discrete_action_spaces_rejected(space):
    # The message says "bounded continuous gymnasium Box" for non-Box spaces, "bounded Box" for unbounded ones.
    with pytest.raises(ValueError, match=re.escape(f"action_space={space!r} is not supported") +
                       r".*bounded (continuous gymnasium )?Box"):
        small_state(action_space=space)


@pytest.mark.parametrize("space", [
    Box(-np.inf, np.inf, (2,), np.float32),
    Box(np.array([-1.0, -np.inf], np.float32), np.array([1.0, 1.0], np.float32)),
    Box(np.array([0.0, 0.0], np.float32), np.array([1.0, np.inf], np.float32)),
], ids=["unbounded", "low-inf", "high-inf"])
def test_unbounded_action_space_rejected(space):
    with pytest.raises(ValueError, match=re.escape(f"action_space={space!r} is unbounded") + r".*bounded Box"):
        small_state(action_space=space, policy=None)


def test_action_space_with_empty_interval_rejected():
    space = Box(np.array([1.0, 0.0], np.float32), np.array([1.0, 1.0], np.float32))
    with pytest.raises(ValueError, match=re.escape(f"action_space={space!r} has low >= high")):
        small_state(action_space=space, policy=None)


@pytest.mark.parametrize("space, name", [
    (Discrete(5), "observation_space=Discrete(5)"),
    (MultiDiscrete([2, 3]), "observation_space=MultiDiscrete([2 3])"),
    (gymnasium.spaces.MultiBinary(4), "observation_space=MultiBinary(4)"),
    (gymnasium.spaces.Tuple([Box(0.0, 1.0, (2,))]), "observation_space=Tuple("),
    (Dict({"pos": Box(0.0, 1.0, (2,)), "mode": Discrete(3)}), "observation_space['mode']=Discrete(3)"),
    (Dict({"a": Box(0.0, 1.0, (2,)), "b": Dict({"c": MultiDiscrete([2])})}), "observation_space['b/c']=MultiDiscrete"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_unsupported_observation_spaces_rejected(space, name):
    with pytest.raises(ValueError, match=re.escape(name) + r".* not supported"):
        small_state(observation_space=space)


def test_empty_dict_observation_space_rejected():
    with pytest.raises(ValueError, match=r"observation_space is an empty Dict space Dict\(\)"):
        small_state(observation_space=Dict({}))


def test_unsupported_state_space_rejected():
    with pytest.raises(ValueError, match=re.escape("state_space=Discrete(4) is not supported")):
        small_state(state_space=Discrete(4))


# --------------------------------------------------------------------------------------------- DDPGConfig


def _config_classes() -> list:
    """Both backends' configurations: their shared fields are checked by one function
    (``ddpgx.core.validation.check_config``), with the same messages."""
    try:
        import ddpgx_torch
    except ImportError:  # torch not installed
        return [ddpgx.DDPGConfig]
    return [ddpgx.DDPGConfig, ddpgx_torch.DDPGConfig]


CONFIG_CLASSES = _config_classes()


@pytest.mark.parametrize("name, bad", [
    ("polyak", -0.1), ("polyak", 1.5), ("polyak", math.nan), ("polyak", math.inf), ("polyak", "0.5"),
    ("discount_factor", -0.01), ("discount_factor", 1.01), ("discount_factor", math.nan),
    ("batch_size", 0), ("batch_size", -1), ("batch_size", 2.5), ("batch_size", True),
    ("gradient_steps", 0), ("gradient_steps", -2), ("gradient_steps", 1.0),
    ("random_timesteps", -1), ("random_timesteps", 0.5),
    ("grad_norm_clip", math.nan),
    ("preprocessor_clip", 0.0), ("preprocessor_epsilon", -1e-8),
    ("observation_preprocessor", 1), ("state_preprocessor", "yes"),
    ("exploration_scheduler", 0.5),
])
@pytest.mark.parametrize("config_class", CONFIG_CLASSES)
def test_config_rejects_bad_value(name, bad, config_class):
    with pytest.raises(ValueError, match=value(name, bad) + " is invalid"):
        config_class(**{name: bad})


@pytest.mark.parametrize("bad, message", [
    (0.0, "policy learning_rate=0.0"),
    (-1e-3, "policy learning_rate=-0.001"),
    (math.nan, "policy learning_rate=nan"),
    ((1e-3, 0.0), "critic learning_rate=0.0"),
    ((-1.0, 1e-3), "policy learning_rate=-1.0"),
    ((1e-3, 1e-3, 1e-3), "learning_rate=(0.001, 0.001, 0.001)"),
    ((1e-3,), "learning_rate=(0.001,)"),
])
@pytest.mark.parametrize("config_class", CONFIG_CLASSES)
def test_config_rejects_bad_learning_rate(bad, message, config_class):
    with pytest.raises(ValueError, match=re.escape(message) + " is invalid"):
        config_class(learning_rate=bad)


@pytest.mark.parametrize("config_class", CONFIG_CLASSES)
def test_config_stores_a_learning_rate_pair_as_a_hashable_tuple(config_class):
    config = config_class(learning_rate=[1e-3, 2e-3])
    assert config.learning_rate == (1e-3, 2e-3) and config.learning_rates == (1e-3, 2e-3)
    assert config.replace(polyak=0.1).learning_rate == (1e-3, 2e-3)
    hash(config)


def test_only_the_jax_config_takes_a_learning_rate_schedule():
    schedule = optax.linear_schedule(1e-3, 1e-4, 1000)
    assert ddpgx.DDPGConfig(learning_rate=schedule).learning_rates == (schedule, schedule)
    torch_config = pytest.importorskip("ddpgx_torch").DDPGConfig
    with pytest.raises(ValueError, match=r"policy learning_rate=<function .*> is invalid: expected a finite number"):
        torch_config(learning_rate=schedule)


def test_config_accepts_good_values():
    config = ddpgx.DDPGConfig(polyak=1.0, discount_factor=0.0, batch_size=np.int64(4), learning_rate=[1e-3, 2e-3],
                              random_timesteps=0, grad_norm_clip=-1.0,
                              exploration_scheduler=lambda t, T: 1.0)
    assert config.learning_rate == (1e-3, 2e-3) and config.learning_rates == (1e-3, 2e-3)
    hash(config)  # still hashable (a static part of the train state)
    with pytest.raises(ValueError, match=value("polyak", 2.0)):
        config.replace(polyak=2.0)  # replace validates too


@pytest.mark.parametrize("bad", ["gaussian", 0.1, {"std": 0.1}, ddpgx.GaussianNoise], ids=repr)
def test_config_rejects_bad_exploration_noise(bad):
    with pytest.raises(ValueError, match=value("exploration_noise", bad) + " is not supported"):
        ddpgx.DDPGConfig(exploration_noise=bad)


@pytest.mark.parametrize("make, message", [
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(theta=0), "OrnsteinUhlenbeckNoise.theta=0 is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(theta=1.5), "OrnsteinUhlenbeckNoise.theta=1.5 is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(theta=-0.1), "OrnsteinUhlenbeckNoise.theta=-0.1 is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(theta=math.nan), "OrnsteinUhlenbeckNoise.theta=nan is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(sigma=-0.2), "OrnsteinUhlenbeckNoise.sigma=-0.2 is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(base_scale=-1.0), "OrnsteinUhlenbeckNoise.base_scale=-1.0 is invalid"),
    (lambda: ddpgx.OrnsteinUhlenbeckNoise(std=-1.0), "OrnsteinUhlenbeckNoise.std=-1.0 is invalid"),
    (lambda: ddpgx.GaussianNoise(std=-1), "GaussianNoise.std=-1 is invalid"),
    (lambda: ddpgx.GaussianNoise(std=math.nan), "GaussianNoise.std=nan is invalid"),
])
def test_noise_rejects_bad_parameters(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


# --------------------------------------------------------------------------------------------- init / act


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_init_rejects_bad_num_envs(bad):
    with pytest.raises(ValueError, match=value("num_envs", bad) + " is invalid"):
        small_state(num_envs=bad)


def test_init_rejects_non_config():
    with pytest.raises(ValueError, match=re.escape("config={'batch_size': 8} is invalid")):
        ddpgx.init(jax.random.key(0), {"batch_size": 8}, OBS_SPACE, ACT_SPACE)


@pytest.fixture(scope="module")
def acting_state():
    return small_state(ddpgx.DDPGConfig(exploration_noise=ddpgx.OrnsteinUhlenbeckNoise()), num_envs=2)


@pytest.mark.parametrize("shape", [(2, 4), (2, 2), (2, 3, 1), (3, 2)])
def test_act_rejects_wrong_trailing_shape(acting_state, shape):
    with pytest.raises(ValueError, match=re.escape(f"observations has shape {shape}, expected (*batch, 3)")):
        ddpgx.act(acting_state, np.zeros(shape, np.float32))
    with pytest.raises(ValueError, match=re.escape(f"observations has shape {shape}, expected (*batch, 3)")):
        ddpgx.act(acting_state, np.zeros(shape, np.float32), explore=False)


def test_act_rejects_missing_or_extra_batch_dimension(acting_state):
    with pytest.raises(ValueError, match=re.escape("got flattened shape (3,)")):
        ddpgx.act(acting_state, np.zeros(3, np.float32))
    with pytest.raises(ValueError, match=re.escape("got flattened shape (2, 2, 3)")):
        ddpgx.act(acting_state, np.zeros((2, 2, 3), np.float32))


def test_act_rejects_other_number_of_envs_for_ou(acting_state):
    with pytest.raises(ValueError, match=re.escape("state has shape (2, 1) but actions have shape (5, 1)")):
        ddpgx.act(acting_state, np.zeros((5, 3), np.float32))


def test_act_rejects_bad_dict_observations():
    space = Dict({"pos": Box(-1.0, 1.0, (2,)), "vel": Box(-1.0, 1.0, (1,))})
    ts = small_state(observation_space=space)
    with pytest.raises(ValueError, match=re.escape("observations has no entry 'vel'")):
        ddpgx.act(ts, {"pos": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=re.escape("observations['vel'] has shape (2, 2), expected (*batch, 1)")):
        ddpgx.act(ts, {"pos": np.zeros((2, 2), np.float32), "vel": np.zeros((2, 2), np.float32)})
    with pytest.raises(ValueError, match=re.escape("observations entries disagree on batch shape: (2,) vs (3,)")):
        ddpgx.act(ts, {"pos": np.zeros((2, 2), np.float32), "vel": np.zeros((3, 1), np.float32)})
    with pytest.raises(ValueError, match=re.escape("observations has shape (2, 4), expected (*batch, 3)")):
        ddpgx.act(ts, np.zeros((2, 4), np.float32))  # a flat array for a Dict space needs the flat size


# --------------------------------------------------------------------------------------------- update


def batch_of(n=8, lead=None, obs=3, act=1):
    lead = (n,) if lead is None else lead
    rng = np.random.default_rng(0)
    return Transition(rng.normal(size=lead + (obs,)).astype(np.float32),
                      rng.uniform(-1, 1, lead + (act,)).astype(np.float32), rng.normal(size=lead).astype(np.float32),
                      rng.normal(size=lead + (obs,)).astype(np.float32), np.zeros(lead, bool))


@pytest.fixture
def train_state():
    return small_state()


@pytest.mark.parametrize("field, bad, message", [
    ("actions", np.zeros((8, 2), np.float32), "batch.actions has shape (8, 2), expected (8, 1)"),
    ("actions", np.zeros((7, 1), np.float32), "batch.actions has shape (7, 1), expected (8, 1)"),
    ("rewards", np.zeros(7, np.float32), "batch.rewards has shape (7,), expected (8,) or (8, 1)"),
    ("rewards", np.zeros((8, 2), np.float32), "batch.rewards has shape (8, 2), expected (8,) or (8, 1)"),
    ("terminated", np.zeros((8, 3), bool), "batch.terminated has shape (8, 3), expected (8,) or (8, 1)"),
    ("observations", np.zeros((8, 4), np.float32), "batch.observations has shape (8, 4), expected (*batch, 3)"),
    ("next_observations", np.zeros((8, 2), np.float32),
     "batch.next_observations has shape (8, 2), expected (*batch, 3)"),
    ("next_observations", np.zeros((7, 3), np.float32),
     "batch.next_observations has batch shape (7,), expected (8,)"),
])
def test_update_rejects_mismatched_batch(train_state, field, bad, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ddpgx.update(train_state, batch_of()._replace(**{field: bad}))


def test_update_rejects_states_without_state_space(train_state):
    states = np.zeros((8, 2), np.float32)
    with pytest.raises(ValueError, match="batch has states but the train state was made without a state_space"):
        ddpgx.update(train_state, batch_of()._replace(states=states, next_states=states))


def test_update_rejects_missing_states_with_state_space():
    ts = small_state(state_space=STATE_SPACE)
    with pytest.raises(ValueError, match="made with a state_space, so the batch needs states and next_states"):
        ddpgx.update(ts, batch_of())
    with pytest.raises(ValueError, match=re.escape("batch.next_states has shape (8, 5), expected (*batch, 2)")):
        ddpgx.update(ts, batch_of()._replace(states=np.zeros((8, 2), np.float32),
                                             next_states=np.zeros((8, 5), np.float32)))


def test_update_rejects_single_minibatch_for_several_gradient_steps():
    ts = small_state(ddpgx.DDPGConfig(batch_size=8, gradient_steps=2))
    with pytest.raises(ValueError, match=re.escape("gradient_steps=2 needs a batch with leading dimensions [2, "
                                                   "batch_size]") + r".*batch shape \(8,\)"):
        ddpgx.update(ts, batch_of())
    with pytest.raises(ValueError, match=re.escape("the batch has 3 minibatches (leading dimension) but "
                                                   "gradient_steps=2")):
        ddpgx.update(ts, batch_of(lead=(3, 8)))


def test_update_rejects_non_transition(train_state):
    with pytest.raises(ValueError, match="batch must be a ddpgx.Transition, got tuple"):
        ddpgx.update(train_state, tuple(batch_of()))


def test_update_rejects_bad_leading_dimensions(train_state):
    with pytest.raises(ValueError, match=re.escape("batch.observations has batch shape (2, 2, 2)")):
        ddpgx.update(train_state, batch_of(lead=(2, 2, 2)))


def test_integer_box_action_space_rejected():
    with pytest.raises(ValueError, match=r"integer dtype int64: DDPG needs a bounded Box"):
        ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), OBS_SPACE, Box(0, 5, (2,), np.int64))


def test_act_rejects_episode_starts_of_the_wrong_shape():
    obs = np.zeros((2, 3), np.float32)
    ts = small_state(ddpgx.DDPGConfig(exploration_noise=ddpgx.OrnsteinUhlenbeckNoise()), num_envs=2)
    for bad in (np.array([True]), np.array(True), np.zeros((2, 1), bool)):
        with pytest.raises(ValueError, match=rf"episode_starts has shape {re.escape(str(bad.shape))}, expected \(2,\)"):
            ddpgx.act(ts, obs, episode_starts=bad)


def test_scaler_ignores_an_empty_batch():
    stats = ddpgx.scaler.update(ddpgx.scaler.init(2), np.array([[1.0, 2.0], [3.0, 6.0]], np.float32))
    same = ddpgx.scaler.update(stats, np.zeros((0, 2), np.float32))
    for a, b in zip(stats, same, strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_rejects_non_module_networks_and_non_optax_optimizers():
    with pytest.raises(ValueError, match=r"policy='mlp' is invalid: expected a flax.linen.Module"):
        ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), OBS_SPACE, ACT_SPACE, policy="mlp")
    with pytest.raises(ValueError, match=r"critic_optimizer=0.001 is invalid: expected an optax.GradientTransformation"):
        ddpgx.init(jax.random.key(0), ddpgx.DDPGConfig(), OBS_SPACE, ACT_SPACE, critic_optimizer=1e-3)


def test_update_rejects_dict_batch_with_a_missing_entry():
    space = Dict({"pos": Box(-1.0, 1.0, (2,)), "vel": Box(-1.0, 1.0, (1,))})
    ts = small_state(ddpgx.DDPGConfig(batch_size=2), observation_space=space)
    obs = {"pos": np.zeros((2, 2), np.float32)}
    batch = Transition(obs, np.zeros((2, 1), np.float32), np.zeros(2, np.float32), obs, np.zeros(2, bool))
    with pytest.raises(ValueError, match=re.escape("batch.observations has no entry 'vel'")):
        ddpgx.update(ts, batch)


def test_nonfinite_loss_never_reaches_the_parameters():
    import gymnasium

    obs_space = gymnasium.spaces.Box(-1, 1, (3,), np.float32)
    act_space = gymnasium.spaces.Box(-2, 2, (1,), np.float32)
    config = ddpgx.DDPGConfig(batch_size=8, observation_preprocessor=True)
    ts = ddpgx.init(jax.random.key(0), config, obs_space, act_space)
    rng = np.random.default_rng(0)

    def batch(reward_value=None):
        rewards = rng.normal(size=8).astype(np.float32)
        if reward_value is not None:
            rewards[3] = reward_value
        return ddpgx.Transition(rng.normal(size=(8, 3)).astype(np.float32), rng.normal(size=(8, 1)).astype(np.float32),
                                rewards, rng.normal(size=(8, 3)).astype(np.float32), np.zeros(8, bool))

    ts, metrics = ddpgx.update(ts, batch())
    assert float(metrics["skipped_updates"]) == 0.0 and int(ts.step) == 1
    before = jax.tree.map(np.array, (ts.policy_params, ts.critic_params, ts.target_critic_params,
                                     ts.critic_opt_state, ts.observation_stats))
    for bad in (np.nan, np.inf):
        ts, metrics = ddpgx.update(ts, batch(bad))
        assert float(metrics["skipped_updates"]) == 1.0 and int(ts.step) == 1
        after = (ts.policy_params, ts.critic_params, ts.target_critic_params, ts.critic_opt_state,
                 ts.observation_stats)
        for x, y in zip(jax.tree.leaves(before), jax.tree.leaves(after), strict=True):
            np.testing.assert_array_equal(x, y)
    ts, metrics = ddpgx.update(ts, batch())  # training goes on from the last good state
    assert float(metrics["skipped_updates"]) == 0.0 and int(ts.step) == 2
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(ts.critic_params))
