"""The README's code blocks run as written, in order, as a user would from a fresh directory.

Python blocks share one namespace (later ones use what earlier ones defined); a block whose first line is a comment
naming a file (``# my_package/__init__.py``, ``# run.toml: ddpgx train --config run.toml``) is written to that file,
and the command after the colon, if any, is run; bash blocks run line by line. Not run, and why:

- the first block (the README's two commands): CI itself runs the second, and ``tests/test_main_job.py`` checks
  that the first trains the default run;
- ``pip install ...`` (this environment is the installed one), ``tensorboard ...`` (a server that does not return),
  ``torchrun ...`` and ``python -m ddpgx.cli.launch ...`` (they launch a script of the reader's,
  ``tests/torchrun_checks.py`` and ``tests/test_sharding.py`` launch real ones).
"""

from __future__ import annotations

import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOT_RUN = ("pip install", "tensorboard ", "torchrun ", "python -m ddpgx.cli.launch")
FILE_COMMENT = re.compile(r"#\s*([\w./-]+\.(?:py|toml|json))(?::\s*(.+))?$")


def blocks(text: str) -> list[tuple[str, str]]:
    """``(language, code)`` of every fenced block, in order."""
    return [(m.group(1), m.group(2)) for m in re.finditer(r"^```(\w*)\n(.*?)^```", text, flags=re.S | re.M)]


def commands(code: str) -> list[str]:
    """The commands of a bash block: one per line, comments and skipped commands left out."""
    out = []
    for line in code.splitlines():
        command = line.split("  #")[0].strip()
        if command and not command.startswith("#") and not command.startswith(NOT_RUN):
            out.append(command)
    return out


def run_command(command: str, cwd: pathlib.Path) -> None:
    argv = shlex.split(command)
    if argv[0] == "ddpgx":  # the installed console script, run with this interpreter
        argv = [sys.executable, "-m", "ddpgx", *argv[1:]]
    elif argv[0] == "python":
        argv[0] = sys.executable
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(cwd), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"README command failed: {command}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"


def test_the_blocks_are_found_and_the_split_works():
    found = blocks((ROOT / "README.md").read_text())
    assert found[0][0] == "bash" and found[0][1].splitlines()[0] == "pip install . && python -m ddpgx train"
    assert sum(language == "python" for language, _ in found) >= 5
    assert commands("pip install x\nddpgx eval runs/a  # comment\n# note\ntensorboard --logdir runs\n") == [
        "ddpgx eval runs/a"]
    assert FILE_COMMENT.match("# run.toml: ddpgx train --config run.toml").groups() == (
        "run.toml", "ddpgx train --config run.toml")


@pytest.mark.slow
def test_every_readme_snippet_runs_as_written(tmp_path, monkeypatch):
    pytest.importorskip("gymnax")
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace: dict = {"__name__": "__readme__"}
    for language, code in blocks((ROOT / "README.md").read_text())[1:]:
        first = code.splitlines()[0] if code.strip() else ""
        named = FILE_COMMENT.match(first)
        if named:
            path = tmp_path / named.group(1)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(code)
            if named.group(2):
                run_command(named.group(2), tmp_path)
        elif language == "python":
            exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code
        elif language == "bash":
            for command in commands(code):
                run_command(command, tmp_path)
    assert (tmp_path / "runs" / "small" / "run.json").exists()
