"""rmcourse.grade on a room built from chapter 01's own exercise and solution notebooks.

Chapter 01 is the quickest exercise notebook; the fixtures keep its setup cell and exercises 1-3
(each exercise's own cell and check cell, without the demo cells after them), so one notebook
runs in a few seconds plus the kernel's imports.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import nbformat
import pytest

from rmcourse import grade
from rmcourse.paths import repo_root

NAME = "01_bradley_terry.ipynb"
KEEP = ("1", "2", "3")
COURSE = {NAME: list(KEEP)}


def _trimmed(folder: str):
    """Chapter 01 from `folder`, cut to its setup and exercises 1-3, outputs cleared."""
    nb = nbformat.read(repo_root() / folder / NAME, as_version=4)
    setup, cells, _ = grade.exercise_cells(nb)
    keep = set(setup) | {0}
    for ex in KEEP:
        heading = cells[ex][0] - 1
        keep |= {heading, *cells[ex][:2]}  # the learner's cell and the check cell
    nb.cells = [c for i, c in enumerate(nb.cells) if i in keep]
    for c in nb.cells:
        if c.cell_type == "code":
            c.outputs, c.execution_count = [], None
    return nb


def _cell(nb, ex: str, k: int = 0):
    """The k-th code cell of exercise `ex` (0: the learner's cell)."""
    return nb.cells[grade.exercise_cells(nb)[1][ex][k]]


def _learner(room: Path, name: str, nb) -> Path:
    (room / name).mkdir(parents=True)
    path = room / name / NAME
    nbformat.write(nb, path)
    return path


def _rows(path: Path) -> dict[tuple[str, str], dict]:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == list(grade.COLUMNS)
    return {(r["learner"], r["exercise"]): r for r in rows}


def test_room_of_learners(tmp_path, capsys):
    room = tmp_path / "room"
    solved = _learner(room, "ada", _trimmed("solutions"))
    mistakes = _trimmed("solutions")
    source = _cell(mistakes, "1").source
    assert "np.add.at(grad, idx_a, g)" in source
    _cell(mistakes, "1").source = (source.replace("np.add.at(grad, idx_a, g)", "grad[idx_a] += g")
                                   .replace("np.add.at(grad, idx_b, -g)", "grad[idx_b] -= g"))
    _cell(mistakes, "3").source = "def plackett_luce_nll(rewards, ranking):\n    return None\n"
    _learner(room, "bob", mistakes)
    _learner(room, "cy", _trimmed("exercises"))
    broken = _trimmed("exercises")
    broken.cells[1].source = "import not_a_module\n" + broken.cells[1].source
    _learner(room, "dee", broken)
    (room / "eve").mkdir()  # submitted nothing
    before = solved.read_bytes()

    assert grade.main([str(room), "--timeout", "120", "--notebooks", "01"]) == 0
    out = tmp_path / "room-grading"
    rows = _rows(out / "grades.csv")
    verdicts = {k: (r["verdict"], r["message"]) for k, r in rows.items()}

    assert [verdicts["ada", ex][0] for ex in KEEP] == ["solved"] * 3
    # the fixtures stop after exercise 3; the course's notebook has 6
    assert verdicts["ada", "4"] == ("not attempted", "no '## Exercise 4' heading in the notebook")
    assert verdicts["bob", "1"][0] == "wrong" and "np.add.at" in verdicts["bob", "1"][1]
    assert verdicts["bob", "2"][0] in ("solved", "wrong")  # uses bob's exercise 1
    assert verdicts["bob", "3"] == ("wrong", "plackett_luce_nll returned None: did you forget "
                                             "`return`?")
    assert [verdicts["cy", ex][0] for ex in KEEP] == ["not attempted"] * 3
    for ex in KEEP:
        verdict, message = verdicts["dee", ex]
        assert verdict == "failed to run"
        assert "ModuleNotFoundError" in message and "not_a_module" in message
    assert {verdicts["eve", ex] for ex in grade.course_exercises()[NAME]} == {
        ("not attempted", "notebook not submitted")}
    assert float(rows["ada", "1"]["seconds"]) >= 0

    text = (out / "summary.md").read_text(encoding="utf-8")
    assert "| ada | 3/6 |" in text and "| cy | 0/6 |" in text
    assert "np.add.at" in text and "not_a_module" in text
    assert "# Grading summary" in capsys.readouterr().out
    assert solved.read_bytes() == before  # the learner's file is untouched
    assert sorted(p.name for p in (room / "ada").iterdir()) == [NAME]  # nothing written beside it
    assert (out / "executed" / "ada" / NAME).exists()


def test_hanging_crashing_and_unreadable_notebooks_get_rows_and_the_run_goes_on(tmp_path):
    room = tmp_path / "room"
    hangs = _trimmed("solutions")
    _cell(hangs, "1").source = "while True:\n    pass\n"
    _learner(room, "hal", hangs)
    broken = _trimmed("exercises")
    broken.cells[1].source = "import not_a_module\n" + broken.cells[1].source
    _learner(room, "zed", broken)  # graded after hal: the run went on
    crash = _trimmed("exercises")
    crash.cells[1].source = "import os\nos._exit(1)\n" + crash.cells[1].source  # the kernel dies
    _learner(room, "kim", crash)
    (room / "lou").mkdir()
    (room / "lou" / NAME).write_text("{not a notebook", encoding="utf-8")
    out = tmp_path / "out"
    start = time.monotonic()
    rows = grade.grade_room(room, out, timeout=15, course=COURSE, log=lambda s: None)
    assert time.monotonic() - start < 60  # the hanging kernel was killed, not waited for
    verdicts = {(r.learner, r.exercise): (r.verdict, r.message) for r in rows}
    for ex in KEEP:
        assert verdicts["hal", ex][0] == "failed to run"
        assert "timed out after 15 s" in verdicts["hal", ex][1]
    assert [verdicts["zed", ex][0] for ex in KEEP] == ["failed to run"] * 3
    assert {verdicts["kim", ex] for ex in KEEP} == {
        ("failed to run", "the kernel died in cell 1 (out of memory, or a crash)")}
    for ex in KEEP:
        assert verdicts["lou", ex][0] == "failed to run"
        assert verdicts["lou", ex][1].startswith("could not read the notebook")


def test_refuses_to_write_inside_the_submissions(tmp_path):
    (tmp_path / "room" / "ada").mkdir(parents=True)
    with pytest.raises(SystemExit) as err:
        grade.main([str(tmp_path / "room"), "--out", str(tmp_path / "room" / "ada" / "grades")])
    assert err.value.code == 2


def test_verdict_lines_and_judge_without_a_kernel():
    text = ("✅ first\n❌ second: the NLL is 3, expected 4\n   yours  mle\nx  1  2\n"
            "⏳ third: not implemented yet — replace the `raise NotImplementedError` line.\n")
    assert grade.verdict_lines(text) == [
        ("solved", ""), ("wrong", "the NLL is 3, expected 4\n   yours  mle\nx  1  2"),
        ("not attempted", "third: not implemented yet — replace the `raise NotImplementedError` line.")]
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercise 1 · a"),
        nbformat.v4.new_code_cell("def f(): ...", outputs=[nbformat.v4.new_output(
            "error", ename="SyntaxError", evalue="invalid syntax (x, line 1)", traceback=[])]),
        nbformat.v4.new_code_cell("check(f)", outputs=[nbformat.v4.new_output(
            "error", ename="NameError", evalue="name 'f' is not defined", traceback=[])]),
        nbformat.v4.new_markdown_cell("## Exercise 2 · b"),
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell("## Summary"),
        nbformat.v4.new_code_cell("1/0"),
    ])
    setup, cells, titles = grade.exercise_cells(nb)
    assert setup == [] and cells == {"1": [1, 2], "2": [4]} and titles["2"] == "b"
    assert grade.judge(nb, cells["1"]) == ("wrong", "SyntaxError: invalid syntax (x, line 1)")
    assert grade.judge(nb, cells["2"])[0] == "wrong"  # no verdict printed
    text = grade.summary([grade.Row("a", "n.ipynb", "1", "wrong", "m|x"),
                          grade.Row("b", "n.ipynb", "1", "solved")])
    assert "| a | 0/1 |" in text and "| b | 1/1 |" in text and "m\\|x" in text
    assert "| n.ipynb | 1 | 1/2 (50%) |" in text
    rows = [grade.Row("a", "n.ipynb", ex, "solved") for ex in ("10", "2", "1")]
    assert [line.split(" | ")[1] for line in grade.summary(rows).splitlines()
            if line.startswith("| n.ipynb")] == ["1", "2", "10"]


def _printed(source, text):
    return nbformat.v4.new_code_cell(source, outputs=[nbformat.v4.new_output("stream", name="stdout", text=text)])


def test_judge_skips_demonstrations_and_waits_for_other_exercises():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("## Exercise 4 · a"),
        _printed("check_f(f);", "✅ f\n"),
        # the course shows its checker rejecting the learning document's version on purpose
        _printed("assert check_f(seed_f) is False", "❌ f: seed_f is wrong in this way\n"),
        # a later cell of this section uses exercise 3's function, which this learner left unsolved
        _printed("with needs_exercise(3):\n    g()", "⏳ solve exercise 3 first: this cell uses it\n"),
        nbformat.v4.new_markdown_cell("## Exercise 3 · b"),
        _printed("check_g(g);", "⏳ g: not implemented yet\n"),
        nbformat.v4.new_markdown_cell("## Exercise 5 · c"),
        _printed("check_h(h);\nassert check_h(seed_h) is False", "❌ h: your h is wrong\n❌ h: seed\n"),
    ])
    _, cells, _ = grade.exercise_cells(nb)
    assert grade.judge(nb, cells["4"], "4") == ("solved", "")
    assert grade.judge(nb, cells["3"], "3") == ("not attempted", "")
    # a cell that also checks the learner's own function is not a demonstration
    assert grade.judge(nb, cells["5"], "5") == ("wrong", "your h is wrong")


def test_a_hang_after_the_last_exercise_gets_its_own_row(tmp_path):
    room = tmp_path / "room"
    v4 = nbformat.v4
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("## Exercise 1 · print a verdict"),
                                v4.new_code_cell("print('✅ one')"),
                                v4.new_markdown_cell("## Summary"),
                                v4.new_code_cell("while True:\n    pass")])
    _learner(room, "max", nb)
    rows = grade.grade_room(room, tmp_path / "out", timeout=4, course={NAME: ["1"]},
                            log=lambda s: None)
    assert [(r.exercise, r.verdict) for r in rows] == [("1", "solved"), ("", "failed to run")]
    assert rows[1].message == "timed out after 4 s (still running cell 3)"


def test_the_course_worked_solutions_grade_as_solved():
    # the committed, executed solutions: every exercise's section must read "solved"
    from rmcourse.paths import repo_root

    for path in sorted((repo_root() / "solutions").glob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        _, cells, _ = grade.exercise_cells(nb)
        assert cells, f"{path.name}: no exercise sections"
        verdicts = {ex: grade.judge(nb, idx, ex) for ex, idx in cells.items()}
        assert all(v == ("solved", "") for v in verdicts.values()), (path.name, verdicts)
