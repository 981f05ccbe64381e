"""Exact resume across processes: N steps, save, load in a fresh process, M more steps == N + M steps in one go,
bit for bit (train state and replay buffer)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

CHECKS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "resume_checks.py")


def run(mode, directory, backend="jax"):
    done = subprocess.run([sys.executable, CHECKS, mode, str(directory), backend], capture_output=True, text=True,
                          timeout=600, check=False, env=dict(os.environ, PYTHONWARNINGS="ignore"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]


def test_resume_in_a_fresh_process_is_bit_exact(tmp_path):
    for mode in ("whole", "first", "second"):
        run(mode, tmp_path)
    whole, second = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "second.npz")
    assert sorted(whole.files) == sorted(second.files) and len(whole.files) > 30
    mismatched = [k for k in whole.files if not np.array_equal(whole[k], second[k])]
    assert mismatched == []
    assert int(second["['train_state']['step']"]) == 300 - 20  # updates from learning_starts on


def test_torch_resume_in_a_fresh_process_is_bit_exact(tmp_path):
    # ddpgx_torch's checkpoints hold the replay memory's contents and the episode-start flags too
    for mode in ("whole", "first", "second"):
        run(mode, tmp_path, "torch")
    whole, second = np.load(tmp_path / "whole.npz"), np.load(tmp_path / "second.npz")
    assert sorted(whole.files) == sorted(second.files) and len(whole.files) > 30
    mismatched = [k for k in whole.files if not np.array_equal(whole[k], second[k])]
    assert mismatched == []
    assert int(second["step"]) == 300 - 20
    assert int(second["memory.size"]) == 300
