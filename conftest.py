"""Repo-wide pytest hooks: report how long each notebook took under nbval."""
from __future__ import annotations

import os
from collections import defaultdict

_NOTEBOOK_SECONDS: dict[str, float] = defaultdict(float)


def pytest_runtest_logreport(report):
    # nbval makes one test item per cell; add up all phases per notebook file.
    path = report.nodeid.split("::", 1)[0]
    if path.endswith(".ipynb"):
        _NOTEBOOK_SECONDS[path] += report.duration


def pytest_terminal_summary(terminalreporter):
    if not _NOTEBOOK_SECONDS:
        return
    terminalreporter.section("notebook wall time (nbval, this machine)")
    for path, seconds in sorted(_NOTEBOOK_SECONDS.items()):
        flag = "  <-- over the 120 s budget" if seconds > 120 else ""
        terminalreporter.write_line(f"{seconds:7.1f} s  {path}{flag}")
    total = sum(_NOTEBOOK_SECONDS.values())
    terminalreporter.write_line(f"{total:7.1f} s  total ({len(_NOTEBOOK_SECONDS)} notebooks)")


def pytest_configure(config):
    os.environ.setdefault("MPLBACKEND", "Agg")
