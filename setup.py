"""Build hook: ship the built-in spec catalog inside the package.

The task and encoder specs live at the top of the checkout (``tasks/``,
``encoders/``), where people read and edit them.  A wheel must carry them too,
or an installed ``evalbench`` finds no tasks: ``build_py`` copies the YAML
files (and the two catalog READMEs, never ``encoders/checkpoints``) into
``evalbench/_catalog/``, which :func:`evalbench.paths.builtin_catalog` reads
with ``importlib.resources``.  Everything else is in ``pyproject.toml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
CATALOG = {
    "tasks": ["README.md", "*.yaml", "_base/*.yaml", "suites/*.yaml"],
    "encoders": ["README.md", "*.yaml", "recipes/*.yaml"],
}


def catalog_files() -> list[tuple[Path, Path]]:
    """``(source, path inside evalbench/_catalog)`` of every catalog file."""
    out = []
    for folder, patterns in CATALOG.items():
        for pattern in patterns:
            for source in sorted((ROOT / folder).glob(pattern)):
                out.append((source, source.relative_to(ROOT)))
    return out


class BuildWithCatalog(build_py):
    """``build_py`` that also copies the spec catalog into the built package."""

    def run(self) -> None:
        """Build the package as usual, then copy the catalog into ``<build_lib>/evalbench/_catalog``."""
        super().run()
        target = Path(self.build_lib) / "evalbench" / "_catalog"
        shutil.rmtree(target, ignore_errors=True)
        for source, relative in catalog_files():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / relative)


setup(cmdclass={"build_py": BuildWithCatalog})
