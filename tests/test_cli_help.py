"""Help and errors of the command line and the benchmarks: ``ddpgx --help`` imports nothing heavy, benchmark options
all have help text, and a benchmark asked only for libraries that are missing says so."""

from __future__ import annotations

import argparse
import ast
import glob
import os
import subprocess
import sys
import time


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("jax", "torch", "gymnasium", "numpy", "flax", "distrax")


def test_main_module_parses_arguments_before_importing_anything_heavy():
    # ddpgx/__main__.py loaded on its own (not through the package's __init__): --help must not import the stack.
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('cli_main', {os.path.join(ROOT, 'ddpgx', '__main__.py')!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "for argv in (['--help'], ['train', '--help'], ['eval', '--help']):\n"
        "    try:\n        module.main(argv)\n    except SystemExit:\n        pass\n"
        f"print('HEAVY', sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "--set KEY=VALUE" in done.stdout and "--video DIR" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "HEAVY []"


def test_ddpgx_help_is_fast():
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ddpgx", "--help"], capture_output=True,
                          text=True, timeout=60)
    seconds = time.perf_counter() - start
    assert done.returncode == 0 and "train" in done.stdout
    assert " jax" not in done.stderr and " torch" not in done.stderr  # -X importtime lists every module imported
    assert seconds < 1.0  # about 0.05 s of CPU on the 2-core VM; the margin is for a loaded machine, not for JAX (2 s)


def _arguments_without_help(path: str) -> list[str]:
    with open(path) as file:
        tree = ast.parse(file.read())
    missing = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
                and not any(k.arg == "help" for k in node.keywords)):
            missing.append(f"{os.path.basename(path)}:{node.lineno}")
    return missing


def test_every_cli_and_benchmark_option_has_help_text():
    paths = sorted(glob.glob(os.path.join(ROOT, "benchmarks", "*.py"))) + [os.path.join(ROOT, "ddpgx",
                                                                                        "__main__.py")]
    missing = [m for path in paths for m in _arguments_without_help(path)]
    assert missing == []
    # and argparse accepts them (no broken help strings such as a lone %)
    from ddpgx import __main__ as cli

    assert isinstance(cli._parser(), argparse.ArgumentParser)
    cli._parser().format_help()


def test_skrl_reference_prints_help():
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "skrl_reference.py"), "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "usage: skrl_reference.py" in done.stdout and "--batch-sizes" in done.stdout


def test_e2e_benchmark_without_skrl_names_what_is_missing():
    # skrl made unimportable in the child: asking for skrl-jax alone is an error that says so (not a ZeroDivisionError)
    script = os.path.join(ROOT, "benchmarks", "e2e_pendulum.py")
    code = ("import runpy, sys\nsys.modules['skrl'] = None\n"
            f"sys.path.insert(0, {os.path.dirname(script)!r})\n"
            f"sys.argv = [{script!r}, '--libraries', 'skrl-jax', '--seeds', '0']\n"
            f"runpy.run_path({script!r}, run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "none of the libraries asked for is installed: skrl-jax" in done.stderr
    assert "ZeroDivisionError" not in done.stderr
