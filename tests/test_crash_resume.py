"""Crash safety: a training process killed with SIGKILL at random moments (checkpoint writes included) always leaves
its newest complete checkpoint loadable, and ``--resume`` continues from it; damaged checkpoints are detected."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from ddpgx import checkpoints


def _train(run_dir, *extra):
    command = [sys.executable, "-m", "ddpgx", "train", "--timesteps", "1500", "--checkpoint-interval", "20",
               "--write-interval", "50", "--eval-episodes", "0", "--no-progress", "--memory-size", "1500",
               "--directory", str(run_dir.parent), "--experiment-name", run_dir.name, *extra]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))


def _wait_for_checkpoints(run_dir, count, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [n for n in os.listdir(run_dir / "checkpoints") if n.startswith("agent_")] if (
            run_dir / "checkpoints").is_dir() else []
        if len(found) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} checkpoints in {timeout} s")


def test_sigkill_at_random_moments_then_resume(tmp_path):
    run_dir = tmp_path / "crash"
    rng = np.random.default_rng(0)
    kills, resumes, steps = 0, 0, []
    for round_ in range(3):
        process = _train(run_dir, *(["--resume", str(run_dir)] if round_ else []))
        _wait_for_checkpoints(run_dir, 2 + 3 * round_)
        time.sleep(float(rng.uniform(0.0, 1.5)))  # checkpoints are written every 20 steps: some kills land in one
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        newest = checkpoints.latest(str(run_dir / "checkpoints"))
        assert newest is not None
        checkpoints.verify(newest)  # complete and intact, whatever the moment of the kill
        steps.append(int(checkpoints.metadata(newest)["timestep"]))
    # Resume from the newest complete checkpoint and finish.
    done = _train(run_dir, "--resume", str(run_dir))
    out, _ = done.communicate(timeout=600)
    assert done.returncode == 0, out
    assert f"at timestep {steps[-1]}" in out
    resumes += 1
    assert steps == sorted(steps) and kills == 3 and resumes == 1
    assert checkpoints.metadata(checkpoints.latest(str(run_dir / "checkpoints")))["timestep"] == 1500


def test_incomplete_and_corrupted_checkpoints_are_detected(tmp_path):
    import gymnasium

    import ddpgx

    space = gymnasium.spaces.Box(-1, 1, (3,))
    agent = ddpgx.DDPG(models={"policy": None}, observation_space=space, action_space=gymnasium.spaces.Box(-1, 1, (1,)))
    folder = tmp_path / "checkpoints"
    for t in (10, 20, 30):
        agent.save(str(folder / f"agent_{t}"))
    assert checkpoints.latest(str(folder)) == str(folder / "agent_30")

    # An interrupted write (no manifest yet) is not complete: resume falls back to the one before.
    os.remove(folder / "agent_30" / checkpoints.MANIFEST)
    assert checkpoints.latest(str(folder)) == str(folder / "agent_20")
    with pytest.raises(ValueError, match="agent_30' is incomplete"):
        agent.load(str(folder / "agent_30"))

    # A damaged file (truncated, or altered) is detected by its size or SHA-256.
    victim = max((p for p in (folder / "agent_20").rglob("*") if p.is_file() and p.name != checkpoints.MANIFEST),
                 key=lambda p: p.stat().st_size)
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) // 2])
    assert checkpoints.latest(str(folder)) == str(folder / "agent_10")
    with pytest.raises(ValueError, match="agent_20' is corrupted: .* does not match its recorded size and SHA-256"):
        agent.load(str(folder / "agent_20"))
    victim.write_bytes(bytes([data[0] ^ 1]) + data[1:])
    with pytest.raises(ValueError, match="is corrupted"):
        agent.load(str(folder / "agent_20"))

    # A save interrupted after moving the old checkpoint of the same name aside: load finds the old one.
    shutil.move(folder / "agent_10", folder / "agent_10.old")
    agent.load(str(folder / "agent_10"))
