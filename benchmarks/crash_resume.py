"""Crash drill: kill ``ddpgx train`` with SIGKILL at random moments, resume, repeat; count what survives.

Each round starts (or resumes) the main job with a checkpoint every 20 timesteps, waits for its first new checkpoint
and then a random 0 to 1.5 s, kills it with SIGKILL, then checks that the newest complete checkpoint verifies (manifest
sizes and SHA-256) and that its timestep never goes backwards; it also counts the kills that landed while a
checkpoint was being written (a ``.partial-*`` directory left behind). A final resume runs to the end.

    python benchmarks/crash_resume.py --kills 20
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from ddpgx import checkpoints


def train(run_dir: str, timesteps: int, resume: bool) -> subprocess.Popen:
    command = [sys.executable, "-m", "ddpgx", "train", "--timesteps", str(timesteps), "--checkpoint-interval", "20",
               "--write-interval", "50", "--eval-episodes", "0", "--no-progress", "--memory-size", "2000",
               "--directory", os.path.dirname(run_dir), "--experiment-name", os.path.basename(run_dir)]
    if resume:
        command += ["--resume", run_dir]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONWARNINGS="ignore"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs at random moments (default 20)")
    parser.add_argument("--timesteps", type=int, default=100_000,
                        help="timesteps of the run to finish (default 100000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times and of the run (default 0)")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    run_dir = os.path.join(tempfile.mkdtemp(prefix="ddpgx-crash-"), "run")
    folder = os.path.join(run_dir, "checkpoints")
    kills = resumes = verified = during_write = 0
    last = -1
    for round_ in range(args.kills):
        process = train(run_dir, args.timesteps, resume=round_ > 0 and checkpoints.latest(folder) is not None)
        resumes += round_ > 0
        # Wait for this run's first new checkpoint (start-up takes seconds), then kill at a random moment within
        # the next 1.5 s: checkpoints come every 20 steps, so a share of the kills land inside a write.
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and process.poll() is None:
            newest = checkpoints.latest(folder)
            if newest is not None and int(os.path.basename(newest).split("_")[1]) > last:
                break
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0.0, 1.5)))
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
        partial = [n for n in os.listdir(folder) if ".partial-" in n] if os.path.isdir(folder) else []
        during_write += bool(partial)
        for name in partial:
            checkpoints.remove(os.path.join(folder, name))
        newest = checkpoints.latest(folder)
        if newest is not None:
            checkpoints.verify(newest)
            step = int(checkpoints.metadata(newest)["timestep"])
            assert step >= last, (step, last)
            last = step
            verified += 1
        print(f"kill {kills}: newest complete checkpoint {os.path.basename(newest or 'none')}"
              f"{' (killed during a checkpoint write)' if partial else ''}", flush=True)
    final = train(run_dir, last + 200, resume=True)
    out, _ = final.communicate()
    resumes += 1
    ok = final.returncode == 0 and f"at timestep {last}" in out
    print(f"{kills} kills ({during_write} during a checkpoint write), {verified} newest checkpoints verified, "
          f"{resumes} resumes, final resume {'succeeded' if ok else 'FAILED'}")


if __name__ == "__main__":
    main()
