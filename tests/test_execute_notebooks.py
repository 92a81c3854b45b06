"""tools/execute_notebooks.py writes what JupyterLab writes and widget outputs that read well on
the web: finished progress bars, an interact's plot, controls as text. Checked on hand-built
notebooks (no kernel needed), then on every committed notebook."""
from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("execute_notebooks", ROOT / "tools" / "execute_notebooks.py")
tool = importlib.util.module_from_spec(spec)
sys.modules["execute_notebooks"] = tool
spec.loader.exec_module(tool)

VIEW = tool.WIDGET_VIEW
ZERO_BAR = re.compile(r"^\S.*:\s+0%\|")


def _model(name: str, **state) -> dict:
    return {"model_name": name, "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0", "state": state}


def _bar(states: dict, key: str, style: str, value: float, total: float, right: str) -> None:
    states[f"{key}-l"] = _model("HTMLModel", value="training:\u2007100%" if value == total else
                                "training:\u2007\u200760%")
    states[f"{key}-p"] = _model("FloatProgressModel", bar_style=style, min=0.0, max=total, value=value)
    states[f"{key}-r"] = _model("HTMLModel", value=right)
    states[key] = _model("HBoxModel", children=[f"IPY_MODEL_{key}-l", f"IPY_MODEL_{key}-p",
                                               f"IPY_MODEL_{key}-r"])


def _view(model_id: str, text: str, kind: str = "display_data") -> dict:
    data = {VIEW: {"version_major": 2, "version_minor": 0, "model_id": model_id}, "text/plain": text}
    if kind == "execute_result":
        return nbformat.v4.new_output("execute_result", data=data, execution_count=1)
    return nbformat.v4.new_output("display_data", data=data)


@pytest.fixture
def notebook():
    states: dict = {}
    _bar(states, "done", "success", 32.0, 32.0, "\u200732/32\u2007[00:41&lt;00:00,\u20072.01s/step]")
    _bar(states, "stopped", "danger", 30.0, 50.0, "\u200730/50\u2007[00:10&lt;00:07]")
    _bar(states, "closed", "", 7.0, 7.0, "\u20070/7\u2007[00:00&lt;?,\u2007?batch/s]")
    states["slider"] = _model("FloatSliderModel", description="gap", value=1.5)
    states["out"] = _model("OutputModel", outputs=[
        {"output_type": "display_data", "data": {"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"},
         "metadata": {}}])
    states["interact"] = _model("VBoxModel", children=["IPY_MODEL_slider", "IPY_MODEL_out"],
                                _dom_classes=["widget-interact"])
    states["prompt"] = _model("TextareaModel", description="prompt", value="How do I boil an egg?")
    states["button"] = _model("ButtonModel", description="Score")
    states["printed"] = _model("OutputModel", outputs=[
        {"output_type": "stream", "name": "stdout", "text": "reward(A) = +1.000\n"}])
    states["box"] = _model("VBoxModel", children=["IPY_MODEL_prompt", "IPY_MODEL_button",
                                                  "IPY_MODEL_printed"])
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3", "language": "python", "name": "python3"}
    nb.metadata["widgets"] = {tool.WIDGET_STATE: {"state": states, "version_major": 2,
                                                  "version_minor": 0}}
    cells = [
        [_view("done", "training:   0%|          | 0/32 [00:00<?, ?step/s]")],
        [_view("stopped", "training:   0%|          | 0/50")],
        [_view("closed", "scoring:   0%|          | 0/7"),
         nbformat.v4.new_output("stream", name="stdout", text="after the bar\n")],
        [_view("interact", "interactive(children=(FloatSlider(value=1.5, description='gap'),))")],
        [_view("box", "VBox(children=(Textarea(...", kind="execute_result")],
        [_view("unknown-model", "HBox(children=(...))")],
    ]
    for outputs in cells:
        cell = nbformat.v4.new_code_cell("pass", execution_count=1)
        cell.outputs = outputs
        nb.cells.append(cell)
    return nb


def test_kernelspec_is_the_one_jupyterlab_writes(notebook):
    tool.finish_metadata(notebook)
    assert notebook.metadata["kernelspec"] == {"display_name": "Python 3 (ipykernel)",
                                               "language": "python", "name": "python3"}


def test_widget_outputs_show_how_the_widgets_ended(notebook):
    counts = tool.finish_widget_outputs(notebook)
    assert counts == {"progress_bars": 2, "closed_bars_removed": 1, "captured": 2, "described": 0,
                      "missing_state": 1}
    out = [cell.outputs for cell in notebook.cells]
    assert out[0][0]["data"]["text/plain"] == "training: 100%|██████████| 32/32 [00:41<00:00, 2.01s/step]"
    assert out[1][0]["data"]["text/plain"] == "training:  60%|██████    | 30/50 [00:10<00:07]"
    assert [o["output_type"] for o in out[2]] == ["stream"]  # the leave=False bar is gone
    interact = out[3][0]["data"]
    assert interact["image/png"] == "iVBORw0KGgo=" and VIEW in interact  # live widget kept
    assert interact["text/plain"] == "gap: 1.5"
    assert out[4][0]["data"]["text/plain"] == "prompt: How do I boil an egg?\n[Score]\nreward(A) = +1.000"
    assert out[5][0]["data"]["text/plain"] == "HBox(children=(...))"  # no state: left alone
    nbformat.validate(notebook)


def test_finishing_twice_changes_nothing(notebook):
    tool.finish_widget_outputs(notebook)
    once = nbformat.writes(notebook)
    tool.finish_widget_outputs(notebook)
    assert nbformat.writes(notebook) == once


def test_help_and_bad_paths(capsys):
    with pytest.raises(SystemExit) as exit_:
        tool.main(["--help"])
    assert exit_.value.code == 0 and "--finish-only" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="not a notebook"):
        tool.main(["--finish-only", "no/such/notebook.ipynb"])


def test_finish_only_rewrites_a_notebook_file(notebook, tmp_path):
    path = tmp_path / "nb.ipynb"
    nbformat.write(notebook, path)
    assert tool.main(["--finish-only", str(path)]) == 0
    again = nbformat.read(path, as_version=4)
    assert again.metadata["kernelspec"]["display_name"] == "Python 3 (ipykernel)"
    assert again.cells[0].outputs[0]["data"]["text/plain"].startswith("training: 100%|")


# ---------------------------------------------------------------- the committed course
COMMITTED = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("path", COMMITTED, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_notebooks_open_clean(path):
    """Fails until the notebook is re-executed with tools/execute_notebooks.py (`make notebooks`)."""
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec") == tool.KERNELSPEC, \
        f"{path.name}: kernelspec differs from JupyterLab's; run tools/execute_notebooks.py"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            text = output.get("data", {}).get("text/plain", "")
            text = "".join(text) if isinstance(text, list) else text
            if VIEW in output.get("data", {}):
                assert not ZERO_BAR.match(text), f"{path.name}: a progress bar reads 0%: {text[:60]}"
                assert not text.startswith(("interactive(children=", "HBox(children=", "VBox(children=")), \
                    f"{path.name}: a widget output has no readable static fallback: {text[:60]}"
