"""Run All on an unsolved exercise notebook reaches the end, and the notebooks link right.

Every `exercises/NN_*.ipynb` is executed as committed (every exercise still raising
NotImplementedError) with nbclient, in a fresh kernel of this Python, working directory
`exercises/`, at most 300 s per cell. No cell may end in an error: a check cell prints its "⏳ ...
not implemented yet" line, and a cell that uses a learner's function says "⏳ solve exercise N
first" (`rmcourse.checks.common.needs_exercise`). The run takes minutes on a CPU (chapter 07
loads SmolLM2), so the notebooks run one after another, each in its own test.

The other tests here are quick: titles ("(solutions)" only on solution notebooks), no notebook
linking to itself, each exercise notebook linking to its worked solutions, and `needs_exercise`.
"""
from __future__ import annotations

import importlib.util
import os
import re
import sys
import time
from pathlib import Path

import nbformat
import pytest

from rmcourse import grade
from rmcourse.checks.common import needs_exercise

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
CELL_TIMEOUT = 300

spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools" / "make_exercises.py")
make_exercises = importlib.util.module_from_spec(spec)
sys.modules.setdefault("make_exercises", make_exercises)
spec.loader.exec_module(make_exercises)


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _markdown(nb) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def _stream(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


# ------------------------------------------------------------------ Run All, unsolved
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_run_all_on_an_unsolved_exercise_notebook_reaches_the_end(path):
    from nbclient import NotebookClient

    nb = _read(path)  # executed in memory: the committed file stays clean
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", allow_errors=True,
                            shutdown_kernel="immediate",
                            kernel_manager_class=grade._kernel_manager_class(),  # this Python
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute(env={**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1"})
    print(f"{path.name}: Run All took {time.monotonic() - start:.1f} s")

    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (
                f"{path.name} cell {i} stopped Run All with {out.ename}: {out.evalue}\n{cell.source}")

    _, sections, _ = grade.exercise_cells(nb)
    assert sections, f"{path.name} has no '## Exercise N' heading"
    for number, indices in sections.items():
        lines = [line for i in indices for line in _stream(nb.cells[i]).splitlines()]
        waiting = [line for line in lines if line.startswith("⏳") and (
            "not implemented yet" in line or f"solve exercise {number} first" in line)]
        assert waiting, (f"{path.name}: exercise {number} is unsolved, but none of its cells said so "
                         f"with a ⏳ line; they printed {lines}")
        assert not any(line.startswith("✅") for line in lines), \
            f"{path.name}: exercise {number} passed its check unsolved"


# ------------------------------------------------------------------ titles and links
@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_solution_and_exercise_titles_and_links(path):
    solution, exercise = _read(path), _read(ROOT / "exercises" / path.name)
    title = solution.cells[0].source.splitlines()[0]
    assert title.startswith("# ") and title.endswith(" (solutions)"), title
    exercise_title = exercise.cells[0].source.splitlines()[0]
    assert exercise_title == title.removesuffix(" (solutions)"), exercise_title
    assert f"](../solutions/{path.name})" in exercise.cells[0].source, \
        "the exercise notebook's opening must link to its worked solutions"
    assert f"../solutions/{path.name})" not in _markdown(solution), "the solution links to itself"
    assert f"../exercises/{path.name})" not in _markdown(exercise), "the exercise links to itself"


def test_a_self_link_becomes_a_link_to_the_solutions_or_is_refused():
    name = "05_x.ipynb"
    source = (f"Back to the chapter · The exercise version, without solutions: "
              f"[exercises/{name}](../exercises/{name})")
    assert make_exercises.exercise_markdown(source, name) == (
        f"Back to the chapter · The worked solutions, with their outputs: "
        f"[solutions/{name}](../solutions/{name})")
    other = "../exercises/06_y.ipynb"
    assert make_exercises.exercise_markdown(f"[next]({other})", name) == f"[next]({other})"
    with pytest.raises(make_exercises.MarkerError, match="its own exercise notebook"):
        make_exercises.exercise_markdown(f"Exercises: [here](../exercises/{name})", name)
    with pytest.raises(make_exercises.MarkerError, match="links to itself"):
        make_exercises.exercise_markdown(f"[me](../solutions/{name})", name)
    with pytest.raises(make_exercises.MarkerError, match=r"\(solutions\)"):
        make_exercises.exercise_title("# 05 · X: exercises\n\ntext", name)
    assert make_exercises.exercise_title("# 05 · X: exercises (solutions)\n\ntext", name) == (
        f"# 05 · X: exercises\n\ntext\n\nThe worked solutions, with their outputs, are in "
        f"[solutions/{name}](../solutions/{name}).")


# ------------------------------------------------------------------ needs_exercise
def _todo():
    raise NotImplementedError("write your code here")


def test_needs_exercise_and_the_cells_that_use_its_results(capsys):
    with needs_exercise(7):  # the cell that calls the unsolved function
        _todo()
        result_of_seven = 1  # noqa: F841  never reached
    assert capsys.readouterr().out.startswith("⏳ solve exercise 7 first: this cell uses the function")
    with needs_exercise(7):  # a later cell that uses what that cell did not compute
        eval("result_of_seven")
    assert capsys.readouterr().out.startswith("⏳ solve exercise 7 first: this cell uses results")
    with pytest.raises(NameError):  # exercise 8 never raised NotImplementedError: a real NameError
        with needs_exercise(8):
            eval("result_of_eight")
    with pytest.raises(ZeroDivisionError):  # a learner's bug is not hidden
        with needs_exercise(7):
            1 / 0
    with needs_exercise(7):  # solved: the cell runs through, and exercise 7 counts as solved again
        pass
    with pytest.raises(NameError):
        with needs_exercise(7):
            eval("result_of_seven")
    assert capsys.readouterr().out == ""


def test_needs_exercise_is_still_importable_from_chapter_09():
    from rmcourse.checks import ch09

    assert ch09.needs_exercise is needs_exercise
    assert re.search(r"from rmcourse\.checks\.ch09 import \([^)]*needs_exercise",
                     _read(ROOT / "solutions" / "09_policy_against_a_reward_model.ipynb").cells[1].source)
