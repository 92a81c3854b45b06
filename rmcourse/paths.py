"""Where the course keeps files it makes (checkpoints, caches): never inside site-packages."""
from __future__ import annotations

import os
from pathlib import Path


def repo_root() -> Path:
    """The course checkout: the folder holding `rmcourse/` (override with RMCOURSE_ROOT)."""
    env = os.environ.get("RMCOURSE_ROOT")
    return Path(env) if env else Path(__file__).resolve().parent.parent


def artifacts_dir(*parts: str) -> Path:
    """`artifacts/<parts...>` under the checkout (git-ignored), created on demand.

    Override the base with RMCOURSE_ARTIFACTS, e.g. to share checkpoints between clones.
    """
    base = Path(os.environ.get("RMCOURSE_ARTIFACTS", repo_root() / "artifacts"))
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
