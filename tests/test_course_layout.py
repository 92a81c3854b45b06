"""The course's conventions, checked on every notebook (so a new chapter cannot skip them)."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
EXERCISES = sorted((ROOT / "exercises").glob("*.ipynb"))
LEAK = re.compile(r"/root/|/home/[a-z]+/|/tmp/|/work/|site-packages")

spec = importlib.util.spec_from_file_location("make_exercises", ROOT / "tools" / "make_exercises.py")
make_exercises = importlib.util.module_from_spec(spec)
sys.modules["make_exercises"] = make_exercises
spec.loader.exec_module(make_exercises)


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def test_course_has_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no chapter"
    assert SOLUTIONS, "solutions/ holds no solution notebook"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_notebook_opens_with_intro_and_ends_with_sources(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.lstrip().startswith("#"), \
        "first cell must be a markdown title saying what the learner builds"
    tail = "\n".join(c.source for c in nb.cells[-3:] if c.cell_type == "markdown").lower()
    assert "source" in tail or "reference" in tail, "the last cells must list sources"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_links_to_existing_exercises(path):
    text = "\n".join(c.source for c in _read(path).cells if c.cell_type == "markdown")
    if path.name.startswith("99_"):
        return  # the interview notebook links chapters, not exercises
    links = re.findall(r"\(\.\./exercises/([^)#]+\.ipynb)", text)
    assert links, f"{path.name} does not link to its exercises"
    for name in links:
        assert (ROOT / "exercises" / name).exists(), f"{path.name} links to missing exercises/{name}"


@pytest.mark.parametrize("path", NOTEBOOKS + SOLUTIONS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_outputs_are_executed_and_leak_no_paths(path):
    nb = _read(path)
    code = [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count for c in code), f"{path.name} is committed unexecuted: run `make notebooks`"
    for cell in code:
        for out in cell.outputs:
            text = str(out.get("text", "")) + str(out.get("data", {}).get("text/plain", ""))
            assert not LEAK.search(text), f"{path.name} output shows a machine path: {LEAK.search(text).group(0)}"
            assert out.get("output_type") != "error", f"{path.name} has an error output"


def test_every_solution_has_four_exercises_and_a_matching_exercise_notebook():
    for path in SOLUTIONS:
        nb = make_exercises.make_exercise(path)
        raises = sum(c.source.count("raise NotImplementedError") for c in nb.cells if c.cell_type == "code")
        assert raises >= 4, f"{path.name} has {raises} exercises; the course promises at least 4"
        assert (ROOT / "exercises" / path.name).exists(), f"exercises/{path.name} missing: run `make exercises`"


@pytest.mark.parametrize("path", SOLUTIONS, ids=lambda p: p.name)
def test_every_exercise_has_tiered_hints_a_learner_opens_on_purpose(path):
    # Hints are collapsed <details> blocks (the first names the idea, the second the shape of the
    # computation), never a visible line that states the solution.
    exercises = [c for c in _read(path).cells
                 if c.cell_type == "markdown" and c.source.startswith("## Exercise")]
    assert exercises, f"{path.name} has no '## Exercise' heading"
    for cell in exercises:
        title = cell.source.splitlines()[0]
        n_hints = len(re.findall(r"<details>\s*<summary>\s*Hint", cell.source))
        assert n_hints >= 2, f"{path.name}: '{title}' has {n_hints} collapsed hints, want at least 2"
        assert cell.source.count("<details>") == cell.source.count("</details>"), \
            f"{path.name}: '{title}' has an unclosed <details> block"


def test_exercises_are_generated_from_solutions():
    assert make_exercises.main(["--check"]) == 0, "exercises/ drifted from solutions/: run `make exercises`"


@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_exercises_are_committed_without_outputs(path):
    for cell in _read(path).cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None


def test_strip_solutions_uses_the_hint_and_keeps_the_rest():
    src = "def f(x):\n    # HINT: use the sigmoid\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\nprint(1)"
    out, blocks = make_exercises.strip_solutions(src)
    assert blocks == 1
    assert "return x" not in out and "print(1)" in out
    assert "    raise NotImplementedError('use the sigmoid')" in out


@pytest.mark.parametrize("src, problem", [
    ("# BEGIN SOLUTION\nx = 1\n", "never closed"),
    ("x = 1\n# END SOLUTION\n", "without BEGIN"),
    ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "nested"),
])
def test_strip_solutions_names_broken_markers(src, problem):
    with pytest.raises(make_exercises.MarkerError, match=problem):
        make_exercises.strip_solutions(src)
