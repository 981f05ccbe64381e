"""Property-based bad input (hypothesis): whatever a user types or passes to the pure functions or the agent, it is
either accepted or rejected with a ``ValueError`` (``KeyError`` for a missing model) whose message names the value;
never another exception from deep inside (an internal traceback)."""

from __future__ import annotations

import dataclasses
import math

import gymnasium
import jax
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import ddpgx  # noqa: E402
from ddpgx.memories import RandomMemory  # noqa: E402

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                    derandomize=True)
OBS = gymnasium.spaces.Box(-1.0, 1.0, (3,), np.float32)
ACT = gymnasium.spaces.Box(-2.0, 2.0, (1,), np.float32)
TALLY = {"tried": 0, "rejected": 0, "internal": 0}

WEIRD = st.sampled_from([None, -1, 0, 1, 2, 1.5, -0.5, math.nan, math.inf, -math.inf, "x", "", [], (), {}, True,
                         False, (1.0, 2.0, 3.0), object(), np.float32(0.5), np.int64(3), 10**12])


def clear(fn, *names):
    """Runs ``fn``; a rejection must be a ValueError/KeyError naming one of ``names``. Returns the result or None."""
    TALLY["tried"] += 1
    try:
        return fn()
    except (ValueError, KeyError) as error:
        TALLY["rejected"] += 1
        message = str(error)
        assert any(name in message for name in names), f"{type(error).__name__}: {message!r} names none of {names}"
        return None
    except Exception as error:  # anything else is an internal traceback reaching the user
        TALLY["internal"] += 1
        raise AssertionError(f"{type(error).__name__} instead of a clear error: {error}") from error


def small_agent(**kwargs):
    return ddpgx.DDPG(models={"policy": None}, observation_space=kwargs.pop("observation_space", OBS),
                      action_space=kwargs.pop("action_space", ACT), **kwargs)


CFG_FIELDS = [f.name for f in dataclasses.fields(ddpgx.DDPG_CFG) if f.name != "experiment"]
EXPERIMENT_FIELDS = [f.name for f in dataclasses.fields(ddpgx.ExperimentCfg)]


@SETTINGS
@given(field=st.sampled_from(CFG_FIELDS), value=WEIRD)
def test_any_cfg_value_is_accepted_or_named(field, value):
    clear(lambda: small_agent(cfg={field: value, "experiment": {"write_interval": 0, "checkpoint_interval": 0}}),
          field)


@SETTINGS
@given(field=st.sampled_from(EXPERIMENT_FIELDS), value=WEIRD)
def test_any_experiment_value_is_accepted_or_named(field, value):
    clear(lambda: small_agent(cfg={"experiment": {field: value}}).init(trainer_cfg={"timesteps": 10}),
          f"experiment.{field}", "wandb")


@SETTINGS
@given(key=st.text(min_size=1, max_size=12))
def test_unknown_cfg_keys_are_named(key):
    if key in CFG_FIELDS or key == "experiment":
        return
    clear(lambda: small_agent(cfg={key: 1}), repr(key))


CORE_FIELDS = [f.name for f in dataclasses.fields(ddpgx.DDPGConfig)]


@SETTINGS
@given(field=st.sampled_from(CORE_FIELDS), value=WEIRD)
def test_any_core_config_value_is_accepted_or_named(field, value):
    clear(lambda: ddpgx.DDPGConfig(**{field: value}), field)


def box(draw):
    shape = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=3)))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int32]))
    low = draw(st.sampled_from([-1.0, -np.inf, 0.0, 5.0]))
    high = draw(st.sampled_from([1.0, np.inf, 0.0, 2.0]))
    if low > high:
        low, high = high, low
    if np.issubdtype(dtype, np.integer):
        low, high = (-1 if not np.isfinite(low) else low), (1 if not np.isfinite(high) else high)
    return gymnasium.spaces.Box(low, high, shape, dtype)


@st.composite
def spaces(draw, depth=0):
    kind = draw(st.sampled_from(["box", "box", "discrete", "multidiscrete", "multibinary", "tuple", "dict"]
                                if depth < 2 else ["box", "discrete"]))
    if kind == "box":
        return box(draw)
    if kind == "discrete":
        return gymnasium.spaces.Discrete(draw(st.integers(1, 5)))
    if kind == "multidiscrete":
        return gymnasium.spaces.MultiDiscrete([2, 3])
    if kind == "multibinary":
        return gymnasium.spaces.MultiBinary(3)
    children = draw(st.lists(spaces(depth + 1), min_size=0, max_size=3))
    if kind == "tuple":
        return gymnasium.spaces.Tuple(children)
    return gymnasium.spaces.Dict({f"k{i}": child for i, child in enumerate(children)})


@SETTINGS
@given(observation_space=spaces(), action_space=spaces())
def test_any_spaces_are_accepted_or_named(observation_space, action_space):
    agent = clear(lambda: small_agent(observation_space=observation_space, action_space=action_space),
                  "observation_space", "action_space", "DDPG needs a bounded Box")
    if agent is not None:  # accepted spaces must work: act on a sample
        obs = observation_space.sample()
        batched = jax.tree.map(lambda x: np.asarray(x)[None], obs)
        actions, _ = agent.act(batched, None, timestep=0, timesteps=1)
        assert np.asarray(actions).shape == (1,) + action_space.shape


@st.composite
def observation_arrays(draw):
    """Arrays of random shapes, dtypes (non-numeric ones included) and values (NaN, inf, huge)."""
    shape = draw(st.lists(st.integers(0, 4), min_size=0, max_size=3))
    dtype = draw(st.sampled_from([np.float32, np.float64, np.int64, np.bool_, np.complex64, object, str]))
    fill = draw(st.sampled_from([0.0, np.nan, np.inf, 1e30]))
    if dtype is str:
        return np.full(shape, "a")
    if dtype is object:
        return np.full(shape, None, dtype=object)
    with np.errstate(invalid="ignore"):  # NaN/inf cast to integers on purpose
        return np.full(shape, fill).astype(dtype)


@SETTINGS
@given(observations=observation_arrays())
def test_any_observations_passed_to_act_are_accepted_or_named(observations):
    agent = small_agent()
    actions = clear(lambda: agent.act(observations, None, timestep=0, timesteps=1), "observations")
    if actions is not None:
        assert np.asarray(actions[0]).shape == (observations.shape[0], 1)
        assert np.all(np.isfinite(np.asarray(actions[0])))


@SETTINGS
@given(field=st.sampled_from(["observations", "actions", "rewards", "next_observations", "terminated",
                              "truncated"]),
       shape=st.lists(st.integers(0, 4), min_size=0, max_size=3), timestep=WEIRD)
def test_any_transition_is_accepted_or_named(field, shape, timestep):
    agent = ddpgx.DDPG(models=dict.fromkeys(("policy", "critic", "target_policy", "target_critic")),
                       memory=RandomMemory(memory_size=8, num_envs=2), observation_space=OBS, action_space=ACT,
                       cfg={"experiment": {"write_interval": 0, "checkpoint_interval": 0}, "learning_starts": 10**9})
    agent.enable_training_mode(True)
    good = {"observations": np.zeros((2, 3), np.float32), "actions": np.zeros((2, 1), np.float32),
            "rewards": np.zeros((2, 1), np.float32), "next_observations": np.zeros((2, 3), np.float32),
            "terminated": np.zeros((2, 1), bool), "truncated": np.zeros((2, 1), bool)}
    good[field] = np.zeros(shape, np.float32 if field not in ("terminated", "truncated") else bool)

    def step():
        t = timestep if isinstance(timestep, int) else 0
        agent.record_transition(states=None, next_states=None, infos={}, timestep=t, timesteps=10, **good)
        agent.post_interaction(timestep=t, timesteps=10)

    clear(step, field, "terminated", "truncated", "rewards", "transitions", "observations", "actions", "timestep")


@SETTINGS
@given(field=st.sampled_from(["observations", "actions", "rewards", "next_observations", "terminated"]),
       shape=st.lists(st.integers(0, 5), min_size=0, max_size=3))
def test_any_batch_passed_to_update_is_accepted_or_named(field, shape):
    config = ddpgx.DDPGConfig(batch_size=4)
    ts = ddpgx.init(jax.random.key(0), config, OBS, ACT)
    batch = {"observations": np.zeros((4, 3), np.float32), "actions": np.zeros((4, 1), np.float32),
             "rewards": np.zeros(4, np.float32), "next_observations": np.zeros((4, 3), np.float32),
             "terminated": np.zeros(4, bool)}
    batch[field] = np.zeros(shape, np.float32)
    clear(lambda: ddpgx.update(ts, ddpgx.Transition(**batch)), f"batch.{field}", "batch")


def test_zz_tally():
    # Runs last in this module (alphabetical order is not guaranteed by pytest, but file order is).
    assert TALLY["internal"] == 0
    print(f"\nbad-input properties: {TALLY['tried']} inputs tried, {TALLY['rejected']} rejected with a clear "
          f"error, {TALLY['internal']} internal tracebacks")


# ---------------------------------------------------------------------------------------------------------------------
# The same properties for the PyTorch agent.

torch = pytest.importorskip("torch")


def torch_agent(**kwargs):
    import ddpgx_torch
    from ddpgx_torch.core import networks as torch_networks

    observation_space = kwargs.pop("observation_space", OBS)
    action_space = kwargs.pop("action_space", ACT)
    models = kwargs.pop("models", None)
    if models is None:
        models = {"policy": torch_networks.DeterministicPolicy(3, ACT.low, ACT.high, (1,), hidden_sizes=(8, 8))}
    return ddpgx_torch.DDPG(models=models, observation_space=observation_space, action_space=action_space, **kwargs)


TORCH_CFG_FIELDS = [f.name for f in dataclasses.fields(__import__("ddpgx_torch").DDPG_CFG) if f.name != "experiment"]


@SETTINGS
@given(field=st.sampled_from(TORCH_CFG_FIELDS), value=WEIRD)
def test_torch_any_cfg_value_is_accepted_or_named(field, value):
    clear(lambda: torch_agent(cfg={field: value, "experiment": {"write_interval": 0, "checkpoint_interval": 0}}),
          field)


@SETTINGS
@given(observation_space=spaces(), action_space=spaces())
def test_torch_any_spaces_are_accepted_or_named(observation_space, action_space):
    from ddpgx_torch.core import networks as torch_networks

    def build():
        from ddpgx.core import spaces as spaces_lib

        size = spaces_lib.input_layout(observation_space, "observation_space").size
        layout = spaces_lib.action_layout(action_space)
        policy = torch_networks.DeterministicPolicy(size, np.asarray(layout.low), np.asarray(layout.high),
                                                    layout.shape, hidden_sizes=(8,))
        return torch_agent(observation_space=observation_space, action_space=action_space, models={"policy": policy})

    clear(build, "observation_space", "action_space", "DDPG needs a bounded Box")


@SETTINGS
@given(observations=observation_arrays())
def test_torch_any_observations_passed_to_act_are_accepted_or_named(observations):
    agent = torch_agent()
    clear(lambda: agent.act(observations, None, timestep=0, timesteps=1), "observations")


def test_zzz_torch_tally():
    assert TALLY["internal"] == 0
    print(f"\nbad-input properties (both agents): {TALLY['tried']} inputs tried, {TALLY['rejected']} rejected with a "
          f"clear error, {TALLY['internal']} internal tracebacks")
