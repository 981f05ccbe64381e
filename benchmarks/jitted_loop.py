"""Whole DDPG training runs on Pendulum-v1: ddpgx's jitted loop against rejax and skrl JAX, in one run.

Configuration (every contender): Pendulum-v1, ``--timesteps`` environment steps (15,000), 1 environment, batch 100,
400-300 ReLU policy and critic, Adam lr 1e-3, gamma 0.99, target step 0.005 (rejax's ``polyak=0.995`` is the same
update), replay capacity 15,000, 1,000 uniform random steps first (``RANDOM_STEPS``), one gradient step per environment
step from there.

* **ddpgx** (``ddpgx.make_train``): gymnax's Pendulum, act, env step, replay add and update in one ``lax.scan``
  inside one ``jax.jit``; Ornstein-Uhlenbeck noise (theta 0.15, sigma 0.1) as in skrl's example.
* **rejax** 0.1.3 (``pip install rejax``; not a ddpgx dependency): it has TD3 but no DDPG, so DDPG is the small
  subclass :class:`RejaxDDPG` (one critic, no target-policy noise, policy delay 1, 400-300 ReLU networks); rejax
  calls gymnax's pre-1.0 five-value ``step``, so gymnax 1.0's environment is wrapped in :class:`FiveValueStep`
  (``done = terminated or truncated``, rejax's own semantics: it cuts the bootstrap at Pendulum's time limit and
  stores the reset observation as s'). Gaussian exploration noise, std 0.2 (rejax has no OU noise; 0.2 is about
  the stationary std of the OU process above). rejax's in-program evaluation is replaced by a no-op, so its
  training time excludes evaluation, like ddpgx's.
* **skrl JAX** 2.x (``pip install skrl``): ``skrl.agents.jax.ddpg.DDPG`` driven by its ``SequentialTrainer`` on
  gymnasium's Pendulum-v1, skrl's example settings (OU noise as above) with the same 1,000 random steps, TensorBoard
  and checkpoints off.

Reported per contender: compile time (tracing and XLA compilation; for skrl, its agent's set-up), training run time
(the compiled program alone; for skrl, ``trainer.train()``), environment steps per second over the training run,
evaluation time, and the mean return of 10 evaluation episodes without exploration noise (gymnax Pendulum for ddpgx
and rejax, gymnasium's for skrl). Also timed: ddpgx with a ``jitted_run.ProgressLogger`` called from inside
the program every 1,000 steps (progress lines and TensorBoard scalars: the cost of logging), with
``--tuned-xla`` ddpgx and rejax compiled with :data:`TUNED_XLA`, with ``--xla-defaults`` ddpgx compiled with XLA's
default options instead of :mod:`ddpgx.core.xla_cpu`'s, and ddpgx with ``--seeds`` seeds (8) vmapped into one program,
with the evaluation inside it.

The compiled programs are timed interleaved: ``--repeats`` rounds (3), each running every program once in an order
that rotates between rounds, and the speed-up is the median over rounds of the per-round ratio. This machine has slow
phases (the same program taking 2.7 s or 4.5 s for 3,000 steps, with no other process running); a ratio taken within
a round is not skewed by them as one taken between programs run minutes apart is. The report records the load and
the CPU time other processes used.

Usage::

    python benchmarks/jitted_loop.py [--timesteps 15000] [--seeds 8] [--skip-rejax] [--skip-skrl] \\
        [--skip-logging] [--tuned-xla] [--xla-defaults] [--markdown benchmarks/RESULTS.md]
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import os
import platform
import sys
import time
import warnings
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

warnings.filterwarnings("ignore", category=DeprecationWarning)

import ddpgx  # noqa: E402
from ddpgx.cli import jitted_run  # noqa: E402
from ddpgx.core import jitted, xla_cpu  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from update_throughput import CpuMeter, _cpu_model, _loadavg  # noqa: E402

# 1,000 uniformly random steps before learning (skrl's example has 100, rejax's default is 2,048): with 100, one
# seed in eight stays at the bottom for the whole run (vmapped seeds 0-7: -1480; with 1,000 all eight learn).
BATCH, MEMORY, RANDOM_STEPS, HIDDEN, EVAL_EPISODES = 100, 15_000, 1_000, (400, 300), 10
# XLA:CPU options measured faster and steadier on the AMD machine (``--tuned-xla``; ddpgx's own program otherwise
# compiles with ddpgx.core.xla_cpu's): matrix products on Eigen instead of YNNPACK fusions, and copy insertion by
# region analysis (it removes the loop's per-step copies of the policy parameters and its Adam moments). Both are
# experimental XLA flags.
TUNED_XLA = {"xla_cpu_experimental_ynn_fusion_type": "", "xla_cpu_copy_insertion_use_region_analysis": True}


def _version(distribution: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _gymnax_pendulum():
    import gymnax

    return gymnax.make("Pendulum-v1")


# --------------------------------------------------------------------------- #
# ddpgx
# --------------------------------------------------------------------------- #
def ddpgx_config() -> ddpgx.DDPGConfig:
    """skrl's example settings (OU noise, batch 100, ...) with ``RANDOM_STEPS`` random steps."""
    return dataclasses.replace(jitted_run.pendulum_config(), random_timesteps=RANDOM_STEPS)


def ddpgx_settings(timesteps: int, eval_episodes: int, interval: Optional[int] = None) -> jitted.JittedConfig:
    return jitted.JittedConfig(timesteps=timesteps, num_envs=1, learning_starts=RANDOM_STEPS, memory_size=MEMORY,
                               eval_interval=interval or timesteps, eval_episodes=eval_episodes)


@dataclasses.dataclass
class Program:
    """A compiled training run. ``run()`` trains (the same program on the same key: the same result each time) and
    ``finish(out)`` evaluates the agent it returned: ``{"eval_s": ..., "returns": ...}``."""

    compile_s: float
    run: Callable[[], Any]
    finish: Callable[[Any], dict[str, Any]]
    runs: list[float] = dataclasses.field(default_factory=list)
    out: Any = None


def time_interleaved(programs: dict[str, Program], repeats: int) -> None:
    """Runs every program once per round, ``repeats`` rounds, rotating the order each round, so that the machine's
    slow phases (this VM has some that no process on it explains) fall on every contender alike."""
    names = list(programs)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            print(f"  round {r + 1}/{repeats}: {name}", file=sys.stderr, flush=True)
            program = programs[name]
            start = time.perf_counter()
            program.out = program.run()
            program.runs.append(time.perf_counter() - start)


def prepare_ddpgx(timesteps: int, seed: int = 0, logging: bool = False,
                  compiler_options: Optional[dict] = None) -> Program:
    """With ``logging``: a ProgressLogger (progress lines to /dev/null, TensorBoard to a temporary directory) called
    from inside the program every 1,000 steps; ``compiler_options``: XLA options for this program's compilation."""
    env, env_params = _gymnax_pendulum()
    callback, interval = None, None
    if logging:
        import tempfile

        callback = jitted_run.ProgressLogger(timesteps, logdir=tempfile.mkdtemp(prefix="ddpgx-bench-tb-"),
                                         stream=open(os.devnull, "w"))  # noqa: SIM115
        interval = 1_000
    train = ddpgx.make_train(env, env_params, ddpgx_config(), ddpgx_settings(timesteps, 0, interval),
                             callback=callback)
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    if compiler_options is None:  # as ddpgx compiles it (ddpgx.core.xla_cpu)
        compiler_options = xla_cpu.for_rows(ddpgx_config().batch_size)
    compiled = jax.jit(train).lower(key).compile(compiler_options=compiler_options)
    compile_s = time.perf_counter() - t0

    def run():
        out = compiled(key)
        jax.block_until_ready(out)
        jax.effects_barrier()  # the last host callback has run
        return out

    def finish(out):
        if callback is not None:
            callback.close()
        t2 = time.perf_counter()
        evaluate = jax.jit(lambda ts, k: jitted.evaluate(ts, k, env, env_params, EVAL_EPISODES))
        returns = jax.block_until_ready(evaluate(out[0], jax.random.key(10_000)))
        return dict(eval_s=time.perf_counter() - t2, returns=np.asarray(returns))

    return Program(compile_s, run, finish)


def run_ddpgx_seeds(timesteps: int, seeds: int) -> dict[str, Any]:
    env, env_params = _gymnax_pendulum()
    train = ddpgx.make_train(env, env_params, ddpgx_config(), ddpgx_settings(timesteps, EVAL_EPISODES))
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(train)).lower(keys).compile()
    t1 = time.perf_counter()
    _, metrics = jax.block_until_ready(compiled(keys))
    t2 = time.perf_counter()
    returns = np.asarray(metrics["eval_returns"][:, -1])  # [seeds, episodes], the evaluation at the end
    return dict(compile_s=t1 - t0, run_s=t2 - t1, returns=returns, steps_per_s=seeds * timesteps / (t2 - t1))


# --------------------------------------------------------------------------- #
# rejax
# --------------------------------------------------------------------------- #
class FiveValueStep:
    """gymnax >= 1.0's environment behind gymnax < 1.0's ``step``: ``(obs, state, reward, done, info)``."""

    def __init__(self, env: Any):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # copy/deepcopy probe dunders before _env exists
            raise AttributeError(name)
        return getattr(self._env, name)

    def step(self, key, state, action, params=None):
        obs, state, reward, terminated, truncated, info = self._env.step(key, state, action, params)
        return obs, state, reward, jnp.logical_or(terminated, truncated), info

    def reset(self, key, params=None):
        return self._env.reset(key, params)


def make_rejax_ddpg():
    """rejax's TD3 specialised to DDPG (rejax 0.1.3 has no DDPG)."""
    import flax.linen as nn
    from rejax.algos.td3 import TD3
    from rejax.networks import DeterministicPolicy, QNetwork

    class RejaxDDPG(TD3):
        @classmethod
        def create_agent(cls, config, env, env_params):
            space = env.action_space(env_params)
            actor = DeterministicPolicy(int(np.prod(space.shape)), (space.low, space.high),
                                        hidden_layer_sizes=HIDDEN, activation=nn.relu)
            return {"actor": actor, "critic": QNetwork(hidden_layer_sizes=HIDDEN, activation=nn.relu)}

        def update_critic(self, ts, minibatch):
            # DDPG's target: no target-policy smoothing noise, one critic (TD3's version unpacks two).
            def critic_loss_fn(params):
                next_action = self.actor.apply(ts.actor_target_params, minibatch.next_obs)
                q_next = self.vmap_critic(ts.critic_target_params, minibatch.next_obs, next_action)[0]
                target = minibatch.reward + (1 - minibatch.done) * self.gamma * q_next
                q = self.vmap_critic(params, minibatch.obs, minibatch.action)[0]
                return jnp.mean(jnp.square(q - jax.lax.stop_gradient(target)))

            grads = jax.grad(critic_loss_fn)(ts.critic_ts.params)
            return ts.replace(critic_ts=ts.critic_ts.apply_gradients(grads=grads))

    return RejaxDDPG


def prepare_rejax(timesteps: int, seed: int = 0, compiler_options: Optional[dict] = None) -> Program:
    from rejax.evaluate import evaluate

    env, env_params = _gymnax_pendulum()
    env = FiveValueStep(env)
    algo = make_rejax_ddpg().create(
        env=env, env_params=env_params, total_timesteps=timesteps, eval_freq=timesteps, skip_initial_evaluation=True,
        num_envs=1, buffer_size=MEMORY, fill_buffer=RANDOM_STEPS, batch_size=BATCH, learning_rate=1e-3, gamma=0.99,
        polyak=0.995, exploration_noise=0.2, num_critics=1, policy_delay=1, target_noise=0.0, target_noise_clip=0.0,
    )
    algo = algo.replace(eval_callback=lambda algo, ts, rng: jnp.zeros(()))  # evaluation timed separately
    key = jax.random.key(seed)
    t0 = time.perf_counter()
    compiled = jax.jit(algo.train).lower(key).compile(compiler_options=compiler_options)
    compile_s = time.perf_counter() - t0

    def finish(out):
        t2 = time.perf_counter()
        _, returns = jax.block_until_ready(
            evaluate(algo.make_act(out[0]), jax.random.key(10_000), env, env_params, EVAL_EPISODES, 200))
        return dict(eval_s=time.perf_counter() - t2, returns=np.asarray(returns))

    return Program(compile_s, lambda: jax.block_until_ready(compiled(key)), finish)


# --------------------------------------------------------------------------- #
# skrl JAX
# --------------------------------------------------------------------------- #
def run_skrl_jax(timesteps: int, seed: int = 0) -> dict[str, Any]:
    """skrl JAX with the example settings, run as in ``e2e_pendulum.py`` (one implementation of that run); its
    "compile" column is the agent's set-up (models, memory, ``init``: skrl jits its pieces lazily)."""
    from e2e_pendulum import run_skrl

    r = run_skrl("jax", seed, timesteps, EVAL_EPISODES, random_timesteps=RANDOM_STEPS)
    return dict(compile_s=r["setup_seconds"], run_s=r["train_seconds"], runs=[r["train_seconds"]],
                eval_s=r["eval_seconds"], returns=np.asarray(r["eval_returns"]),
                steps_per_s=timesteps / r["train_seconds"])


# --------------------------------------------------------------------------- #
# report
# --------------------------------------------------------------------------- #
def _row(name: str, r: dict[str, Any], ratio: Optional[float]) -> str:
    ret = r["returns"]
    runs = " / ".join(f"{t:.1f}" for t in r["runs"])
    speed_up = "—" if ratio is None else f"{ratio:.2f}"
    return (f"| {name} | {r['compile_s']:.1f} | {r['run_s']:.1f} ({runs}) | {r['steps_per_s']:.0f} | {speed_up} | "
            f"{r.get('eval_s', float('nan')):.2f} | {np.mean(ret):.1f} ± {np.std(ret):.1f} |")


def main(argv: Optional[list[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--timesteps", type=int, default=15_000, help="timesteps of each run (default 15000)")
    parser.add_argument("--seeds", type=int, default=8, help="vmapped ddpgx seeds (0: skip)")
    parser.add_argument("--skip-rejax", action="store_true", help="leave rejax out")
    parser.add_argument("--skip-skrl", action="store_true", help="leave skrl JAX out")
    parser.add_argument("--skip-logging", action="store_true", help="skip the run with host callbacks")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved rounds of the compiled programs (ddpgx, rejax); medians are reported "
                        "(skrl: 1 run)")
    parser.add_argument("--tuned-xla", action="store_true",
                        help=f"also run ddpgx and rejax compiled with the XLA options {TUNED_XLA}")
    parser.add_argument("--xla-defaults", action="store_true",
                        help="also run ddpgx compiled with XLA's default options (not ddpgx.core.xla_cpu's)")
    parser.add_argument("--markdown", help="append the report to this file")
    args = parser.parse_args(argv)
    if args.timesteps <= RANDOM_STEPS:
        parser.error(f"--timesteps={args.timesteps} is invalid: expected more than {RANDOM_STEPS}")
    if args.repeats < 1:
        parser.error(f"--repeats={args.repeats} is invalid: expected an integer >= 1")
    if args.seeds < 0:
        parser.error(f"--seeds={args.seeds} is invalid: expected an integer >= 0")

    load_start, meter, started = _loadavg(), CpuMeter(), time.perf_counter()
    programs: dict[str, Program] = {}
    cpu_use: dict[str, str] = {}

    def compile_(name, fn):
        print(f"compiling {name} ...", file=sys.stderr, flush=True)
        programs[name] = fn()

    reference = "ddpgx jitted loop"
    compile_(reference, lambda: prepare_ddpgx(args.timesteps))
    rejax_name = "rejax 0.1.3 DDPG (TD3 subclass)"
    if not args.skip_rejax:
        try:
            import rejax  # noqa: F401
        except ImportError:
            print("rejax is not installed (pip install rejax); skipped", file=sys.stderr)
        else:
            compile_(rejax_name, lambda: prepare_rejax(args.timesteps))
    if args.tuned_xla:
        compile_("ddpgx jitted loop, tuned XLA options",
                 lambda: prepare_ddpgx(args.timesteps, compiler_options=TUNED_XLA))
        if rejax_name in programs:
            compile_("rejax 0.1.3 DDPG, tuned XLA options",
                     lambda: prepare_rejax(args.timesteps, compiler_options=TUNED_XLA))
    if args.xla_defaults:
        compile_("ddpgx jitted loop, XLA's default options", lambda: prepare_ddpgx(args.timesteps, compiler_options={}))
    if not args.skip_logging:
        compile_("ddpgx jitted loop + progress/TensorBoard callbacks every 1,000 steps",
                 lambda: prepare_ddpgx(args.timesteps, logging=True))
    timing_meter = CpuMeter()
    time_interleaved(programs, args.repeats)
    cpu_use["compiled programs, interleaved"] = timing_meter.summary()
    results: dict[str, dict[str, Any]] = {}
    base = np.asarray(programs[reference].runs)
    for name, program in programs.items():
        run_s = float(np.median(program.runs))
        results[name] = dict(compile_s=program.compile_s, run_s=run_s, runs=program.runs,
                             steps_per_s=args.timesteps / run_s, **program.finish(program.out),
                             ratio=float(np.median(np.asarray(program.runs) / base)))
    if not args.skip_skrl:
        try:
            import skrl  # noqa: F401
        except ImportError:
            print("skrl is not installed (pip install skrl); skipped", file=sys.stderr)
        else:
            print("running skrl JAX ...", file=sys.stderr, flush=True)
            m = CpuMeter()
            r = run_skrl_jax(args.timesteps)
            cpu_use["skrl JAX"] = m.summary()
            results["skrl JAX DDPG + SequentialTrainer"] = dict(r, ratio=r["run_s"] / results[reference]["run_s"])
    if args.seeds:
        m = CpuMeter()
        results[f"ddpgx, {args.seeds} seeds vmapped"] = run_ddpgx_seeds(args.timesteps, args.seeds)
        cpu_use["vmapped seeds"] = m.summary()

    devices = [str(d) for d in jax.devices()]
    lines = [
        "### Whole training runs on Pendulum-v1 (`benchmarks/jitted_loop.py`)",
        "",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; command: "
        f"`python benchmarks/jitted_loop.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"- machine: {platform.platform()}; CPU: {_cpu_model()}; nproc: {os.cpu_count()}",
        f"- python {platform.python_version()}; jax {jax.__version__} (devices {devices}); flax {_version('flax')}; "
        f"gymnax {_version('gymnax')}; rejax {_version('rejax')}; skrl {_version('skrl')}",
        f"- config: Pendulum-v1, {args.timesteps} steps, 1 env, batch {BATCH}, {HIDDEN[0]}-{HIDDEN[1]} ReLU MLPs, "
        f"Adam 1e-3, gamma 0.99, tau 0.005, replay {MEMORY}, {RANDOM_STEPS} random steps, 1 update per step",
        f"- load average at start: {load_start}; at end: {_loadavg()}; total {time.perf_counter() - started:.0f} s",
        f"- CPU use over the whole run: {meter.summary()}",
        "",
        "| contender | compile s | training run s, median (each run) | env steps/s | ddpgx's speed-up | "
        "eval s (10 episodes) | eval return (mean ± std, 10 episodes) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        if "vmapped" in name:
            continue
        lines.append(_row(name, r, None if name == reference else r["ratio"]))
    lines.append("")
    lines.append(f"The compiled programs ran interleaved, {args.repeats} rounds in rotating order (the same program on "
                 "the same key each time). ddpgx's speed-up: the median over rounds of the contender's training run "
                 "time / ddpgx's in the same round (for skrl, run once after the rounds: its time / ddpgx's median; "
                 "for ddpgx's own variants, their time relative to the plain ddpgx row). "
                 "Compile and evaluation are excluded from the training run time.")
    for name, r in results.items():
        if "vmapped" in name:
            per_seed = r["returns"].mean(axis=1)
            lines += [
                "",
                f"**{name}** (one program, evaluation of 10 episodes per seed inside it): compile "
                f"{r['compile_s']:.1f} s, run {r['run_s']:.1f} s, {r['steps_per_s']:.0f} env steps/s in all; "
                f"mean evaluation return per seed: {', '.join(f'{v:.1f}' for v in per_seed)} "
                f"(worst {per_seed.min():.1f}; {int(np.sum(per_seed >= -200))}/{len(per_seed)} seeds >= -200).",
            ]
    lines += ["", "CPU use per contender (other processes > 0 means disturbed timings):", ""]
    lines += [f"- {name}: {use}" for name, use in cpu_use.items()]
    report = "\n".join(lines) + "\n"
    print(report)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + report)


if __name__ == "__main__":
    main()
