"""Learning on MuJoCo v5 tasks with ddpgx's presets, and sbx's DDPG with the same settings side by side.

Each run is its own process (``--one``), and the two libraries' runs of a (task, seed) advance in lockstep: both
processes start, and they take turns, one evaluation interval of training at a time (the order of the libraries
rotating from one (task, seed) to the next), so that a machine whose speed drifts over minutes slows both alike. A
process waits for its turn outside its timed training (its final evaluation too waits for a turn of its own), and
each interval's training time is recorded (``chunk_seconds``), so the report gives the ratio of the totals and the
median of the per-interval ratios.

Both libraries get the preset's settings (Fujimoto et al. 2018's DDPG, :mod:`ddpgx.cli.presets`): 400-300 ReLU
networks, Adam 1e-3 for actor and critic, batch 100, tau 0.005, gamma 0.99, Gaussian exploration N(0, 0.1
max_action), uniform random actions and no learning for the first 1,000 (HalfCheetah, Ant: 10,000) steps, a replay
of 1e6, one gradient step per environment step. Every ``--eval-interval`` steps the deterministic policy is
evaluated over ``--eval-episodes`` episodes (seeds 10,000 onward, the same for both libraries); the training wall
time excludes those evaluations.

Reported per task: the final evaluation return (mean over seeds), the training wall time and env steps/s, the time
ratio ddpgx / sbx, and the floor set by the update's matrix products at the preset's batch size (its FLOPs over
this machine's measured float32 matrix-product rate at those shapes); a learning-curve figure per task
(``<out>/mujoco_<task>.png``) and every number in ``<out>/mujoco_results.json``.

    python benchmarks/mujoco.py                                   # HalfCheetah-v5, Hopper-v5: 300k steps, 2 seeds
    python benchmarks/mujoco.py --tasks Hopper-v5 --timesteps 20000 --seeds 0 --eval-interval 5000

Needs ``pip install ".[mujoco]"`` (and ``sbx-rl`` for the comparison, in ``.[bench]``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from typing import Any

# This file is named like the simulator's package: run as a script, its own directory would come first on sys.path
# and `import mujoco` (inside gymnasium) would import this file. Take that directory off the path.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import numpy as np  # noqa: E402

LIBRARIES = ("ddpgx", "sbx")
#: published 1M-step DDPG results, for scale: Fujimoto et al. 2018, Table 1 ("Our DDPG"); CleanRL's DDPG report.
PUBLISHED = {"HalfCheetah-v5": "TD3 paper's DDPG 8577 (v1); CleanRL's DDPG about 10,000 (v4)",
             "Hopper-v5": "TD3 paper's DDPG 1860 (v1)", "Walker2d-v5": "TD3 paper's DDPG 3098 (v1)"}


def _settings(task: str) -> dict[str, Any]:
    from ddpgx.cli import presets

    name, settings = presets.preset_for(task)
    if name == "none":
        raise SystemExit(f"mujoco.py: error: {task!r} has no preset (MuJoCo v5 tasks: {', '.join(presets.MUJOCO)})")
    return settings


def _chunks(timesteps: int, interval: int) -> int:
    """The number of training turns of a run: one per evaluation interval (the last one possibly shorter)."""
    return -(-timesteps // interval) if interval else 1


def _turn(steps: int, seconds: float) -> None:
    """Ends a turn: tells the parent how far training got and how long the turn's training took, then waits for the
    next turn (after the last interval, the turn in which the process evaluates and reports)."""
    print(f"CHUNK {steps} {seconds!r}", flush=True)
    _wait_turn()


def _wait_turn() -> None:
    """Blocks until the parent gives this process its next turn (a line on stdin)."""
    if not sys.stdin.readline():
        raise SystemExit("mujoco.py: the parent process went away")


def run_ddpgx(task: str, seed: int, timesteps: int, interval: int, episodes: int) -> dict[str, Any]:
    from ddpgx import trainers
    from ddpgx.cli import runner

    # Turns end at the runner's periodic evaluations: the wait for the next turn happens inside an evaluation, whose
    # time the runner keeps apart from training. The trainer's start and end mark the first and last turns.
    chunks, marks, seconds = _chunks(timesteps, interval), {}, []
    evaluate, train = runner.evaluate, trainers.SequentialTrainer.train

    def timed_train(self):
        marks["resumed"] = time.perf_counter()
        try:
            return train(self)
        finally:
            marks["end"] = time.perf_counter()

    def evaluate_in_turns(*args, **kwargs):
        if len(seconds) >= chunks or "end" in marks:  # the final evaluation, after training
            return evaluate(*args, **kwargs)
        seconds.append(time.perf_counter() - marks["resumed"])
        returns = evaluate(*args, **kwargs)
        _turn(min(len(seconds) * interval, timesteps), seconds[-1])
        marks["resumed"] = time.perf_counter()
        return returns

    runner.evaluate, trainers.SequentialTrainer.train = evaluate_in_turns, timed_train
    _wait_turn()
    with tempfile.TemporaryDirectory() as directory:
        plan = runner.plan({"env.id": task, "run.timesteps": timesteps, "run.seed": seed,
                            "evaluation.interval": interval, "evaluation.episodes": episodes,
                            "memory.memory_size": min(timesteps, 1_000_000), "cfg.experiment.directory": directory,
                            "cfg.experiment.experiment_name": "run", "cfg.experiment.write_interval": 0,
                            "cfg.experiment.checkpoint_interval": 0})
        result = runner.train(plan, progress=False, log=lambda *_: None)
    if len(seconds) < chunks:  # the last turn ended with training, not at an evaluation
        seconds.append(marks["end"] - marks["resumed"])
        _turn(timesteps, seconds[-1])
    train_seconds = result["train_seconds"] - result["periodic_eval_seconds"]
    return {"eval_timesteps": result["eval_timesteps"], "eval_returns": result["eval_curve"],
            "final_eval": result["eval_curve"][-1] if result["eval_curve"] else result["eval_mean"],
            "train_seconds": train_seconds, "env_steps_per_second": timesteps / train_seconds,
            "chunk_seconds": seconds}


def run_sbx(task: str, seed: int, timesteps: int, interval: int, episodes: int) -> dict[str, Any]:
    import gymnasium
    from sbx import DDPG
    from stable_baselines3.common.noise import NormalActionNoise

    from ddpgx.cli.runner import evaluate

    settings = _settings(task)
    env = gymnasium.make(task)
    size = env.action_space.shape[0]
    std = settings["cfg.exploration_noise_kwargs"]["std"]
    model = DDPG("MlpPolicy", env, learning_rate=settings["cfg.learning_rate"],
                 qf_learning_rate=settings["cfg.learning_rate"], buffer_size=min(timesteps, 1_000_000),
                 learning_starts=settings["cfg.learning_starts"], batch_size=settings["cfg.batch_size"],
                 tau=settings["cfg.polyak"], gamma=settings["cfg.discount_factor"], train_freq=1, gradient_steps=1,
                 action_noise=NormalActionNoise(np.zeros(size), np.full(size, std)),
                 policy_kwargs={"net_arch": settings["networks.policy_hidden_sizes"]}, seed=seed, verbose=0)
    policy = lambda obs: model.predict(obs, deterministic=True)[0]  # noqa: E731 -- batched obs -> batched actions
    steps, chunks, ts, returns = 0, [], [], []
    _wait_turn()
    while steps < timesteps:
        chunk = min(interval, timesteps - steps) if interval else timesteps
        start = time.perf_counter()
        model.learn(total_timesteps=chunk, reset_num_timesteps=steps == 0, progress_bar=False)
        chunks.append(time.perf_counter() - start)
        steps += chunk
        if interval and episodes:
            ts.append(steps)
            returns.append(float(np.mean(evaluate(policy, task, episodes))))
        _turn(steps, chunks[-1])
    final = returns[-1] if returns else float(np.mean(evaluate(policy, task, episodes)))
    env.close()
    seconds = sum(chunks)
    return {"eval_timesteps": ts, "eval_returns": returns, "final_eval": final, "train_seconds": seconds,
            "env_steps_per_second": timesteps / seconds, "chunk_seconds": chunks}


def matmul_floor(task: str, timesteps: int) -> dict[str, float]:
    """Seconds the matrix products of ``timesteps`` updates (and actions) need at this machine's measured float32
    rate for the preset's shapes: the floor no implementation of this update can beat on this CPU."""
    import gymnasium

    settings = _settings(task)
    env = gymnasium.make(task)
    obs, act = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    batch = settings["cfg.batch_size"]
    hidden_pi, hidden_q = settings["networks.policy_hidden_sizes"], settings["networks.critic_hidden_sizes"]

    def forward(sizes: list[int], rows: int) -> float:
        return sum(2.0 * rows * a * b for a, b in zip(sizes[:-1], sizes[1:], strict=True))

    f_pi = forward([obs, *hidden_pi, act], batch)
    f_q = forward([obs + act, *hidden_q, 1], batch)
    # target: mu'(s') and Q'(s', .); critic step: forward and two backward products (inputs, weights); policy step:
    # mu(s) and Q(s, .) forward, backward through Q (input products only) and through mu (both): 4 F_pi + 6 F_q.
    per_update = (f_pi + f_q) + 3 * f_q + (3 * f_pi + 2 * f_q)
    updates = max(timesteps - settings["cfg.learning_starts"], 0)  # one update per step from learning_starts on
    flops = updates * per_update + timesteps * forward([obs, *hidden_pi, act], 1)
    import jax
    import jax.numpy as jnp

    # XLA's float32 product at the update's largest shape, as the library runs it (median of 7 timed blocks)
    x = jnp.ones((batch, max(hidden_pi + hidden_q)), jnp.float32)
    w = jnp.ones((max(hidden_pi + hidden_q), min(hidden_pi + hidden_q)), jnp.float32)
    product = jax.jit(lambda x, w: x @ w)
    product(x, w).block_until_ready()
    rates = []
    for _ in range(7):
        start = time.perf_counter()
        for _ in range(50):
            out = product(x, w)
        out.block_until_ready()
        rates.append(50 * 2.0 * x.shape[0] * x.shape[1] * w.shape[1] / (time.perf_counter() - start))
    rate = float(np.median(rates))
    return {"flops": flops, "gflops_measured": rate / 1e9, "floor_seconds": flops / rate}


class _Child:
    """One library's run of a (task, seed) in its own process, trained one turn at a time (see the docstring)."""

    def __init__(self, library: str, task: str, seed: int, args: argparse.Namespace):
        self.name = f"{library} {task} seed {seed}"
        command = [sys.executable, os.path.abspath(__file__), "--one", library, "--tasks", task, "--seeds",
                   str(seed), "--timesteps", str(args.timesteps), "--eval-interval", str(args.eval_interval),
                   "--eval-episodes", str(args.eval_episodes)]
        # stderr goes to a file, read on failure: a pipe nobody reads could fill and block the child
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 -- closed by close()
        self._process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                         text=True, env=dict(os.environ, PYTHONWARNINGS="ignore"))

    def turn(self) -> int:
        """Lets the process train its next interval; returns the timesteps it has trained so far (the interval's
        time is in its result's ``chunk_seconds``)."""
        self._go()
        return int(self._line("CHUNK ").split()[1])

    def result(self) -> dict[str, Any]:
        """The run's result (its last line): after its last interval, a turn to evaluate and report."""
        self._go()
        result = json.loads(self._line("{"))
        self._process.stdin.close()
        if self._process.wait() != 0:
            self._fail()
        return result

    def _go(self) -> None:
        self._process.stdin.write("go\n")
        self._process.stdin.flush()

    def _line(self, prefix: str) -> str:
        for line in self._process.stdout:  # other output (a library's own prints) is skipped
            if line.startswith(prefix):
                return line
        self._process.wait()
        self._fail()

    def _fail(self) -> None:
        self._stderr.seek(0)
        raise RuntimeError(f"{self.name} failed (exit status {self._process.returncode}):\n"
                           f"{self._stderr.read()[-4000:]}")

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._stderr.close()


def run_in_turns(libraries: list[str], task: str, seed: int, args: argparse.Namespace) -> tuple[dict, list]:
    """Runs each library's (task, seed) in lockstep, one interval each in turn, in the order given; returns the
    results by library and the order in which the turns ran, ``[(library, timesteps trained), ...]``."""
    children = {library: _Child(library, task, seed, args) for library in libraries}
    order = []
    try:
        for _ in range(_chunks(args.timesteps, args.eval_interval)):
            for library, child in children.items():
                order.append((library, child.turn()))
        return {library: child.result() for library, child in children.items()}, order
    finally:
        for child in children.values():
            child.close()


def figure(path: str, task: str, results: list[dict[str, Any]], libraries: list[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for i, library in enumerate(libraries):
        runs = [r for r in results if r["library"] == library and r["task"] == task and r["eval_returns"]]
        for r in runs:
            ax.plot(r["eval_timesteps"], r["eval_returns"], color=f"C{i}", alpha=0.3, lw=1)
        if runs:
            length = min(len(r["eval_returns"]) for r in runs)
            mean = np.mean([r["eval_returns"][:length] for r in runs], axis=0)
            ax.plot(runs[0]["eval_timesteps"][:length], mean, "o-", color=f"C{i}", ms=3,
                    label=f"{library} (mean of {len(runs)} seed{'s' if len(runs) > 1 else ''})")
    ax.set_xlabel("timestep")
    ax.set_ylabel("evaluation return (no noise)")
    ax.set_title(f"DDPG on {task}")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(results: list[dict[str, Any]], tasks: list[str], libraries: list[str], floors: dict) -> str:
    lines = ["| task | library | seeds | final evaluation return (mean; per seed) | train s (mean) | env steps/s "
             "(mean) | matmul floor s |", "|---|---|---|---|---|---|---|"]
    for task in tasks:
        for library in libraries:
            runs = [r for r in results if r["task"] == task and r["library"] == library]
            if not runs:
                continue
            finals = [r["final_eval"] for r in runs]
            seconds = np.mean([r["train_seconds"] for r in runs])
            lines.append(f"| {task} | {library} | {len(runs)} | {np.mean(finals):.1f} "
                         f"({', '.join(f'{x:.1f}' for x in finals)}) | {seconds:.1f}"
                         f" | {np.mean([r['env_steps_per_second'] for r in runs]):.0f} | "
                         f"{floors[task]['floor_seconds']:.1f} |")
    lines.append("")
    for task in tasks:
        by = {lib: [r for r in results if r["task"] == task and r["library"] == lib] for lib in libraries}
        if by.get("ddpgx") and by.get("sbx"):
            ours, theirs = (np.mean([r["final_eval"] for r in by[k]]) for k in ("ddpgx", "sbx"))
            ratio = np.mean([r["train_seconds"] for r in by["ddpgx"]]) / np.mean([r["train_seconds"]
                                                                                  for r in by["sbx"]])
            gap = (ours - theirs) / abs(theirs) if theirs else float("nan")
            per_turn = [a / b for x, y in zip(by["ddpgx"], by["sbx"], strict=True)
                        for a, b in zip(x["chunk_seconds"], y["chunk_seconds"], strict=True) if b > 0]
            lines.append(f"- {task}: ddpgx's final return is {gap:+.1%} of sbx's ({ours:.1f} vs {theirs:.1f}; bar: "
                         f"no worse than -10%); ddpgx's training time is {ratio:.2f}x sbx's (bar: <= 0.75x; median "
                         f"of the {len(per_turn)} per-interval ratios {np.median(per_turn):.2f}x)")
        floor = floors[task]
        ours = by.get("ddpgx")
        if ours:
            lines.append(f"- {task}: the update's matrix products at batch size {floor['batch']} need "
                         f"{floor['floor_seconds']:.1f} s at the measured {floor['gflops_measured']:.0f} GFLOP/s; "
                         f"ddpgx takes {np.mean([r['train_seconds'] for r in ours]) / floor['floor_seconds']:.1f}x "
                         "that floor")
        if task in PUBLISHED:
            lines.append(f"- {task}, published at 1M steps for scale: {PUBLISHED[task]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", default=["HalfCheetah-v5", "Hopper-v5"],
                        help="MuJoCo v5 tasks with a ddpgx preset (default HalfCheetah-v5 Hopper-v5)")
    parser.add_argument("--timesteps", type=int, default=300_000, help="timesteps per run (default 300000)")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1], help="seeds (default 0 1)")
    parser.add_argument("--libraries", nargs="+", default=list(LIBRARIES), choices=LIBRARIES,
                        help="libraries to run (default: ddpgx sbx; sbx is skipped when not installed)")
    parser.add_argument("--eval-interval", type=int, default=5_000,
                        help="timesteps between evaluations (default 5000, as the TD3 paper)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="episodes per evaluation (default 10)")
    parser.add_argument("--out", default=".", help="directory of the figures and mujoco_results.json (default .)")
    parser.add_argument("--markdown", help="append the report to this Markdown file")
    parser.add_argument("--one", choices=LIBRARIES, help=argparse.SUPPRESS)  # a child process: one run, JSON out
    args = parser.parse_args(argv)
    if args.timesteps < 1 or args.eval_episodes < 1 or args.eval_interval < 0:
        parser.error("--timesteps and --eval-episodes must be >= 1, --eval-interval >= 0")
    if args.one:
        import warnings

        warnings.filterwarnings("ignore")
        run = run_ddpgx if args.one == "ddpgx" else run_sbx
        out = run(args.tasks[0], args.seeds[0], args.timesteps, args.eval_interval, args.eval_episodes)
        print(json.dumps(out), flush=True)
        return
    import importlib.util

    if importlib.util.find_spec("mujoco") is None or importlib.util.find_spec("imageio") is None:
        parser.error('MuJoCo environments need the mujoco and imageio packages: pip install "ddpgx[mujoco]"')
    for task in args.tasks:
        _settings(task)
    libraries = [lib for lib in args.libraries if lib != "sbx" or importlib.util.find_spec("sbx") is not None]
    if not libraries:
        parser.error("sbx is not installed (pip install sbx-rl) and no other library was asked for")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}; "
          f"libraries {libraries}; {args.timesteps} steps, seeds {args.seeds}", flush=True)
    results, schedule = [], []
    for t, task in enumerate(args.tasks):
        for s, seed in enumerate(args.seeds):
            k = (t + s) % len(libraries)
            load = os.getloadavg()[0]
            by_library, order = run_in_turns(libraries[k:] + libraries[:k], task, seed, args)  # rotated order
            schedule.append({"task": task, "seed": seed, "turns": order})
            for library in libraries:
                result = by_library[library]
                result.update(library=library, task=task, seed=seed, load_before=load)
                results.append(result)
                print(f"{task} {library:6s} seed {seed}: final evaluation {result['final_eval']:8.1f}, train "
                      f"{result['train_seconds']:7.1f} s ({result['env_steps_per_second']:5.0f} env steps/s; load "
                      f"average before the pair {load:.1f})", flush=True)
    floors = {}
    for task in args.tasks:
        floors[task] = matmul_floor(task, args.timesteps)
        floors[task]["batch"] = _settings(task)["cfg.batch_size"]
    os.makedirs(args.out, exist_ok=True)
    for task in args.tasks:
        figure(os.path.join(args.out, f"mujoco_{task}.png"), task, results, libraries)
    with open(os.path.join(args.out, "mujoco_results.json"), "w") as file:
        json.dump({"args": vars(args), "results": results, "floors": floors, "schedule": schedule}, file,
                  indent=2)
    text = report(results, args.tasks, libraries, floors)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as file:
            file.write(f"\n## MuJoCo learning ({datetime.date.today()})\n\n`python benchmarks/mujoco.py --tasks "
                       f"{' '.join(args.tasks)} --timesteps {args.timesteps} --seeds "
                       f"{' '.join(map(str, args.seeds))}` on {os.cpu_count()} CPUs; each run its own process, "
                       f"the two libraries in lockstep.\n\n{text}\n")


if __name__ == "__main__":
    main()
