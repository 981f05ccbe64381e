"""Crash drill for both backends: kill training with SIGKILL at random moments and inside checkpoint writes, resume,
repeat; count what survives.

Each round starts (or resumes from the newest complete checkpoint) a training process that writes a checkpoint every
20 timesteps: ``ddpgx train`` for the JAX backend, this script's ``--child`` mode (a ``ddpgx_torch.DDPG`` on
Pendulum-v1 with the shared ``SequentialTrainer``) for torch. Once the process has written a new checkpoint it is
killed, alternately at a random moment within the next 1.5 s and *aimed* at a checkpoint write: the process is
stopped (SIGSTOP) at short random intervals until it is caught with a write in progress (a ``.partial-<pid>`` entry in
the checkpoint folder), then killed where it stands. After each kill the drill checks that the newest
complete checkpoint verifies (SHA-256 manifest or seal) and loads, that its timestep never goes backwards and that
the previous ``best_agent`` is intact; a kill counts as "during a checkpoint write" only when the write's temporary
entry is still there afterwards. A final resume runs to the end.

    python benchmarks/crash_resume.py --backend both --kills 20
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

_CHILD = os.path.abspath(__file__)
_INTERVAL = 20


def _command(backend: str, run_dir: str, timesteps: int, memory_size: int, resume: bool) -> list[str]:
    if backend == "torch":
        return [sys.executable, _CHILD, "--child", run_dir, "--timesteps", str(timesteps), "--memory-size",
                str(memory_size)]
    command = [sys.executable, "-m", "ddpgx", "train", "--timesteps", str(timesteps), "--checkpoint-interval",
               str(_INTERVAL), "--write-interval", "50", "--eval-episodes", "0", "--no-progress", "--memory-size",
               str(memory_size), "--directory", os.path.dirname(run_dir), "--experiment-name",
               os.path.basename(run_dir)]
    return command + (["--resume", run_dir] if resume else [])


def start(backend: str, run_dir: str, timesteps: int, memory_size: int, resume: bool) -> subprocess.Popen:
    return subprocess.Popen(_command(backend, run_dir, timesteps, memory_size, resume), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))


def newest(backend: str, folder: str) -> str | None:
    """The newest complete checkpoint (each backend's own finder, as ``--resume`` uses it)."""
    if backend == "torch":
        from ddpgx_torch import checkpoints

        return checkpoints.latest(folder)
    from ddpgx import checkpoints

    return checkpoints.latest(folder)


def timestep_of(path: str) -> int:
    return int(re.search(r"agent_(\d+)", os.path.basename(path)).group(1))


def check_loadable(backend: str, path: str) -> None:
    """Verifies ``path`` (raises ``ValueError`` if damaged) and reads it back."""
    if backend == "torch":
        from ddpgx_torch import checkpoints

        checkpoints.verify(path)
        assert isinstance(checkpoints.load(path), dict)
    else:
        from ddpgx import checkpoints

        checkpoints.verify(path)
        assert checkpoints.metadata(path)["timestep"] == timestep_of(path)


def best_intact(backend: str, folder: str) -> bool:
    """Whether a ``best_agent`` exists; raises ``ValueError`` if one exists but does not verify."""
    if backend == "torch":
        from ddpgx_torch import checkpoints

        path = os.path.join(folder, "best_agent.pt")
        if not os.path.exists(path):
            return False
        checkpoints.load(path)
        return True
    from ddpgx import checkpoints

    try:
        path = checkpoints.resolve(os.path.join(folder, "best_agent"))
    except ValueError:
        return False  # none written yet
    checkpoints.verify(path)
    return True


def _partials(folder: str) -> list[str]:
    return [n for n in os.listdir(folder) if ".partial-" in n] if os.path.isdir(folder) else []


def _freeze_inside_write(process: subprocess.Popen, folder: str, rng: np.random.Generator, deadline: float) -> None:
    """Stops ``process`` (SIGSTOP) at short random intervals until it is caught with a checkpoint write in progress,
    and leaves it stopped there. Looking while the process is stopped removes the race of a plain "kill when a write
    is seen": a write that takes a millisecond would often finish between the look and the kill. Returns with the
    process running if the deadline passes first."""
    while time.monotonic() < deadline:
        process.send_signal(signal.SIGSTOP)
        _, status = os.waitpid(process.pid, os.WUNTRACED)  # returns once every thread has stopped
        if not os.WIFSTOPPED(status):
            process.returncode = os.waitstatus_to_exitcode(status)
            raise RuntimeError(f"the training process ended early (exit {process.returncode}):\n"
                               f"{process.stdout.read()[-3000:]}")
        if _partials(folder):
            return
        process.send_signal(signal.SIGCONT)
        time.sleep(float(rng.uniform(0.0, 0.004)))


def drill(backend: str, kills: int, timesteps: int = 100_000, memory_size: int = 100_000, seed: int = 0,
          directory: str | None = None, warmup: int = 420, log=print) -> dict[str, int]:
    """Runs the drill; returns the counts (kills, during_write, verified, best_intact, resumes, final_ok)."""
    rng = np.random.default_rng(seed)
    run_dir = os.path.join(directory or tempfile.mkdtemp(prefix=f"ddpgx-crash-{backend}-"), "run")
    folder = os.path.join(run_dir, "checkpoints")
    counts = dict(kills=0, during_write=0, verified=0, best_intact=0, resumes=0, final_ok=0)
    last = -1
    for round_ in range(kills):
        resume = newest(backend, folder) is not None
        process = start(backend, run_dir, timesteps, memory_size, resume)
        counts["resumes"] += resume
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:  # wait for this run's first new checkpoint
            found = newest(backend, folder)  # (past the first episodes, so that a best agent has been written)
            if found is not None and timestep_of(found) > max(last, warmup):
                break
            time.sleep(0.02)
        if process.poll() is not None:
            raise RuntimeError(f"the {backend} training process ended early:\n{process.stdout.read()[-3000:]}")
        aimed = round_ % 2 == 1
        if aimed:
            _freeze_inside_write(process, folder, rng, deadline=time.monotonic() + 120)
        else:
            time.sleep(float(rng.uniform(0.0, 1.5)))
        process.send_signal(signal.SIGKILL)  # (a stopped process dies too)
        process.wait()
        counts["kills"] += 1
        partial = _partials(folder)
        counts["during_write"] += bool(partial)
        for name in partial:  # what a killed write leaves behind (never under a checkpoint's name)
            path = os.path.join(folder, name)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        found = newest(backend, folder)
        if found is not None:
            check_loadable(backend, found)
            step = timestep_of(found)
            if step < last:
                raise AssertionError(f"the newest complete checkpoint went back from {last} to {step}")
            last = step
            counts["verified"] += 1
        counts["best_intact"] += best_intact(backend, folder)
        log(f"{backend} kill {counts['kills']} ({'aimed at a write' if aimed else 'random moment'}): newest complete "
            f"checkpoint {os.path.basename(found or 'none')}{' (killed during a checkpoint write)' if partial else ''}")
    final = start(backend, run_dir, last + 2 * _INTERVAL, memory_size, resume=True)
    out, _ = final.communicate()
    counts["resumes"] += 1
    counts["final_ok"] = int(final.returncode == 0 and f"at timestep {last}" in out
                             and timestep_of(newest(backend, folder)) == last + 2 * _INTERVAL)
    if not counts["final_ok"]:
        log(out[-3000:])
    return counts


def child(run_dir: str, timesteps: int, memory_size: int) -> None:
    """The torch training process: ``ddpgx_torch.DDPG`` on Pendulum-v1, checkpoints every 20 timesteps, resuming
    from the newest complete checkpoint of ``run_dir`` when there is one."""
    import gymnasium
    import torch

    import ddpgx_torch
    from ddpgx_torch import checkpoints
    from ddpgx_torch.core import networks
    from ddpgx_torch.envs import wrap_env
    from ddpgx_torch.memories import RandomMemory
    from ddpgx_torch.noises import OrnsteinUhlenbeckNoise
    from ddpgx_torch.trainers import SequentialTrainer

    torch.set_num_threads(1)
    ddpgx_torch.models.set_seed(0)
    env = wrap_env(gymnasium.make("Pendulum-v1"))
    models = {"policy": networks.DeterministicPolicy(3, [-2.0], [2.0], (1,), (64, 64)),
              "critic": networks.QFunction(3, 1, (64, 64))}
    cfg = {"batch_size": 64, "random_timesteps": 100, "learning_starts": 100,
           "exploration_noise": OrnsteinUhlenbeckNoise, "exploration_noise_kwargs": {"theta": 0.15, "sigma": 0.1},
           "experiment": {"directory": os.path.dirname(run_dir), "experiment_name": os.path.basename(run_dir),
                          "write_interval": 50, "checkpoint_interval": _INTERVAL}}
    agent = ddpgx_torch.DDPG(models=models, memory=RandomMemory(memory_size=memory_size), cfg=cfg,
                             observation_space=env.observation_space, action_space=env.action_space)
    start_timestep = 0
    found = checkpoints.latest(os.path.join(run_dir, "checkpoints"))
    if found is not None:
        agent.load(found)
        start_timestep = timestep_of(found)
        print(f"resuming from {found} at timestep {start_timestep}", flush=True)
    SequentialTrainer(env=env, agents=agent, cfg={"timesteps": timesteps, "headless": True, "seed": 0,
                                                  "initial_timestep": start_timestep,
                                                  "disable_progressbar": True}).train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("jax", "torch", "both"), default="both",
                        help="which agents to drill (default both)")
    parser.add_argument("--kills", type=int, default=20, help="kills per backend (half of them aimed at a write)")
    parser.add_argument("--timesteps", type=int, default=100_000, help="the target of each training run")
    parser.add_argument("--memory-size", type=int, default=100_000,
                        help="replay memory rows (saved in each checkpoint: larger ones take longer to write)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random kill moments")
    parser.add_argument("--child", metavar="RUN_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.timesteps, args.memory_size)
        return
    for backend in ("jax", "torch") if args.backend == "both" else (args.backend,):
        c = drill(backend, args.kills, args.timesteps, args.memory_size, args.seed)
        print(f"{backend}: {c['kills']} kills ({c['during_write']} during a checkpoint write), {c['verified']} newest "
              f"checkpoints verified and loaded, best_agent intact after {c['best_intact']} kills, {c['resumes']} "
              f"resumes, final resume {'succeeded' if c['final_ok'] else 'FAILED'}", flush=True)


if __name__ == "__main__":
    main()
