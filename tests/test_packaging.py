"""pyproject.toml declares every third-party package rmcourse imports, so `pip install -e .` into
another environment fails at install time, not at the first import."""
from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported_top_level_modules() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "rmcourse").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names.add(node.module.split(".")[0])
    return names - set(sys.stdlib_module_names) - {"rmcourse", "__future__"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower().replace("_", "-")
            for dep in project["dependencies"]}


def test_every_imported_package_is_declared():
    dists = importlib.metadata.packages_distributions()
    declared = _declared()
    missing = []
    for module in sorted(_imported_top_level_modules()):
        owners = {d.lower().replace("_", "-") for d in dists.get(module, [])}
        if not owners:
            missing.append(f"{module} (not installed here)")
        elif not owners & declared:
            missing.append(f"{module} (from {sorted(owners)})")
    assert not missing, f"rmcourse imports packages pyproject.toml does not declare: {missing}"


def test_dependencies_are_unpinned_and_pins_live_in_constraints():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert all(not re.search(r"[<>=~]", dep) for dep in project["dependencies"]), \
        "pyproject.toml declares names only; constraints.txt keeps the exact versions"
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in (ROOT / "constraints.txt").read_text().splitlines() if "==" in line}
    assert _declared() <= pinned, f"not pinned in constraints.txt: {_declared() - pinned}"
