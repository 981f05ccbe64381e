"""``ddpgx train`` stopped by real signals: SIGINT/SIGTERM end the run cleanly (checkpoint, summary, exit 130/143),
SIGKILL loses no episode already logged, and a resumed run's log and summary hold every episode since the start; an
error raised by the environment saves the run at the last complete step as a signal does."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest

TINY = ["--set", "networks.policy_hidden_sizes=[16]", "--set", "networks.critic_hidden_sizes=[16]",
        "--memory-size", "5000", "--write-interval", "0", "--checkpoint-interval", "0", "--eval-episodes", "1",
        "--no-progress"]


def _train_rows(run) -> list[dict]:
    path = run / "episodes.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as file:
        return [row for row in csv.DictReader(file) if row["kind"] == "train" and row["std"] == ""]


def _start(args: list[str]) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "ddpgx", "train", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


def _wait_for_episodes(process: subprocess.Popen, run, count: int, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while len(_train_rows(run)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the run logged too few episodes in time"
        time.sleep(0.2)


def test_sigint_and_sigterm_stop_cleanly_and_resume_keeps_every_episode(tmp_path):
    run = tmp_path / "run"
    process = _start(["--timesteps", "100000", "--directory", str(tmp_path), "--experiment-name", "run", *TINY])
    _wait_for_episodes(process, run, 2)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 130, (out, err)
    assert "Traceback" not in err and f"resume with: ddpgx train --resume {run}" in err
    summary = json.loads((run / "summary.json").read_text())
    stopped = summary["end_timestep"]
    assert summary["interrupted"] == signal.SIGINT and 400 <= stopped < 100_000
    assert os.listdir(run / "checkpoints") == [f"agent_{stopped}"]  # the checkpoint of the interruption
    first = _train_rows(run)
    assert summary["episode_returns"] == [float(r["return"]) for r in first]
    assert "eval_mean" not in summary  # stopped: no final evaluation

    # resumed without --timesteps: the run's own target (100,000) and environment; stopped by SIGTERM this time
    process = _start(["--resume", str(run), "--no-progress"])
    _wait_for_episodes(process, run, len(first) + 2)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=240)
    assert process.returncode == 143, (out, err)
    assert f"resuming at timestep {stopped}: DDPG (jax) on Pendulum-v1 to 100000 timesteps" in out
    summary = json.loads((run / "summary.json").read_text())
    assert summary["start_timestep"] == stopped and summary["interrupted"] == signal.SIGTERM
    rows = _train_rows(run)
    returns = summary["episode_returns"]
    assert len(returns) == len(rows) >= len(first) + 2
    assert returns[:len(first)] == [float(r["return"]) for r in first]  # nothing before the first stop was lost
    ends = summary["episode_end_timesteps"]
    assert ends == sorted(ends) and len(set(ends)) == len(ends) and ends[0] == 200
    segments = json.loads((run / "run.json").read_text())["segments"]
    assert [s["start"] for s in segments] == [0, stopped] and {s["target"] for s in segments} == {100_000}


def test_sigkill_keeps_the_episodes_logged_so_far(tmp_path):
    run = tmp_path / "run"
    process = _start(["--timesteps", "100000", "--directory", str(tmp_path), "--experiment-name", "run", *TINY])
    _wait_for_episodes(process, run, 2)
    process.kill()
    process.communicate(timeout=60)
    rows = _train_rows(run)
    assert len(rows) >= 2 and [int(r["timestep"]) for r in rows[:2]] == [200, 400]
    assert all(float(r["return"]) < 0 for r in rows)  # Pendulum's rewards are negative: real returns, not blanks


FAILING_ENV = '''
import gymnasium
from gymnasium.envs.classic_control import PendulumEnv


class FailingPendulum(PendulumEnv):
    """Pendulum whose step raises on its 450th call (counted per instance), as a flaky simulator might, and whose
    reset raises for seed 777."""

    calls = 0

    def reset(self, *, seed=None, options=None):
        if seed == 777:  # the test's evaluation seed
            raise RuntimeError("renderer lost")
        return super().reset(seed=seed, options=options)

    def step(self, action):
        self.calls += 1
        if self.calls == 450:
            raise RuntimeError("sensor dropped")
        return super().step(action)


gymnasium.register("Failing-v0", entry_point=FailingPendulum, max_episode_steps=200)
'''


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_an_environment_error_saves_the_run_at_the_last_complete_timestep(tmp_path, monkeypatch, capsys, backend):
    from ddpgx import __main__ as cli

    (tmp_path / "failing_env.py").write_text(FAILING_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    args = ["train", "--env", "failing_env:Failing-v0", "--timesteps", "600", "--backend", backend, "--directory",
            str(tmp_path), "--experiment-name", "run", *TINY]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "RuntimeError: sensor dropped" in err  # the environment's own traceback
    assert (f"ddpgx: error: the environment 'failing_env:Failing-v0' raised at timestep 449: RuntimeError: sensor "
            f"dropped; checkpoint at timestep 449 and summary written; resume with: ddpgx train --resume {run}") in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed"] == "RuntimeError: sensor dropped" and summary["end_timestep"] == 449
    assert summary["episode_end_timesteps"] == [200, 400] and "eval_mean" not in summary
    checkpoint = "agent_449" + ("" if backend == "jax" else ".pt")
    assert checkpoint in os.listdir(run / "checkpoints")

    # the environment made anew counts its calls from 0: the resumed run reaches its target
    assert cli.main(["train", "--resume", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["start_timestep"] == 449 and summary["end_timestep"] == 600 and summary["failed"] is None
    assert summary["episode_end_timesteps"][:2] == [200, 400]


def test_an_evaluation_environment_error_saves_the_run_where_it_stopped(tmp_path, monkeypatch, capsys):
    from ddpgx import __main__ as cli

    (tmp_path / "failing_env.py").write_text(FAILING_ENV)
    monkeypatch.syspath_prepend(str(tmp_path))
    run = tmp_path / "run"
    args = ["train", "--env", "failing_env:Failing-v0", "--timesteps", "400", "--eval-interval", "300",
            "--set", "evaluation.seed=777", "--directory", str(tmp_path), "--experiment-name", "run", *TINY]
    assert cli.main(args) == 1
    err = capsys.readouterr().err
    assert "RuntimeError: renderer lost" in err and "raised by the evaluation environment at timestep 300" in err
    assert "raised at timestep 300: RuntimeError: renderer lost; checkpoint at timestep 300 and summary" in err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failed"] == "RuntimeError: renderer lost" and summary["end_timestep"] == 300
    assert "agent_300" in os.listdir(run / "checkpoints")

    # the final evaluation's error: the finished training is saved at its target
    args = ["train", "--env", "failing_env:Failing-v0", "--timesteps", "300", "--eval-interval", "0",
            "--set", "evaluation.seed=777", "--directory", str(tmp_path), "--experiment-name", "done", *TINY]
    assert cli.main(args) == 1
    assert "raised by the evaluation environment after training" in capsys.readouterr().err
    summary = json.loads((tmp_path / "done" / "summary.json").read_text())
    assert summary["failed"] == "RuntimeError: renderer lost" and summary["end_timestep"] == 300
    assert "agent_300" in os.listdir(tmp_path / "done" / "checkpoints")
