import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

from rmcourse.metrics import AccuracyReport, pairwise_accuracy, per_section_accuracy, score_pairs


def test_accuracy_counts_ties_as_wrong_and_reports_them():
    report = pairwise_accuracy([3.0, 1.0, 2.0, 0.5], [1.0, 1.0, 2.5, 0.0])
    assert isinstance(report, AccuracyReport)
    assert report.n == 4 and report.n_correct == 2 and report.n_ties == 1
    assert report.accuracy == pytest.approx(0.5)
    assert "1 ties" in str(report)


def test_constant_model_scores_zero_not_chance():
    report = pairwise_accuracy(torch.zeros(10), torch.zeros(10))
    assert report.accuracy == 0.0 and report.n_ties == 10


@pytest.mark.parametrize("convert", [list, np.array, torch.tensor])
def test_accepts_lists_arrays_and_tensors(convert):
    chosen, rejected = [0.2, 0.9, -1.0], [0.1, 1.0, -2.0]
    report = pairwise_accuracy(convert(chosen), convert(rejected))
    assert (report.n_correct, report.n) == (2, 3)


def test_accuracy_of_bf16_tensor_with_grad():
    chosen = torch.tensor([1.0, 2.0], requires_grad=True).to(torch.bfloat16)
    assert pairwise_accuracy(chosen, torch.tensor([0.0, 3.0])).n_correct == 1


@pytest.mark.parametrize("chosen, rejected, error, match", [
    ([1.0, 2.0], [1.0], ValueError, "paired one to one"),
    ([], [], ValueError, "no pairs"),
    ([[1.0, 2.0]], [[0.0, 1.0]], ValueError, "must be 1-D"),
    ([1.0, float("nan")], [0.0, 0.0], ValueError, "non-finite value .* index 1"),
    ("1.0", [0.0], TypeError, "chosen_rewards must be a tensor"),
    ([1.0, "a"], [0.0, 0.0], TypeError, "must hold numbers"),
    (None, [0.0], TypeError, "chosen_rewards"),
])
def test_bad_rewards_are_named(chosen, rejected, error, match):
    with pytest.raises(error, match=match):
        pairwise_accuracy(chosen, rejected)


def test_per_section_accuracy_orders_sections_and_adds_all_row():
    sections = ["safety", "chat", "chat", "zeta", "safety", "chat"]
    chosen = [1.0, 1.0, 0.0, 1.0, 0.0, 2.0]
    rejected = [0.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    table = per_section_accuracy(sections, chosen, rejected)
    assert list(table.columns) == ["section", "n", "accuracy", "n_ties"]
    assert list(table["section"]) == ["chat", "safety", "zeta", "all"]
    by = table.set_index("section")
    assert by.loc["chat", "n"] == 3 and by.loc["chat", "accuracy"] == pytest.approx(2 / 3)
    assert by.loc["safety", "accuracy"] == pytest.approx(0.5)
    assert by.loc["safety", "n_ties"] == 1
    assert by.loc["zeta", "n_ties"] == 1 and by.loc["zeta", "accuracy"] == 0.0
    assert by.loc["all", "n"] == 6 and by.loc["all", "accuracy"] == pytest.approx(3 / 6)
    assert by.loc["all", "n_ties"] == 2


def test_per_section_accuracy_reads_dataset_and_dataframe_columns():
    ds = Dataset.from_dict({"section": ["chat", "reasoning"], "prompt": ["a", "b"]})
    from_ds = per_section_accuracy(ds, [1.0, 0.0], [0.0, 1.0])
    from_df = per_section_accuracy(ds.to_pandas(), [1.0, 0.0], [0.0, 1.0])
    pd.testing.assert_frame_equal(from_ds, from_df)
    assert list(from_ds["accuracy"]) == [1.0, 0.0, 0.5]


def test_per_section_accuracy_groups_by_any_column():
    ds = Dataset.from_dict({"section": ["chat", "chat", "safety", "safety"],
                            "novelty": ["novel", "in-distribution", "in-distribution", "novel"]})
    chosen, rejected = [1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]  # right on chat, wrong on safety
    table = per_section_accuracy(ds, chosen, rejected, by="novelty")
    assert list(table.columns) == ["novelty", "n", "accuracy", "n_ties"]
    assert list(table["novelty"]) == ["in-distribution", "novel", "all"]
    assert list(table["accuracy"]) == [0.5, 0.5, 0.5]
    by_section = per_section_accuracy(ds, chosen, rejected)
    assert list(by_section["section"]) == ["chat", "safety", "all"]
    assert list(by_section["accuracy"]) == [1.0, 0.0, 0.5]
    with pytest.raises(ValueError, match="missing column 'subset'"):
        per_section_accuracy(ds, chosen, rejected, by="subset")
    with pytest.raises(TypeError, match="by must be a column name"):
        per_section_accuracy(ds, chosen, rejected, by="")
    with pytest.raises(ValueError, match="empty or non-string novelty in row 1"):
        per_section_accuracy(["novel", None], [1.0, 0.0], [0.0, 1.0], by="novelty")


@pytest.mark.parametrize("sections, error, match", [
    (Dataset.from_dict({"prompt": ["a"]}), ValueError, "missing column 'section'"),
    (["chat", ""], ValueError, "row 1"),
    (["chat", "all"], ValueError, "reserved"),
    (["chat"], ValueError, "1 section labels but 2"),
    ("chat", TypeError, "single string"),
    (42, TypeError, "ds_or_sections"),
])
def test_per_section_bad_input(sections, error, match):
    with pytest.raises(error, match=match):
        per_section_accuracy(sections, [1.0, 0.0], [0.0, 1.0])


# ---------------------------------------------------------------- batched scoring
@pytest.fixture(scope="module")
def tiny_model():
    """A random 2-layer BERT (hidden 32) with MiniLM's tokenizer: scoring logic, not quality."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, bundled_model_path

    tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        num_labels=1)
    torch.manual_seed(0)
    return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=64)


PAIRS = Dataset.from_dict({
    "prompt": ["Say hi.", "Name a fruit.", "What is 2+2?", "Describe the sea in a long sentence.",
               "Say bye."],
    "chosen": ["Hi there!", "An apple.", "4", "It is wide, deep, blue and restless all day long.",
               "Bye, see you."],
    "rejected": ["No.", "A chair is a fruit.", "5", "Wet.", "Whatever."],
})


def test_score_pairs_equals_scoring_each_side_alone(tiny_model):
    tiny_model.train()  # score_pairs must switch to eval (dropout off) and switch back
    chosen, rejected = score_pairs(tiny_model, PAIRS, batch_size=2, max_length=64)
    assert tiny_model.training
    assert chosen.dtype == torch.float32 and chosen.shape == (5,) and rejected.shape == (5,)
    prompts = list(PAIRS["prompt"])
    torch.testing.assert_close(chosen, tiny_model.score(prompts, list(PAIRS["chosen"])),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(rejected, tiny_model.score(prompts, list(PAIRS["rejected"])),
                               atol=1e-5, rtol=1e-4)
    assert not torch.equal(chosen, rejected)


def test_score_pairs_is_one_stacked_forward_per_batch(tiny_model):
    calls = []
    hook = tiny_model.register_forward_hook(lambda m, args, kwargs, out: calls.append(out.shape[0]),
                                            with_kwargs=True)
    try:
        score_pairs(tiny_model, PAIRS, batch_size=2, max_length=64, progress=True)
    finally:
        hook.remove()
    assert calls == [4, 4, 2]  # 2 pairs -> 4 rows (chosen + rejected), last batch 1 pair


def test_score_pairs_refuses_to_skip_a_pair(tiny_model):
    long = PAIRS.select([3])  # its long chosen response does not fit 12 tokens
    with pytest.raises(ValueError, match="1 of 1 pairs have a response longer than max_length=12"):
        score_pairs(tiny_model, long, max_length=12)
    with pytest.raises(ValueError, match="empty"):
        score_pairs(tiny_model, PAIRS.select([]))
    with pytest.raises(TypeError, match="RewardModel"):
        score_pairs(torch.nn.Linear(2, 1), PAIRS)
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        score_pairs(tiny_model, PAIRS.remove_columns("rejected"))
    with pytest.raises(ValueError, match="batch_size"):
        score_pairs(tiny_model, PAIRS, batch_size=0)
