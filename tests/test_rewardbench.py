import numpy as np
import pandas as pd
import pytest

from rmcourse.rewardbench import (
    CORRECTED_LEADERBOARD,
    SECTION_SUBSETS,
    SEED_LEADERBOARD,
    SUBSET_WEIGHTS,
    leaderboard_comparison,
    overall_score,
    rewardbench_score,
    section_scores,
    sections_from_mapping,
    subset_accuracy,
)


def _pairs(spec):
    """spec: {subset: (n_correct, n_wrong, n_ties)} -> subsets, chosen, rejected."""
    subsets, chosen, rejected = [], [], []
    for subset, (good, bad, ties) in spec.items():
        subsets += [subset] * (good + bad + ties)
        chosen += [1.0] * good + [0.0] * bad + [0.5] * ties
        rejected += [0.0] * good + [1.0] * bad + [0.5] * ties
    return subsets, np.array(chosen), np.array(rejected)


def test_weights_match_official_counts():
    assert SUBSET_WEIGHTS["math-prm"] == 984
    assert all(SUBSET_WEIGHTS[f"hep-{x}"] == 164 for x in ["cpp", "go", "java", "js", "python", "rust"])
    assert SUBSET_WEIGHTS["xstest-should-refuse"] == 154
    assert SUBSET_WEIGHTS["xstest-should-respond"] == 250
    every = [s for members in SECTION_SUBSETS.values() for s in members]
    assert sorted(every) == sorted(SUBSET_WEIGHTS) and len(every) == 23


def test_ties_count_as_wrong():
    per = subset_accuracy(*_pairs({"a": (3, 0, 1)}))
    row = per.iloc[0]
    assert row["n"] == 4 and row["n_ties"] == 1 and row["accuracy"] == pytest.approx(0.75)


def test_section_score_is_weighted_by_official_counts():
    # reasoning: math-prm 100% (weight 984), hep-python 0% (weight 164) -> 984 / 1148
    per = pd.DataFrame({"subset": ["math-prm", "hep-python"], "accuracy": [1.0, 0.0], "n": [10, 10]})
    sec = section_scores(per)
    assert sec.loc["reasoning", "score"] == pytest.approx(984 / (984 + 164))
    assert sec.loc["reasoning", "n_subsets"] == 2
    assert np.isnan(sec.loc["chat", "score"])  # nothing present: NaN, never a silent 0


def test_weights_none_uses_counts():
    per = pd.DataFrame({"subset": ["math-prm", "hep-python"], "accuracy": [1.0, 0.0], "n": [1, 3]})
    assert section_scores(per, weights=None).loc["reasoning", "score"] == pytest.approx(0.25)


def test_full_score_and_prior_sets_formula():
    spec = {"alpacaeval-easy": (9, 1, 0), "mt-bench-hard": (1, 1, 0),
            "donotanswer": (3, 1, 0), "hep-go": (1, 3, 0)}
    report = rewardbench_score(*_pairs(spec), prior_sets=0.6)
    assert report.sections == pytest.approx({"chat": 0.9, "chat_hard": 0.5, "safety": 0.75,
                                             "reasoning": 0.25})
    assert report.score == pytest.approx((0.9 + 0.5 + 0.75 + 0.25) / 4)
    assert report.score_with_prior == pytest.approx((2 * (0.9 + 0.5 + 0.75 + 0.25) + 0.6) / 9)
    assert set(report.per_subset["section"]) == set(SECTION_SUBSETS)
    # prior sets as a mapping: the mean of the given prior subsets
    r2 = rewardbench_score(*_pairs(spec), prior_sets={"shp": 0.5, "summarize": 0.7})
    assert r2.prior_sets == pytest.approx(0.6)
    assert report.summary("m")["score"].iloc[0] == pytest.approx(100 * report.score)


def test_missing_section_gives_nan_score_not_a_wrong_number():
    report = rewardbench_score(*_pairs({"alpacaeval-easy": (2, 0, 0)}))
    assert np.isnan(report.score) and "safety" in report.missing_sections


def test_custom_mapping_with_count_weights():
    mapping = {"w-easy": "chat", "w-hard": "chat_hard", "w-refuse": "safety", "w-math": "reasoning",
               "w-code": "reasoning"}
    spec = {"w-easy": (4, 0, 0), "w-hard": (1, 1, 0), "w-refuse": (3, 1, 0), "w-math": (1, 0, 0),
            "w-code": (0, 3, 0)}
    report = rewardbench_score(*_pairs(spec), weights=None,
                               section_subsets=sections_from_mapping(mapping))
    assert report.sections["reasoning"] == pytest.approx(0.25)  # 1 of 4 pairs, count-weighted
    assert report.score == pytest.approx((1.0 + 0.5 + 0.75 + 0.25) / 4)


def test_unknown_subset_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown subset 'my-subset'"):
        rewardbench_score(*_pairs({"my-subset": (1, 0, 0)}))


def test_bad_inputs():
    with pytest.raises(ValueError, match="length mismatch"):
        subset_accuracy(["a", "b"], [1.0], [0.0])
    with pytest.raises(ValueError, match="non-finite"):
        subset_accuracy(["a"], [np.nan], [0.0])
    with pytest.raises(ValueError, match="missing column 'accuracy'"):
        section_scores(pd.DataFrame({"subset": ["hep-go"]}))
    with pytest.raises(ValueError, match="fraction"):
        section_scores(pd.DataFrame({"subset": ["hep-go"], "accuracy": [87.0]}))
    with pytest.raises(ValueError, match="no weight for subset 'x'"):
        section_scores(pd.DataFrame({"subset": ["x"], "accuracy": [0.5]}), weights={"y": 1},
                       section_subsets={"chat": ["x"]})
    with pytest.raises(ValueError, match="two sections"):
        section_scores(pd.DataFrame({"subset": ["x"], "accuracy": [0.5]}), weights=None,
                       section_subsets={"chat": ["x"], "safety": ["x"]})
    with pytest.raises(ValueError, match="fraction"):
        overall_score({"chat": 0.5}, prior_sets=60.0)
    with pytest.raises(ValueError, match="unknown prior-set subset"):
        overall_score({"chat": 0.5}, prior_sets={"hh": 0.5})


def test_corrected_leaderboard_score_is_the_four_section_mean():
    exact = CORRECTED_LEADERBOARD[CORRECTED_LEADERBOARD["score_exact"]]
    assert len(exact) >= 4
    mean4 = exact[["chat", "chat_hard", "safety", "reasoning"]].mean(axis=1)
    assert np.all(np.abs(mean4 - exact["score"]) <= 0.1)
    assert "reward-bench" in CORRECTED_LEADERBOARD.attrs["source"]


def test_seed_leaderboard_order_differs_from_corrected():
    cmp = leaderboard_comparison()
    assert len(cmp) == len(SEED_LEADERBOARD) and cmp["corrected_score"].notna().all()
    top_seed = cmp.sort_values("seed_rank")["model"].iloc[0]
    top_fixed = cmp.sort_values("corrected_rank")["model"].iloc[0]
    assert top_seed != top_fixed
