"""mkdocs hook: one API reference page per module of ``ddpgx`` and ``ddpgx_torch``, found in the package tree.

The pages are generated at build time from the directories on disk, so the reference follows the packages as they
are (a module moved into a subpackage moves in the navigation too) and no page names a module by hand. Each page
holds one mkdocstrings directive (``::: ddpgx.replay``); the docstrings themselves are read by griffe, statically.
A package's page shows its own docstring and public names, its modules get pages of their own.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files

PACKAGES = ("ddpgx", "ddpgx_torch")
SECTION = "API reference"
ROOT = Path(__file__).resolve().parent.parent


def _modules(package_dir: Path, dotted: str) -> list[tuple[str, str]]:
    """(dotted module name, page path) of a package and everything under it, the package first, then by name."""
    pages = [(dotted, f"reference/{dotted.replace('.', '/')}/index.md")]
    for path in sorted(package_dir.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            pages += _modules(path, f"{dotted}.{path.name}")
        elif path.suffix == ".py" and path.name != "__init__.py":
            name = f"{dotted}.{path.stem}"
            pages.append((name, f"reference/{name.replace('.', '/')}.md"))
    return pages


def _nav(pages: list[tuple[str, str]]) -> list:
    """Navigation entries: each package a section whose first entry is its own page (its docstring and public
    names), then its modules and subpackages in the order of their names."""
    tree: dict[str, list] = {}
    order: list[str] = []
    for name, page in pages:
        if page.endswith("/index.md"):
            tree[name] = [{f"{name} (package)": page}]
            order.append(name)
            parent = name.rpartition(".")[0]
            if parent in tree:
                tree[parent].append({name: tree[name]})
        else:
            tree[name.rpartition(".")[0]].append({name: page})
    return [{name: tree[name]} for name in order if "." not in name]


def _all_pages() -> list[tuple[str, str]]:
    pages = []
    for package in PACKAGES:
        pages += _modules(ROOT / package, package)
    return pages


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    """Appends the API reference section to the navigation written in mkdocs.yml."""
    config.nav = [*(config.nav or []), {SECTION: _nav(_all_pages())}]
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Adds one generated Markdown page per module."""
    for name, page in _all_pages():
        files.append(File.generated(config, page, content=f"::: {name}\n"))
    return files
