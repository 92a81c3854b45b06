"""benchmarks/dialogue.py: world pairs rendered as multi-turn HH-RLHF-style dialogues."""
import importlib.util
from pathlib import Path

import pytest
from datasets import Dataset

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dialogue():
    spec = importlib.util.spec_from_file_location("bench_dialogue", ROOT / "benchmarks" / "dialogue.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tokenizer():
    from rmcourse.models import load_tokenizer

    return load_tokenizer("minilm")


@pytest.fixture(scope="module")
def pairs():
    from rmcourse.world import PreferenceWorld

    return PreferenceWorld(seed=0).pairs("train", 60)


def test_dialogues_keep_the_pair_and_put_a_long_history_before_it(dialogue, tokenizer, pairs):
    out = dialogue.render_dialogues(pairs, tokenizer, seed=0)
    assert len(out) == len(pairs)
    assert list(out["chosen"]) == list(pairs["chosen"])  # the label and answers are untouched
    assert list(out["rejected"]) == list(pairs["rejected"])
    assert list(out["section"]) == list(pairs["section"])
    for row, original in zip(out, pairs):
        assert row["prompt"].startswith("Human: ")
        assert row["prompt"].endswith(f"\n\nHuman: {original['prompt']}\n\nAssistant:")
        assert row["prompt"].count("\n\nHuman: ") == row["n_turns"] - 1
    lengths = [len(ids) for ids in tokenizer(list(out["prompt"]), add_special_tokens=False)["input_ids"]]
    assert lengths == list(out["prompt_tokens"])  # the counted lengths are the real ones
    assert max(lengths) <= 250
    summary = dialogue.describe(out)
    assert summary["share_100_250"] >= 0.9 and summary["mean_turns"] >= 2.5
    assert sum(out["n_turns"]) > len(out)  # multi-turn, not single questions


def test_dialogues_are_deterministic_and_the_seed_matters(dialogue, tokenizer, pairs):
    first = dialogue.render_dialogues(pairs, tokenizer, seed=0)
    again = dialogue.render_dialogues(pairs, tokenizer, seed=0)
    other = dialogue.render_dialogues(pairs, tokenizer, seed=1)
    assert list(first["prompt"]) == list(again["prompt"])
    assert list(first["prompt"]) != list(other["prompt"])


def test_bad_input_is_named(dialogue, tokenizer, pairs):
    with pytest.raises(ValueError, match="no column 'chosen'"):
        dialogue.render_dialogues(pairs.remove_columns("chosen"), tokenizer)
    with pytest.raises(ValueError, match="min_prompt_tokens <= max_prompt_tokens"):
        dialogue.render_dialogues(pairs, tokenizer, min_prompt_tokens=300, max_prompt_tokens=200)
    with pytest.raises(ValueError, match="at least 2 pairs"):
        dialogue.render_dialogues(Dataset.from_list([pairs[0]]), tokenizer)
