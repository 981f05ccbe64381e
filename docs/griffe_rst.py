"""griffe extension: the reST idioms of ddpgx's docstrings, read as Markdown cross-references by the docs site.

The docstrings are Google style with reST inline markup, which is what ``help()``, IDEs and doctest show. For the
site, each Python role (``:func:`init```, ``:class:`~ddpgx.types.Transition```, ``:mod:`ddpgx.replay```) becomes
a mkdocs-autorefs cross-reference, so it renders as a link and ``mkdocs build --strict`` fails on a reference to a
name that does not exist. Unqualified names are resolved in the docstring's scope (mkdocstrings-python's
``scoped_crossrefs``). Private names (``_name``), which the site does not render, stay code. A paragraph ending in
``::`` (a reST literal block) ends in ``:`` instead, its indented block being a Markdown code block already, and
reST's escaped space after inline markup (``grad``\\ s) is dropped.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:mod|func|class|meth|attr|data|obj|exc|const):`(~?)([\w.]+)`")
_LITERAL_BLOCK = re.compile(r"(?<=\S)::$", re.MULTILINE)
_ESCAPED_SPACE = re.compile(r"(?<=`)\\ ")  # ``grad``\ s: reST's separator between markup and text


def _role_to_markdown(match: re.Match) -> str:
    short, target = match.group(1), match.group(2)
    title = target.rpartition(".")[2] if short else target
    if any(part.startswith("_") and not part.startswith("__") for part in target.split(".")):
        return f"`{title}`"
    return f"[`{title}`][{target}]"


def rst_to_markdown(text: str) -> str:
    """Python roles as autorefs cross-references; ``::`` literal-block markers as ``:``; escaped spaces dropped."""
    text = _ROLE.sub(_role_to_markdown, text)
    return _ESCAPED_SPACE.sub("", _LITERAL_BLOCK.sub(":", text))


class RstRoles(griffe.Extension):
    """Rewrites every docstring once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        # griffe runs on_object for the members of a package, not for the package module itself.
        self.on_object(obj=pkg)
