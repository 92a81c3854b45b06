"""tools/gpu_check.py (`make gpu-check`): what can be checked without a GPU."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "tools" / "gpu_check.py")
gpu_check = importlib.util.module_from_spec(spec)
sys.modules["gpu_check"] = gpu_check
spec.loader.exec_module(gpu_check)


def test_every_headline_names_an_existing_chapter():
    for stem in gpu_check.HEADLINES:
        assert (ROOT / "notebooks" / f"{stem}.ipynb").exists(), f"HEADLINES names a missing notebook {stem}"


def test_headline_cell_is_python_that_survives_a_missing_name(tmp_path, monkeypatch):
    out = tmp_path / "h.json"
    monkeypatch.setenv("RMCOURSE_HEADLINES", str(out))
    code = gpu_check.HEADLINE_CELL % ([("two", "1 + 1"), ("missing", "no_such_name"), ("inf", "float('inf')")],)
    exec(compile(code, "<cell>", "exec"), {})
    import json

    assert json.loads(out.read_text()) == {"two": 2.0, "missing": "n/a (NameError)", "inf": "inf"}


def test_table_has_one_row_per_headline_and_lists_failures():
    env = {"date": "2026-01-01", "gpu": "NVIDIA H100 80GB HBM3", "gpus": "1", "gpu_memory_gib": "80",
           "driver": "1", "torch": "2.13.0", "cuda": "12.8", "python": "3.11"}
    records = [{"notebook": "notebooks/04_training_fast.ipynb", "ok": True, "seconds": 40.0,
                "headlines": {"length-grouped fp32 pairs/s": 123.0}, "error": ""},
               {"notebook": "solutions/04_training_fast.ipynb", "ok": False, "seconds": 5.0,
                "headlines": {}, "error": "AssertionError: boom"}]
    cpu = {"notebooks/04_training_fast.ipynb": {"length-grouped fp32 pairs/s": 4.15}}
    text = gpu_check.markdown(env, records, cpu, jobs=3, total=45.0)
    assert "NVIDIA H100 80GB HBM3" in text and "CUDA 12.8" in text and "torch 2.13.0" in text
    rows = [line for line in text.splitlines() if line.startswith("| notebooks/04")]
    assert len(rows) == len(gpu_check.HEADLINES["04_training_fast"])
    assert "| 123 | 4.15 |" in rows[0]
    assert "**FAILED**" in text and "AssertionError: boom" in text


def test_without_cuda_it_refuses_and_says_how_to_try_it(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA machine runs the real check")
    assert gpu_check.main([]) == 2
    assert "--allow-cpu" in capsys.readouterr().out
