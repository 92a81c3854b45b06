"""Re-execute notebooks in place so their committed outputs come from the current code.

    python tools/execute_notebooks.py notebooks solutions
    python tools/execute_notebooks.py notebooks/03_reward_model.ipynb

Prints each notebook's wall time. Notebooks run in order, so chapter 03's checkpoint exists
before chapters 05-06 reuse it.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def targets(args: list[str]) -> list[Path]:
    paths: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            paths.extend(sorted(p.glob("*.ipynb")))
        elif p.suffix == ".ipynb" and p.exists():
            paths.append(p)
        else:
            raise SystemExit(f"not a notebook or folder of notebooks: {arg}")
    return paths


def main(argv: list[str]) -> int:
    for path in targets(argv or ["notebooks", "solutions"]):
        nb = nbformat.read(path, as_version=4)
        start = time.perf_counter()
        NotebookClient(nb, timeout=900, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        nbformat.write(nb, path)
        print(f"{time.perf_counter() - start:6.1f} s  {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
