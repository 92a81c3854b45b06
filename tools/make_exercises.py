"""Generate exercises/NN_*.ipynb from solutions/NN_*.ipynb.

In a solution notebook the learner's part of a code cell sits between `# BEGIN SOLUTION` and
`# END SOLUTION`; the block becomes `raise NotImplementedError(...)`. Hints live in the exercise's
markdown cell as collapsed `<details><summary>Hint 1</summary>...</details>` blocks the learner
opens on purpose (the first names the idea, the second the shape of the computation, none gives
the code). A `# HINT: ...` line just above `# BEGIN SOLUTION` still becomes the error's message. Outputs and execution counts are stripped, so
exercises are committed clean. `--check` exits 1 when exercises/ differs from what would be made.

Links, so that neither notebook links to itself:
- the solution's title (its first line) ends with " (solutions)"; the exercise's title drops it, and
  the exercise's opening cell gets a last paragraph linking to `../solutions/<its name>`;
- a solution links to its own exercise notebook only as "Exercise version, without solutions:
  [...](../exercises/<its name>)" ("the exercise version" inside a sentence); in the exercise this
  becomes "Worked solutions, with their outputs: [solutions/<its name>](../solutions/<its name>)".
  Any other link to `../exercises/<its name>`, or a solution linking to `../solutions/<its name>`,
  is refused (MarkerError), so new wording cannot slip a self-link through.

    python tools/make_exercises.py            # write exercises/
    python tools/make_exercises.py --check    # CI: fail on drift
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
BEGIN = re.compile(r"^(\s*)# BEGIN SOLUTION\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
HINT = re.compile(r"^\s*# HINT:\s*(.+?)\s*$")
TITLE = re.compile(r"^(#\s.*?)\s+\(solutions\)\s*$")
DEFAULT_MESSAGE = "write your code here; if stuck, open the hints above this cell one at a time"


class MarkerError(ValueError):
    """A solution cell whose markers do not pair up."""


def strip_solutions(source: str, where: str = "cell") -> tuple[str, int]:
    """Replace each marked block with a NotImplementedError; return (new source, blocks)."""
    out: list[str] = []
    lines = source.splitlines()
    inside = False
    hint = DEFAULT_MESSAGE
    blocks = 0
    for number, line in enumerate(lines, 1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise MarkerError(f"{where}: nested '# BEGIN SOLUTION' at line {number}")
            inside = True
            blocks += 1
            indent = begin.group(1)
            previous = HINT.match(out[-1]) if out else None
            if previous:
                hint = previous.group(1)
            out.append(f"{indent}# YOUR CODE HERE")
            out.append(f"{indent}raise NotImplementedError({hint!r})")
            hint = DEFAULT_MESSAGE
            continue
        if END.match(line):
            if not inside:
                raise MarkerError(f"{where}: '# END SOLUTION' without BEGIN at line {number}")
            inside = False
            continue
        if not inside:
            out.append(line)
    if inside:
        raise MarkerError(f"{where}: '# BEGIN SOLUTION' is never closed")
    return "\n".join(out), blocks


def _link(folder: str, name: str) -> str:
    return rf"\]\(\.\./{folder}/{re.escape(name)}(?:#[^)]*)?\)"


def exercise_markdown(source: str, name: str, where: str = "cell") -> str:
    """A solution's markdown as the exercise shows it: its one allowed link to the exercise
    notebook (itself, in the exercise) becomes a link to the worked solutions."""
    if re.search(_link("solutions", name), source):
        raise MarkerError(f"{where}: solutions/{name} links to itself")
    own = re.compile(r"\b(?P<lead>[Tt]he e|E)xercise version, without solutions: \[[^\]]*"
                     + _link("exercises", name))

    def to_solutions(match: re.Match) -> str:
        lead = {"E": "Worked", "The e": "The worked", "the e": "the worked"}[match.group("lead")]
        return f"{lead} solutions, with their outputs: [solutions/{name}](../solutions/{name})"

    source = own.sub(to_solutions, source)
    if re.search(_link("exercises", name), source):
        raise MarkerError(f"{where}: links to its own exercise notebook; write the link as 'Exercise "
                          f"version, without solutions: [exercises/{name}](../exercises/{name})' so "
                          "the exercise notebook can link to the solutions instead")
    return source


def exercise_title(source: str, name: str) -> str:
    """The opening cell without the title's " (solutions)", plus a link to the worked solutions."""
    first, _, rest = source.partition("\n")
    title = TITLE.match(first)
    if not title:
        raise MarkerError(f"{name}: the first cell's title must end with ' (solutions)', got {first!r}")
    link = (f"The worked solutions, with their outputs, are in "
            f"[solutions/{name}](../solutions/{name}).")
    return f"{title.group(1)}\n{rest}".rstrip() + "\n\n" + link


def make_exercise(solution: Path) -> nbformat.NotebookNode:
    """The exercise notebook for one solution notebook (outputs stripped)."""
    nb = nbformat.read(solution, as_version=4)
    if not nb.cells or nb.cells[0].cell_type != "markdown":
        raise MarkerError(f"{solution.name}: the first cell must be the markdown title")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            cell.source = exercise_markdown(cell.source, solution.name, f"{solution.name} cell {index}")
    nb.cells[0].source = exercise_title(nb.cells[0].source, solution.name)
    total = 0
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            cell.source, blocks = strip_solutions(cell.source, f"{solution.name} cell {index}")
            total += blocks
            cell.outputs = []
            cell.execution_count = None
        cell.metadata.pop("execution", None)
    if total == 0:
        raise MarkerError(f"{solution.name}: no '# BEGIN SOLUTION' block found")
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if exercises/ is out of date")
    args = parser.parse_args(argv)
    stale = []
    for solution in sorted((ROOT / "solutions").glob("*.ipynb")):
        target = ROOT / "exercises" / solution.name
        text = nbformat.writes(make_exercise(solution)) + "\n"
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
            print(f"wrote exercises/{target.name}")
    if stale:
        print("exercises out of date (run `make exercises`):", ", ".join(stale))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
