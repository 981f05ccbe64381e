"""Tests of ddpgx.tracking: event files read back with tensorboard's own readers, skrl's reduction rules, episodes."""

import glob
import os
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, event_file_loader

from ddpgx import tracking


def read_events(log_dir):
    """Every event of the one event file in ``log_dir``, in the order written, read by tensorboard's loader."""
    (path,) = glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    return list(event_file_loader.LegacyEventFileLoader(path).Load())


def scalars(log_dir):
    """{tag: [(step, value), ...]} as TensorBoard's own accumulator reads the directory."""
    acc = event_accumulator.EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_writer_round_trip_keeps_tags_steps_values_and_order(tmp_path):
    start = time.time()
    writer = tracking.SummaryWriter(str(tmp_path / "tb"))
    writer.add_scalar("Loss / Critic loss", 0.125, 10)
    writer.add_scalar("Loss / Critic loss", np.float32(-3.7), 20)  # NumPy scalars are accepted
    writer.add_scalar("Q-network / Q1 (max)", np.array(1e6), 20)  # and 0-d arrays
    writer.add_scalar("Reward / Total reward (mean)", 2.5, step=0, timestep=30)  # skrl's name for the step wins
    writer.add_scalar("Loss / Critic loss", float("nan"), 40)
    writer.close()
    events = read_events(tmp_path / "tb")
    assert events[0].file_version == "brain.Event:2" and not events[0].HasField("summary")
    written = [(e.step, v.tag, v.simple_value) for e in events[1:] for v in e.summary.value]
    assert written[:4] == [(10, "Loss / Critic loss", 0.125), (20, "Loss / Critic loss", float(np.float32(-3.7))),
                           (20, "Q-network / Q1 (max)", 1e6), (30, "Reward / Total reward (mean)", 2.5)]
    assert written[4][:2] == (40, "Loss / Critic loss") and np.isnan(written[4][2])
    assert all(start <= e.wall_time <= time.time() for e in events)
    assert scalars(tmp_path / "tb")["Reward / Total reward (mean)"] == [(30, 2.5)]


def test_two_writers_in_one_directory_write_two_files(tmp_path):
    with tracking.SummaryWriter(str(tmp_path)) as first, tracking.SummaryWriter(str(tmp_path)) as second:
        first.add_scalar("a", 1.0, 1)
        second.add_scalar("b", 2.0, 2)
    assert len(glob.glob(str(tmp_path / "events.out.tfevents.*"))) == 2
    assert scalars(tmp_path) == {"a": [(1, 1.0)], "b": [(2, 2.0)]}


def test_tracker_reduces_by_skrl_rules_and_flushes_each_write(tmp_path):
    writer = tracking.SummaryWriter(str(tmp_path), flush_seconds=3600.0)  # only Tracker.write's flush makes it visible
    tracker = tracking.Tracker(writer)
    rng = np.random.default_rng(0)
    first = rng.normal(size=(3, 7))
    for row in first.T:
        tracker.track("Custom / Value (min)", row[0])
        tracker.track("Custom / Value (max)", row[1])
        tracker.track("Custom / Value", row[2])
    tracker.track_metrics({"critic_loss": 0.5, "q_min": -1.0, "noise_mean": 0.25, "my_metric": 3.0})
    tracker.track_metrics({"critic_loss": 1.5, "q_min": -3.0, "noise_mean": 0.75, "my_metric": 5.0})
    reduced = tracker.write(100)
    expected = {"Custom / Value (min)": first[0].min(), "Custom / Value (max)": first[1].max(),
                "Custom / Value": first[2].mean(), "Loss / Critic loss": 1.0, "Q-network / Q1 (min)": -3.0,
                "Exploration / Exploration noise (mean)": 0.5, "Metrics / my_metric": 4.0}
    assert reduced == pytest.approx(expected, rel=1e-12)
    on_disk = scalars(tmp_path)  # read while the writer is still open
    assert set(on_disk) == set(expected)
    for tag, value in expected.items():
        assert on_disk[tag] == [(100, pytest.approx(value, rel=1e-6))], tag

    tracker.track("Custom / Value (max)", -9.0)  # the lists were cleared: the second interval holds only this
    assert tracker.write(200) == {"Custom / Value (max)": -9.0}
    assert scalars(tmp_path)["Custom / Value (max)"] == [(100, pytest.approx(first[1].max(), rel=1e-6)), (200, -9.0)]
    assert tracker.history["Custom / Value (max)"] == [(100, first[1].max()), (200, -9.0)]
    assert tracker.write(300) == {}  # nothing tracked, nothing written
    writer.close()
    assert len(read_events(tmp_path)) == 1 + len(expected) + 1


def test_tracker_without_a_writer_and_jax_values():
    jnp = pytest.importorskip("jax.numpy")
    tracker = tracking.Tracker()
    tracker.track("Loss / Policy loss", jnp.float32(2.0))
    tracker.track("Loss / Policy loss", 4.0)
    assert tracker.mean("Loss / Policy loss", default=-1.0) == 3.0
    assert tracker.mean("Loss / Critic loss", default=-1.0) == -1.0
    assert tracker.write(5) == {"Loss / Policy loss": 3.0}


def test_track_step_counts_episodes_per_environment():
    tracker = tracking.Tracker()
    # two environments; environment 1 ends after steps 2 and 3, environment 0 after step 3 (truncated)
    rewards = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
    terminated = np.array([[False, False], [False, True], [False, True]])
    truncated = np.array([[False, False], [False, False], [True, False]])
    for r, te, tr in zip(rewards, terminated, truncated, strict=True):
        tracker.track_step(r, te, tr)
    assert list(tracker.episodes.returns) == [30.0, 6.0, 30.0] and list(tracker.episodes.lengths) == [2, 3, 1]
    assert tracker.episodes.finished == 3
    reduced = tracker.write(3)
    assert reduced["Reward / Instantaneous reward (max)"] == 30.0
    assert reduced["Reward / Instantaneous reward (min)"] == 1.0
    assert reduced["Reward / Instantaneous reward (mean)"] == pytest.approx(rewards.mean())
    # the total-reward tags are tracked at steps 2 (returns [30]) and 3 (returns [30, 6, 30]) and reduced over both
    assert reduced["Reward / Total reward (min)"] == 6.0 and reduced["Reward / Total reward (max)"] == 30.0
    assert reduced["Reward / Total reward (mean)"] == pytest.approx((30.0 + 22.0) / 2)
    assert reduced["Episode / Total timesteps (mean)"] == pytest.approx((2.0 + 2.0) / 2)
    assert not tracker.episodes.returns  # cleared at each write, as skrl does


def test_bad_input_names_the_value(tmp_path):
    with pytest.raises(ValueError, match="log_dir=''"):
        tracking.SummaryWriter("")
    with pytest.raises(ValueError, match="log_dir=3 is invalid"):
        tracking.SummaryWriter(3)
    writer = tracking.SummaryWriter(str(tmp_path))
    with pytest.raises(ValueError, match="tag='' is invalid"):
        writer.add_scalar("", 1.0, 0)
    with pytest.raises(TypeError):
        writer.add_scalar("a", [1.0, 2.0], 0)
    writer.close()
    writer.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="is closed"):
        writer.add_scalar("a", 1.0, 0)
