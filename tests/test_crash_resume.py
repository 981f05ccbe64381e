"""Crash safety, both backends: a training process killed with SIGKILL at random moments and inside checkpoint
writes always leaves its newest complete checkpoint and its ``best_agent`` loadable, and resuming continues from it
(the drill of ``benchmarks/crash_resume.py``, shortened); damaged checkpoints are detected."""

from __future__ import annotations

import os
import shutil
import sys

import pytest

from ddpgx import checkpoints

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "benchmarks"))
import crash_resume  # noqa: E402 -- benchmarks/crash_resume.py: the drill


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_sigkill_at_random_moments_and_during_writes_then_resume(tmp_path, backend):
    lines = []
    counts = crash_resume.drill(backend, kills=4, timesteps=5000, memory_size=50_000, seed=0,
                                directory=str(tmp_path), warmup=220, log=lines.append)
    report = "\n".join(lines)
    # Every kill left a newest complete checkpoint that verifies and loads, never older than the one before, and an
    # intact best_agent; at least two kills landed inside a checkpoint write (its temporary entry was left behind).
    assert counts["kills"] == 4 and counts["verified"] == 4 and counts["best_intact"] == 4, (counts, report)
    assert counts["during_write"] >= 2, (counts, report)
    assert counts["final_ok"] == 1 and counts["resumes"] == 4, (counts, report)


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
