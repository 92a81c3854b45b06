"""`python -m rmcourse.evaluate`: a real evaluation of small checkpoints, its numbers checked
against the library, the overflow policies, and its bad-input errors and exit codes."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from rmcourse.evaluate import (build_parser, evaluate_pairs, format_report, is_rewardbench2_rows,
                               main)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
BAD = FIXTURES / "bad"

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


def _tiny_bert(vocab: int, positions: int = 256):
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=positions, num_labels=1)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from rmcourse.models import bundled_model_path

    return AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, tokenizer) -> Path:
    """An rmcourse checkpoint: tiny random BERT, saved with max_length 128."""
    from transformers import BertForSequenceClassification

    from rmcourse.models import RewardModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("eval") / "rm"
    RewardModel(BertForSequenceClassification(_tiny_bert(len(tokenizer))), tokenizer,
                max_length=128).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def trl_folder(tmp_path_factory, tokenizer) -> Path:
    """A plain transformers reward-model folder (as TRL's RewardTrainer saves): no rmcourse.json."""
    from transformers import BertForSequenceClassification

    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("trl") / "trl-rm"
    BertForSequenceClassification(_tiny_bert(len(tokenizer))).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def _run(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        captured = capsys.readouterr()
        message = exit_.code if isinstance(exit_.code, str) else captured.err
        return code, captured.out, message
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_help_documents_every_option():
    text = build_parser().format_help()
    for option in ("--model", "--data", "--format", "--split", "--max-length", "--overflow",
                   "--batch-size", "--device", "--bootstrap", "--json", "world:SPLIT:N",
                   "exit codes", "num_labels=1"):
        assert option in text, f"--help does not mention {option}"


def test_world_evaluation_matches_the_library(checkpoint, tmp_path, capsys):
    from rmcourse.metrics import pairwise_accuracy, score_pairs
    from rmcourse.models import RewardModel
    from rmcourse.world import PreferenceWorld

    out = tmp_path / "report.json"
    code, printed, _ = _run(["--model", checkpoint, "--data", "world:test:24", "--json", out,
                             "--no-progress", "--bootstrap", "200"], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    ds = PreferenceWorld(0).pairs("test", 24)
    chosen, rejected = score_pairs(model, ds)  # the model's own window: 128
    expected = pairwise_accuracy(chosen, rejected)
    assert report["accuracy"]["accuracy"] == pytest.approx(expected.accuracy)
    assert report["accuracy"]["n_ties"] == expected.n_ties
    low, high = report["accuracy"]["ci95"]
    assert low <= expected.accuracy <= high
    assert report["window"] == {"max_length": 128, "overflow": "error", "n_prompt_cut": 0,
                                "n_response_truncated": 0, "n_dropped": 0}
    assert [r["section"] for r in report["per_section"]] == ["chat", "chat_hard", "safety",
                                                              "reasoning", "all"]
    assert sum(r["n"] for r in report["per_subset"]) == 24
    # the length rule and the slices, recomputed from the texts
    longer = np.array([len(c.split()) > len(r.split()) for c, r in zip(ds["chosen"], ds["rejected"])])
    assert report["baselines"]["longer_answer_wins"] == pytest.approx(longer.mean())
    assert report["length"]["chosen_longer"]["n"] == int(longer.sum())
    # the world's rows carry annotator agreement: a temperature is fitted (or its bound reported)
    assert "temperature" in report["calibration"]["temperature"]
    assert "not computed" in printed and "RewardBench v1" in printed  # world subsets are not RB's
    assert "pairwise accuracy" in printed and "95% bootstrap CI" in printed
    assert str(checkpoint.parent) not in printed  # names, not absolute paths


def test_rewardbench_fixture_gets_the_official_score_and_overflow_is_explicit(checkpoint, tmp_path,
                                                                            capsys):
    data = FIXTURES / "rewardbench.jsonl"
    # Its long responses do not fit a 24-token window: the default refuses, with a count.
    code, _, err = _run(["--model", checkpoint, "--data", data, "--max-length", "24",
                         "--no-progress"], capsys)
    assert code == 1 and "longer than max_length=24" in err and "overflow" in err

    out = tmp_path / "rb.json"
    code, printed, _ = _run(["--model", checkpoint, "--data", data, "--max-length", "24",
                             "--overflow", "truncate", "--json", out, "--no-progress"], capsys)
    assert code == 0
    report = json.loads(out.read_text())
    window = report["window"]
    assert window["n_response_truncated"] > 0 and window["n_dropped"] == 0
    assert report["n_scored"] == report["n_pairs"] == 8
    rb = report["rewardbench"]
    assert set(rb["sections"]) == {"chat", "chat_hard", "safety", "reasoning"}
    assert rb["score"] == pytest.approx(np.mean(list(rb["sections"].values())))
    assert "RewardBench v1 score:" in printed and "responses cut from the right" in printed

    code, _, _ = _run(["--model", checkpoint, "--data", data, "--max-length", "24",
                       "--overflow", "drop", "--json", out, "--no-progress"], capsys)
    dropped = json.loads(out.read_text())
    assert code == 0
    assert dropped["window"]["n_dropped"] == window["n_response_truncated"]
    assert dropped["n_scored"] == 8 - dropped["window"]["n_dropped"]
    assert dropped["accuracy"]["n"] == dropped["n_scored"]


def test_a_transformers_reward_model_folder_evaluates(trl_folder, capsys):
    code, printed, _ = _run(["--model", trl_folder, "--data", FIXTURES / "trl_standard.jsonl",
                             "--no-progress", "--bootstrap", "0"], capsys)
    assert code == 0 and "pairwise accuracy" in printed and "bootstrap CI" not in printed


def test_evaluate_pairs_is_usable_from_python(checkpoint):
    from rmcourse.formats import load_pairs
    from rmcourse.models import RewardModel

    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    result = evaluate_pairs(model, load_pairs(FIXTURES / "hh_rlhf.jsonl"), n_boot=50)
    assert result["n_pairs"] == 6 and result["accuracy"]["n"] == 6
    assert "per_section" not in result and result["rewardbench"] == {"skipped": "no 'subset' column"}
    assert "needs an 'agreement' column" in result["calibration"]["temperature"]["skipped"]
    assert "pairwise accuracy" in format_report(result)
    with pytest.raises(ValueError, match="overflow must be one of"):
        evaluate_pairs(model, load_pairs(FIXTURES / "hh_rlhf.jsonl"), overflow="cut")
    with pytest.raises(TypeError, match="n_boot must be an int"):
        evaluate_pairs(model, load_pairs(FIXTURES / "hh_rlhf.jsonl"), n_boot=1.5)


def test_rewardbench2_rows_are_recognised_and_scored(checkpoint):
    from rmcourse.evaluate import score_rewardbench2_rows
    from rmcourse.formats import read_rows
    from rmcourse.models import RewardModel

    rows = read_rows(BAD / "rewardbench2.jsonl")
    assert is_rewardbench2_rows(rows)
    assert not is_rewardbench2_rows(read_rows(FIXTURES / "trl_standard.jsonl"))
    model = RewardModel.from_pretrained(checkpoint, device="cpu")
    chosen, rejected = score_rewardbench2_rows(model, rows)
    assert [len(c) for c in chosen] == [len(r["chosen"]) for r in rows]
    assert [len(r) for r in rejected] == [len(r["rejected"]) for r in rows]
    alone = model.score([rows[0]["prompt"]], [rows[0]["rejected"][2]])
    assert rejected[0][2] == pytest.approx(float(alone[0]), abs=1e-5)


def test_a_wired_rewardbench2_scorer_gets_every_completion_reward(checkpoint, tmp_path, capsys,
                                                                  monkeypatch):
    import rmcourse.evaluate as evaluate

    seen = {}

    def fake_scorer(rows, chosen, rejected):
        seen.update(rows=len(rows), chosen=chosen, rejected=rejected)
        return {"score": 0.5}

    monkeypatch.setattr(evaluate, "rewardbench2_scorer", lambda: fake_scorer)
    out = tmp_path / "rb2.json"
    code, printed, _ = _run(["--model", checkpoint, "--data", BAD / "rewardbench2.jsonl",
                             "--json", out, "--no-progress"], capsys)
    assert code == 0 and seen["rows"] == 2
    assert [len(r) for r in seen["rejected"]] == [3, 3] and [len(c) for c in seen["chosen"]] == [1, 1]
    assert json.loads(out.read_text())["rewardbench2"] == {"score": 0.5}
    code, _, err = _run(["--model", checkpoint, "--data", BAD / "rewardbench2.jsonl",
                         "--overflow", "drop", "--no-progress"], capsys)
    assert code == 1 and "overflow must be 'error' or 'truncate' for RewardBench 2 rows" in err


def test_rewardbench2_rows_get_the_official_score(checkpoint, tmp_path, capsys):
    """The wired scorer (chapter 08's) agrees with rmcourse.rewardbench2 on the same rewards."""
    from rmcourse.evaluate import score_rewardbench2_rows
    from rmcourse.formats import read_rows
    from rmcourse.models import RewardModel
    from rmcourse.rewardbench2 import rewardbench2_from_rewards

    out = tmp_path / "rb2.json"
    code, printed, _ = _run(["--model", checkpoint, "--data", BAD / "rewardbench2.jsonl",
                             "--json", out, "--no-progress"], capsys)
    assert code == 0, printed
    report = json.loads(out.read_text())["rewardbench2"]
    rows = read_rows(BAD / "rewardbench2.jsonl")
    chosen, rejected = score_rewardbench2_rows(RewardModel.from_pretrained(checkpoint, device="cpu"),
                                               rows)
    want = rewardbench2_from_rewards(rows, chosen, rejected)
    assert report["score"] == pytest.approx(want["score"])
    assert set(report["subsets"]) == {r["subset"] for r in rows}
    assert all(0.0 <= s["score"] <= 1.0 for s in report["subsets"].values())


# ---------------------------------------------------------------- bad input: exit codes
@pytest.mark.parametrize("argv, code, message", [
    (["--data", "world:test:8"], 2, "--model"),                       # required flag missing
    (["--model", "{ckpt}", "--data", "world:test:0"], 2, "N in 'world:test:0' must be >= 1"),
    (["--model", "{ckpt}", "--data", "world:tset:8"], 2, "unknown preference-world split"),
    (["--model", "{ckpt}", "--data", "no/such.jsonl"], 2, "no such file or folder"),
    (["--model", "no/such/dir", "--data", "world:test:8"], 2, "no folder"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--format", "xml"], 2, "unknown format"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--overflow", "cut"], 2, "invalid choice"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--max-length", "0"], 2, "positive integer"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--json", "no/such/dir/r.json"], 2,
     "does not exist"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--max-length", "100000"], 1,
     "exceeds what this model can read"),
    (["--model", "{ckpt}", "--data", "world:test:8", "--device", "gpu"], 1, "unknown device 'gpu'"),
    (["--model", "{ckpt}", "--data", "{bad}/malformed.jsonl"], 1, "line 2 of 'malformed.jsonl'"),
    (["--model", "{ckpt}", "--data", "{bad}/empty.jsonl"], 1, "holds no rows"),
    (["--model", "{ckpt}", "--data", "{bad}/hh_no_assistant.jsonl"], 1, "no '\\\\n\\\\nAssistant:'"),
    (["--model", "{ckpt}", "--data", "{bad}/conv_unknown_role.jsonl"], 1, "unknown role 'usr'"),
    (["--model", "{ckpt}", "--data", "{bad}/mixed_splits"], 1, "no file for split 'train'"),
    (["--model", "{base}", "--data", "world:test:8"], 1, "not a reward-model checkpoint"),
])
def test_bad_input_exits_with_a_message(argv, code, message, checkpoint, tmp_path_factory,
                                        tokenizer, capsys):
    base = tmp_path_factory.getbasetemp() / "base-model"
    if not base.exists():  # a backbone without a reward head (what a hub base model looks like)
        from transformers import BertModel

        BertModel(_tiny_bert(len(tokenizer))).save_pretrained(base)
        tokenizer.save_pretrained(base)
    argv = [a.format(ckpt=checkpoint, bad=BAD, base=base) for a in argv]
    got, _, err = _run(argv + ["--no-progress"], capsys)
    assert got == code
    assert message.replace("\\\\", "\\") in err
    assert "Traceback" not in err


def test_module_runs_as_a_script_with_exit_code_1_on_bad_data(checkpoint):
    proc = subprocess.run([sys.executable, "-m", "rmcourse.evaluate", "--model", str(checkpoint),
                           "--data", str(BAD / "margin_text.jsonl"), "--no-progress"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "error: --data: column 'margin' in row 0 must be a number, got str" in proc.stderr
    assert "Traceback" not in proc.stderr
