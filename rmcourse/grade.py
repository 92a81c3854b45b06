"""Grade a room: run every learner's exercise notebooks and collect the checkers' verdicts.

    python -m rmcourse.grade SUBMISSIONS_DIR [--out DIR] [--timeout SECONDS] [--notebooks 01,03]

SUBMISSIONS_DIR holds one folder per learner with their exercise notebooks, named as in
`exercises/` (e.g. `alice/01_bradley_terry.ipynb`; sub-folders are searched too). Each notebook is
copied into its own scratch folder and executed there (the working directory) with nbclient, in a
fresh kernel of this Python, with a time limit for the whole notebook; the course's files it makes
(`rmcourse.paths.artifacts_dir`) go to the run's scratch folder as well, so the learner's files
are never touched. Each exercise (a `## Exercise N` heading, then the learner's cell, then a check
cell) gets one verdict, read from the line its check cell printed (`rmcourse.checking.check`):

    solved          ✅
    wrong           ❌ and the checker's message (or the error a cell of the exercise raised)
    not attempted   ⏳ (the exercise still raises NotImplementedError), or the notebook or the
                    exercise's heading is missing
    failed to run   the notebook timed out, its kernel died, or a setup cell before the first
                    exercise raised (e.g. an import); the reason is the message

A notebook that fails gets its rows and the run goes on. Written to --out (default
`<SUBMISSIONS_DIR>-grading/` beside it; never inside SUBMISSIONS_DIR): `grades.csv` (one row per
learner x notebook x exercise: learner, notebook, exercise, verdict, message, seconds),
`summary.md` (per learner, per exercise, the most common checker messages; also printed) and
`executed/<learner>/<notebook>` (the executed copies, to open when a verdict needs a look).
"""
from __future__ import annotations

import argparse
import collections
import csv
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import nbformat

SOLVED, WRONG, NOT_ATTEMPTED, FAILED = "solved", "wrong", "not attempted", "failed to run"
VERDICTS = (SOLVED, WRONG, NOT_ATTEMPTED, FAILED)
COLUMNS = ("learner", "notebook", "exercise", "verdict", "message", "seconds")
EXERCISE = re.compile(r"^##\s+Exercise\s+(\d+[a-z]?)\b\s*(?:·\s*(.*))?$")
MARKS = {"✅": SOLVED, "❌": WRONG, "⏳": NOT_ATTEMPTED}
DEFAULT_TIMEOUT = 600


@dataclass
class Row:
    learner: str
    notebook: str
    exercise: str
    verdict: str
    message: str = ""
    seconds: float = 0.0


# ------------------------------------------------------------------ reading a notebook's layout
def exercise_cells(nb) -> tuple[list[int], dict[str, list[int]], dict[str, str]]:
    """(setup cell indices, {exercise: its cell indices}, {exercise: title}) of a notebook.

    Cells before the first `## Exercise N` are setup; an exercise runs until the next `## ` heading.
    """
    setup: list[int] = []
    cells: dict[str, list[int]] = {}
    titles: dict[str, str] = {}
    current: str | None = None
    seen_exercise = False
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            first = cell.source.strip().splitlines()[0] if cell.source.strip() else ""
            match = EXERCISE.match(first)
            if match:
                current, seen_exercise = match.group(1), True
                cells[current], titles[current] = [], (match.group(2) or "").strip()
            elif first.startswith("## "):
                current = None
            continue
        if current is not None:
            cells[current].append(i)
        elif not seen_exercise:
            setup.append(i)
    return setup, cells, titles


def course_exercises(root: Path | None = None) -> dict[str, list[str]]:
    """{notebook name: its exercise numbers} of the course's own `exercises/` folder."""
    from rmcourse.paths import repo_root

    folder = (root or repo_root()) / "exercises"
    out = {}
    for path in sorted(folder.glob("*.ipynb")):
        out[path.name] = list(exercise_cells(nbformat.read(path, as_version=4))[1])
    return out


def _stream_text(cell) -> str:
    return "".join(o.get("text", "") for o in cell.get("outputs", []) if o.output_type == "stream")


def _first_error(nb, indices: list[int]) -> tuple[str, str] | None:
    """(ename, 'ename: evalue') of the first error output among the cells, if any."""
    for i in indices:
        cell = nb.cells[i]
        if "raises-exception" in cell.get("metadata", {}).get("tags", []):
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                value = str(out.get("evalue", "")).strip().splitlines()
                return out.ename, f"{out.ename}: {value[0] if value else ''}".rstrip(": ")
    return None


def verdict_lines(text: str) -> list[tuple[str, str]]:
    """[(verdict, message)] from what check cells printed: a mark starts a verdict, and the
    lines after a ❌ up to the next mark are part of its message."""
    found: list[list[str]] = []
    for line in text.splitlines():
        mark = line[:1]
        if mark in MARKS:
            rest = line[1:].strip()
            name, _, message = rest.partition(":")
            # a ⏳ line keeps its whole text: "solve exercise 3 first: ..." names the exercise
            found.append([MARKS[mark], rest if mark == "⏳" else message.strip() if mark != "✅" else ""])
        elif found and found[-1][0] == WRONG and line.strip():
            found[-1][1] += "\n" + line.rstrip()
    return [(v, m) for v, m in found]


_CHECK_CALL = re.compile(r"\bcheck_\w+\(")
_DEMO_CALL = re.compile(r"\bcheck_\w+\(.*\)\s+is\s+False")
_WAITS_FOR = re.compile(r"solve exercise (\w+) first")


def _is_demonstration(source: str) -> bool:
    """A cell whose every checker call is asserted to fail (`assert check_x(wrong) is False`):
    it shows the checker rejecting the learning document's version, not the learner's work."""
    calls = _CHECK_CALL.findall(source)
    return bool(calls) and len(_DEMO_CALL.findall(source)) == len(calls)


def judge(nb, indices: list[int], exercise: str | None = None) -> tuple[str, str]:
    """One exercise's (verdict, message) from its executed cells.

    Cells that demonstrate a checker rejecting a wrong version on purpose are skipped, and a
    "solve exercise M first" line counts only in exercise M's own section (another section's
    cell may wait for M while this exercise is solved)."""
    lines = []
    for i in indices:
        if _is_demonstration(nb.cells[i].source):
            continue
        for verdict, message in verdict_lines(_stream_text(nb.cells[i])):
            waits = _WAITS_FOR.search(message) if verdict == NOT_ATTEMPTED else None
            if waits and exercise is not None and waits.group(1) != exercise:
                continue
            lines.append((verdict, message))
    for wanted in (WRONG, NOT_ATTEMPTED, SOLVED):
        hits = [m for v, m in lines if v == wanted]
        if hits:
            return wanted, hits[0] if wanted == WRONG else ""
    error = _first_error(nb, indices)
    if error and error[0] == "NotImplementedError":
        return NOT_ATTEMPTED, ""
    if error:
        return WRONG, error[1]
    return WRONG, "the check cell printed no verdict (was it deleted or edited?)"


# ------------------------------------------------------------------ running one notebook
def _kernel_manager_class():
    """A kernel manager that always starts this Python's ipykernel, whatever kernelspecs exist."""
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class HereKernelManager(AsyncKernelManager):
        @property
        def kernel_spec(self):
            return KernelSpec(argv=[sys.executable, "-m", "ipykernel_launcher", "-f",
                                    "{connection_file}"],
                              display_name="rmcourse grader", language="python")

    return HereKernelManager


def run_notebook(path: Path, scratch: Path, timeout: float, env: dict[str, str]):
    """Execute a copy of `path` in `scratch`: (executed nb, seconds per cell, indices of the cells
    that finished, the reason it failed to run or None)."""
    from nbclient import NotebookClient

    scratch.mkdir(parents=True, exist_ok=True)
    copy = scratch / path.name
    shutil.copyfile(path, copy)
    nb = nbformat.read(copy, as_version=4)
    setup, _, _ = exercise_cells(nb)
    seconds = [0.0] * len(nb.cells)
    done: set[int] = set()  # cells that finished (a timed-out cell did not)
    i = -1
    client = NotebookClient(nb, timeout=int(timeout), allow_errors=True, shutdown_kernel="immediate",
                            kernel_manager_class=_kernel_manager_class(),
                            resources={"metadata": {"path": str(scratch)}})
    deadline = time.monotonic() + timeout
    failure = None
    try:
        with client.setup_kernel(env=env):
            for i, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                client.timeout = max(1, int(left + 0.999))
                start = time.monotonic()
                try:
                    client.execute_cell(cell, i)
                finally:
                    seconds[i] = time.monotonic() - start
                done.add(i)
                if i in setup and _first_error(nb, [i]):
                    failure = f"setup cell {i} raised {_first_error(nb, [i])[1]}"
                    break
    except Exception as err:  # timeout, dead kernel, a kernel that would not start
        name = type(err).__name__
        if name in ("CellTimeoutError", "TimeoutError"):
            failure = f"timed out after {timeout:g} s (still running cell {i})"
        elif name == "DeadKernelError":
            failure = f"the kernel died in cell {i} (out of memory, or a crash)"
        else:
            failure = f"{name}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
    return nb, seconds, done, failure


def grade_notebook(learner: str, path: Path, scratch: Path, timeout: float, env: dict[str, str],
                   expected: list[str] | None = None, save_to: Path | None = None) -> list[Row]:
    """The rows of one learner's notebook (one per exercise; a failed notebook keeps the
    verdicts of the exercises that ran before the failure)."""
    try:
        nb, seconds, done, failure = run_notebook(path, scratch, timeout, env)
    except Exception as err:  # not a readable notebook
        failure = f"could not read the notebook: {type(err).__name__}: {err}"
        nb, seconds, done = None, [], set()
    if save_to is not None and nb is not None:
        save_to.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, save_to)
    cells = exercise_cells(nb)[1] if nb is not None else {}
    names = list(cells) + [e for e in (expected or []) if e not in cells]
    rows = []
    for ex in names:
        indices = cells.get(ex, [])
        secs = round(sum(seconds[i] for i in indices), 2)
        ran = bool(indices) and all(i in done for i in indices if nb.cells[i].cell_type == "code")
        if failure and not ran:
            rows.append(Row(learner, path.name, ex, FAILED, failure, secs))
        elif ex not in cells:
            rows.append(Row(learner, path.name, ex, NOT_ATTEMPTED,
                            f"no '## Exercise {ex}' heading in the notebook"))
        else:
            rows.append(Row(learner, path.name, ex, *judge(nb, indices, ex), secs))
    if failure and not any(r.verdict == FAILED for r in rows):  # e.g. a hang after the exercises
        rows.append(Row(learner, path.name, "", FAILED, failure))
    return rows


# ------------------------------------------------------------------ a room
def learner_notebooks(folder: Path) -> dict[str, Path]:
    """{notebook name: path} in a learner's folder (searched recursively; checkpoints skipped)."""
    found: dict[str, Path] = {}
    for path in sorted(folder.rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            found.setdefault(path.name, path)
    return found


def grade_room(submissions: Path, out: Path, timeout: float = DEFAULT_TIMEOUT,
               notebooks: list[str] | None = None, course: dict[str, list[str]] | None = None,
               log=print) -> list[Row]:
    course = course_exercises() if course is None else course
    wanted = [n for n in course if not notebooks or any(n.startswith(p) or n == p
                                                        for p in notebooks)]
    learners = sorted(p for p in submissions.iterdir() if p.is_dir() and not p.name.startswith("."))
    rows: list[Row] = []
    scratch_root = Path(tempfile.mkdtemp(prefix="rmcourse-grade-"))
    env = {**os.environ, "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
           "RMCOURSE_ARTIFACTS": str(scratch_root / "artifacts")}
    try:
        for learner in learners:
            mine = learner_notebooks(learner)
            for name in wanted:
                if name not in mine:
                    rows += [Row(learner.name, name, ex, NOT_ATTEMPTED, "notebook not submitted")
                             for ex in course[name]]
                    continue
                start = time.monotonic()
                got = grade_notebook(learner.name, mine[name], scratch_root / learner.name /
                                     Path(name).stem, timeout, env, course[name],
                                     out / "executed" / learner.name / name)
                counts = collections.Counter(r.verdict for r in got)
                log(f"{learner.name}/{name}: " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS
                                                           if counts[v])
                    + f" ({time.monotonic() - start:.0f} s)")
                rows += got
    finally:
        shutil.rmtree(scratch_root, ignore_errors=True)
    return rows


def write_csv(rows: list[Row], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r.learner, r.notebook, r.exercise, r.verdict, r.message, r.seconds])


def summary(rows: list[Row], top: int = 10) -> str:
    """The room as Markdown: per learner, per exercise, common checker messages, failures."""
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["# Grading summary", "",
             f"{len({r.learner for r in rows})} learners, {len({r.notebook for r in rows})} "
             f"notebooks, {len(rows)} exercise results.", "", "## Per learner", "",
             "| learner | solved | wrong | not attempted | failed to run |", "|---|---|---|---|---|"]
    by_learner: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_exercise: dict[tuple, collections.Counter] = collections.defaultdict(collections.Counter)
    for r in rows:
        by_learner[r.learner][r.verdict] += 1
        by_exercise[(r.notebook, r.exercise)][r.verdict] += 1
    for learner, c in sorted(by_learner.items()):
        total = sum(c.values())
        lines.append(f"| {cell(learner)} | {c[SOLVED]}/{total} | {c[WRONG]} | {c[NOT_ATTEMPTED]} "
                     f"| {c[FAILED]} |")
    lines += ["", "## Per exercise", "",
              "| notebook | exercise | solved | wrong | not attempted | failed to run |",
              "|---|---|---|---|---|---|"]
    def order(item):
        (nb, ex), _ = item
        digits = re.match(r"\d*", ex).group()
        return nb, int(digits) if digits else 0, ex

    for (nb, ex), c in sorted(by_exercise.items(), key=order):
        total = sum(c.values())
        lines.append(f"| {nb} | {ex} | {c[SOLVED]}/{total} ({c[SOLVED] / total:.0%}) | "
                     f"{c[WRONG]} | {c[NOT_ATTEMPTED]} | {c[FAILED]} |")
    messages = collections.Counter((r.notebook, r.exercise, r.message.splitlines()[0][:200])
                                   for r in rows if r.verdict == WRONG and r.message)
    lines += ["", "## Most common checker messages", ""]
    if messages:
        lines += ["| learners | notebook | exercise | message |", "|---|---|---|---|"]
        lines += [f"| {n} | {nb} | {ex} | {cell(msg)} |"
                  for (nb, ex, msg), n in messages.most_common(top)]
    else:
        lines.append("No exercise was wrong.")
    failed = sorted({(r.learner, r.notebook, r.message) for r in rows if r.verdict == FAILED})
    lines += ["", "## Notebooks that failed to run", ""]
    if failed:
        lines += ["| learner | notebook | reason |", "|---|---|---|"]
        lines += [f"| {cell(a)} | {b} | {cell(c)} |" for a, b, c in failed]
    else:
        lines.append("None.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rmcourse.grade", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("submissions", type=Path, help="one folder per learner, with their "
                        "exercise notebooks")
    parser.add_argument("--out", type=Path, help="where to write grades.csv, summary.md and the "
                        "executed copies (default: <SUBMISSIONS_DIR>-grading beside it)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds allowed "
                        f"for one whole notebook (default {DEFAULT_TIMEOUT})")
    parser.add_argument("--notebooks", help="comma-separated notebook names or prefixes, e.g. "
                        "01,03_reward_model (default: every exercise notebook of the course)")
    args = parser.parse_args(argv)
    subs = args.submissions.resolve()
    if not subs.is_dir():
        parser.error(f"not a folder: {args.submissions}")
    if args.timeout <= 0:
        parser.error("--timeout must be positive")
    out = (args.out or subs.parent / f"{subs.name}-grading").resolve()
    if out == subs or subs in out.parents:
        parser.error(f"--out {out} lies inside the submissions folder; grading never writes there")
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file, not a folder")
    wanted = [p.strip() for p in args.notebooks.split(",") if p.strip()] if args.notebooks else None
    course = course_exercises()
    if wanted and not any(n.startswith(p) or n == p for n in course for p in wanted):
        parser.error(f"--notebooks {args.notebooks} matches none of {', '.join(course)}")
    out.mkdir(parents=True, exist_ok=True)
    rows = grade_room(subs, out, args.timeout, wanted, course, log=lambda s: print(s, flush=True))
    write_csv(rows, out / "grades.csv")
    text = summary(rows)
    (out / "summary.md").write_text(text, encoding="utf-8")
    print("\n" + text)
    print(f"wrote {out / 'grades.csv'} and {out / 'summary.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
