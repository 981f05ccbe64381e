"""The API reference site: ``mkdocs build --strict`` of this checkout succeeds and covers every module.

The build reads the docstrings with griffe (statically) and fails on any warning: a parameter documented that the
signature does not have, a malformed section, a cross-reference (``:func:`name```) to a name that does not exist.
Builds of a small project with the same configuration check that such faults do fail it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("mkdocs", reason="the docs build needs the docs (or test) extra: pip install '.[docs]'")
pytest.importorskip("mkdocstrings_handlers.python", reason="the docs build needs mkdocstrings-python")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
from griffe_rst import rst_to_markdown  # noqa: E402
from reference_pages import PACKAGES, _all_pages  # noqa: E402

sys.path.remove(str(ROOT / "docs"))


def _build(project: Path, site: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # griffe reads the packages from `project`
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


def test_strict_build_has_no_warnings_and_a_page_per_module(tmp_path):
    result = _build(ROOT, tmp_path / "site")
    log = result.stdout + result.stderr
    assert result.returncode == 0 and "WARNING" not in log, log
    pages = _all_pages()
    modules = {name for name, _ in pages}
    for package in PACKAGES:  # every .py file under the packages has its page, found independently here
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            assert ".".join(parts[:-1] if parts[-1] == "__init__" else parts) in modules, path
    for name, page in pages:
        html = (tmp_path / "site" / page.removesuffix(".md").removesuffix("/index") / "index.html").read_text()
        assert f'id="{name}"' in html, f"{page} does not document {name}"
    # the reST roles became links: no ":func:`" text is left on any page
    for html in (tmp_path / "site" / "reference").rglob("*.html"):
        text = html.read_text()
        assert ":func:" not in text and ":class:" not in text and ":mod:" not in text, html


MODULE = '''"""A module for the build to read."""


def scale(x, factor=2.0):
    """Scales ``x``; see {reference}.

    Args:
      x: the value.
      factor: the multiplier.{extra_parameter}
    """
    return x * factor
'''
GOOD_MODULE = MODULE.format(reference=":func:`scale`", extra_parameter="")
BAD_MODULE = MODULE.format(reference=":func:`no_such_function`",
                           extra_parameter="\n      offset: a parameter the signature does not have.")


def test_strict_build_fails_on_bad_docstrings(tmp_path):
    project = tmp_path / "project"
    (project / "docs").mkdir(parents=True)
    shutil.copy(ROOT / "mkdocs.yml", project)
    for helper in ("reference_pages.py", "griffe_rst.py"):
        shutil.copy(ROOT / "docs" / helper, project / "docs")
    (project / "docs" / "index.md").write_text("# index\n")
    (project / "docs" / "implementation-notes.md").write_text("# notes\n")
    for package in PACKAGES:
        (project / package).mkdir()
        (project / package / "__init__.py").write_text(f'"""The {package} package."""\n')
    (project / PACKAGES[0] / "module.py").write_text(BAD_MODULE)
    result = _build(project, tmp_path / "site")
    log = result.stdout + result.stderr
    assert result.returncode != 0, log
    assert "Parameter 'offset' does not appear in the function signature" in log, log
    assert "Could not find cross-reference target 'no_such_function'" in log, log
    # without the faults, the same project builds
    (project / PACKAGES[0] / "module.py").write_text(GOOD_MODULE)
    result = _build(project, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("rst", "markdown"), [
    (":func:`init`", "[`init`][init]"),
    (":class:`~ddpgx.types.Transition`", "[`Transition`][ddpgx.types.Transition]"),
    (":mod:`ddpgx.replay` and :meth:`DDPG.save`", "[`ddpgx.replay`][ddpgx.replay] and [`DDPG.save`][DDPG.save]"),
    (":class:`_OneDNNLinear`", "`_OneDNNLinear`"),  # private: not rendered, so not linked
    ("``grad``\\ s", "``grad``s"),
    ("Usage::\n\n    x = 1", "Usage:\n\n    x = 1"),
    ("a ``x::y`` b", "a ``x::y`` b"),
])
def test_rst_roles_become_markdown_cross_references(rst, markdown):
    assert rst_to_markdown(rst) == markdown
