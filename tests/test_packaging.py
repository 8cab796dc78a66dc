"""Every package in the source tree is listed in pyproject.toml, under its installed name.

The CLI and the migrations install under other names (``mlvault_cli``, ``mlvault_migrations``),
which needs an explicit package list; a package missing from it would work in the editable
checkout and vanish from the wheel. This test names the missing one in a second, long before
the (slower) wheel-install test would fail on an import.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
INSTALLED_AS = {"vault": "vault", "cli": "mlvault_cli", "migrations": "mlvault_migrations"}


def _packages_in_tree() -> set[str]:
    found = set()
    for folder, name in INSTALLED_AS.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(ROOT / folder).parts
            found.add(".".join((name, *parts)))
    return found


def test_every_package_is_listed_for_the_wheel() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    tree = _packages_in_tree()
    assert tree - listed == set(), f"add these to [tool.setuptools] packages: {sorted(tree - listed)}"
    assert listed - tree == set(), f"listed but not in the tree: {sorted(listed - tree)}"
    assert config["tool"]["setuptools"]["package-dir"] == {
        "": ".",
        "mlvault_cli": "cli",
        "mlvault_migrations": "migrations",
    }
