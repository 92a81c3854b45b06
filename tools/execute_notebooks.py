"""Re-execute notebooks in place so their committed outputs come from the current code.

    python tools/execute_notebooks.py notebooks solutions
    python tools/execute_notebooks.py notebooks/03_reward_model.ipynb
    python tools/execute_notebooks.py --finish-only notebooks   # only fix metadata and widgets

Prints each notebook's wall time. Notebooks run in order, so chapter 03's checkpoint exists
before chapters 05-06 reuse it.

What is written is what JupyterLab itself would write, so a notebook opened in JupyterLab is not
marked modified at once:
- the kernelspec JupyterLab writes for the ipykernel kernel (`KERNELSPEC`);
- widget outputs that read well without a live kernel (`finish_widget_outputs`). A widget output
  is a reference to a widget model plus a text fallback captured when it was first displayed,
  so a tqdm bar's fallback reads "0%" and an `interact` reads `interactive(children=(...`. The
  final widget state is saved in the notebook's metadata (nbclient does that); from it each
  widget output gets a fallback that shows how the widget ENDED: a finished tqdm bar as text
  ("training: 100%|██████████| 32/32 [...]"), the plot or text an `interact` drew (its Output
  widget's capture, e.g. the figure as image/png), other controls as "description: value"
  lines. A trusted JupyterLab still renders the live widget from the saved state; GitHub and
  an untrusted notebook show the fallback.
"""
from __future__ import annotations

import argparse
import html
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# Rich data an Output widget may have captured, richest first; copied beside the widget view.
_RICH = ("image/png", "image/svg+xml", "image/jpeg", "text/html", "text/markdown", "text/latex")
_BAR_WIDTH = 10


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


# ---------------------------------------------------------------- widget fallbacks
def _model(states: dict, ref: Any) -> dict | None:
    if not isinstance(ref, str):
        return None
    entry = states.get(ref.removeprefix("IPY_MODEL_"))
    return entry if isinstance(entry, dict) else None


def _plain(html_text: str) -> str:
    # tqdm writes its text into HTML widgets with figure / en spaces so they keep their width.
    return html.unescape(str(html_text)).replace("\u2007", " ").replace("\u2002", " ")


def _tqdm_text(states: dict, entry: dict) -> str | None:
    """The final text of a tqdm.notebook bar (an HBox of HTML, progress, HTML), else None.

    "" for a bar that closed itself (tqdm's leave=False): it vanishes in a live notebook, and
    its saved text is stale. tqdm marks a bar it keeps with bar_style "success" (finished) or
    "danger" (stopped early); leave=False bars keep the empty style.
    """
    children = [_model(states, c) for c in entry.get("state", {}).get("children", [])]
    if len(children) != 3 or any(c is None for c in children):
        return None
    names = [c.get("model_name") for c in children]
    if names[0] != "HTMLModel" or names[2] != "HTMLModel" or names[1] not in (
            "FloatProgressModel", "IntProgressModel"):
        return None
    left, bar, right = (c.get("state", {}) for c in children)
    if bar.get("bar_style", "") not in ("success", "danger"):
        return ""
    low, high, value = (float(bar.get(k, 0) or 0) for k in ("min", "max", "value"))
    frac = min(max((value - low) / (high - low), 0.0), 1.0) if high > low else 0.0
    filled = int(frac * _BAR_WIDTH)
    drawn = "█" * filled + " " * (_BAR_WIDTH - filled)
    return f"{_plain(left.get('value', ''))}|{drawn}|{_plain(right.get('value', ''))}"


def _captured(states: dict, entry: dict, seen: set) -> list[dict]:
    """Outputs captured by Output widgets anywhere in this widget's tree (e.g. an interact's plot)."""
    model_id = id(entry)
    if model_id in seen:
        return []
    seen.add(model_id)
    state = entry.get("state", {})
    found = list(state.get("outputs", [])) if entry.get("model_name") == "OutputModel" else []
    for child in state.get("children", []) or []:
        sub = _model(states, child)
        if sub is not None:
            found += _captured(states, sub, seen)
    return found


def _describe(states: dict, entry: dict, depth: int = 0) -> list[str]:
    """Readable lines for a widget tree: "description: value" per control, [Button] per button."""
    if depth > 20:
        return []
    name, state = entry.get("model_name", ""), entry.get("state", {})
    children = state.get("children")
    if children:
        lines = []
        for child in children:
            sub = _model(states, child)
            if sub is not None:
                lines += _describe(states, sub, depth + 1)
        return lines
    if name == "ButtonModel":
        return [f"[{state.get('description', '')}]"]
    if name in ("OutputModel", "LayoutModel") or name.endswith("StyleModel"):
        return []
    if "value" not in state:
        return []
    value = state["value"]
    if name in ("HTMLModel", "HTMLMathModel", "LabelModel"):
        value = _plain(value)
    label = state.get("description") or ""
    return [f"{label}: {value}" if label else str(value)]


def finish_widget_outputs(nb: Any) -> dict[str, int]:
    """Give every widget output a fallback that shows how the widget ended (see module doc).

    Returns counts: {"progress_bars", "closed_bars_removed", "captured", "described",
    "missing_state"}.
    """
    states = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    counts = {"progress_bars": 0, "closed_bars_removed": 0, "captured": 0, "described": 0,
              "missing_state": 0}
    for cell in nb.cells:
        kept = []
        for output in cell.get("outputs", []):
            kept.append(output)
            data = output.get("data", {})
            view = data.get(WIDGET_VIEW)
            if not isinstance(view, dict):
                continue
            entry = _model(states, view.get("model_id"))
            if entry is None:
                counts["missing_state"] += 1
                continue
            bar = _tqdm_text(states, entry)
            if bar == "":
                kept.pop()  # a leave=False bar: gone when the cell finished, gone here too
                counts["closed_bars_removed"] += 1
                continue
            if bar is not None:
                data["text/plain"] = bar
                counts["progress_bars"] += 1
                continue
            captured = _captured(states, entry, set())
            texts = []
            for item in captured:
                item_data = item.get("data", {})
                for mime in _RICH:
                    if mime in item_data and mime not in data:
                        data[mime] = item_data[mime]
                if item.get("output_type") == "stream":
                    texts.append(str(item.get("text", "")).rstrip("\n"))
                elif "text/plain" in item_data and not any(m in item_data for m in _RICH):
                    texts.append(str(item_data["text/plain"]))
            controls = _describe(states, entry)
            fallback = "\n".join(controls + texts).strip()
            if fallback:
                data["text/plain"] = fallback
            counts["captured" if captured else "described"] += 1
        if "outputs" in cell:
            cell["outputs"] = kept
    return counts


def finish_metadata(nb: Any) -> None:
    """The kernelspec JupyterLab writes for the ipykernel kernel."""
    nb.metadata["kernelspec"] = dict(KERNELSPEC)


# ---------------------------------------------------------------- main
def execute(path: Path, timeout: int = 900) -> Any:
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name=KERNELSPEC["name"], store_widget_state=True,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return nb


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python tools/execute_notebooks.py",
        description="Re-execute notebooks in place (committed outputs match the code), write "
                    "JupyterLab's kernelspec and give widget outputs (progress bars, interact) "
                    "a static fallback showing their final state.")
    parser.add_argument("paths", nargs="*", default=["notebooks", "solutions"],
                        help="notebooks or folders of notebooks (default: notebooks solutions)")
    parser.add_argument("--finish-only", action="store_true",
                        help="do not execute: only rewrite the kernelspec and widget fallbacks "
                             "from the outputs and widget state already saved")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell (default 900)")
    args = parser.parse_args(argv)
    for path in targets(args.paths):
        start = time.perf_counter()
        nb = nbformat.read(path, as_version=4) if args.finish_only else execute(path, args.timeout)
        finish_metadata(nb)
        counts = finish_widget_outputs(nb)
        nbformat.write(nb, path)
        done = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items() if v)
        print(f"{time.perf_counter() - start:6.1f} s  {path}" + (f"  ({done})" if done else ""),
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
