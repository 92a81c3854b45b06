"""RewardBench 2 scoring, checked on hand-worked cases (best-of-4 ties, the Ties subset)."""
import math

import numpy as np
import pytest

from rmcourse.rewardbench2 import (best_of_n_result, rb1_pairs, rb2_intervals, rewardbench2_score, score_rows,
                                   ties_sample_stats, ties_score)
from rmcourse.rewardbench2_world import world_rb2_bench


@pytest.mark.parametrize("chosen, rejected, want", [
    (2.0, [1.0, 0.5, -1.0], 1.0),       # clean win
    (2.0, [2.5, 0.5, -1.0], 0.0),       # a rejected answer is higher
    (2.0, [2.0, 0.5, -1.0], 0.5),       # 2-way tie at the top
    (2.0, [2.0, 2.0, -1.0], 1 / 3),     # 3-way tie
    (2.0, [2.0, 2.0, 2.0], 0.25),       # everything tied: chance
    (1.0, [2.0, 1.0, 1.0], 0.0),        # tie below the top is still a loss
])
def test_best_of_n_result_tie_rule(chosen, rejected, want):
    assert best_of_n_result(chosen, rejected) == pytest.approx(want)


def test_best_of_n_result_rejects_bad_input():
    with pytest.raises(ValueError, match="non-finite"):
        best_of_n_result(1.0, [float("nan"), 0.0, 0.0])
    with pytest.raises(ValueError, match="empty"):
        best_of_n_result(1.0, [])


def test_ties_sample_stats_matches_the_official_definitions():
    s = ties_sample_stats([3.0, 2.6, 2.8], [1.0, 0.0])
    assert s["accurate"] and s["correct_incorrect_margin"] == pytest.approx(1.6)
    assert s["different_correct_margin"] == pytest.approx(0.4)
    one = ties_sample_stats([3.0], [3.0, 0.0])  # equal to the best incorrect: not accurate (strict >)
    assert not one["accurate"] and one["different_correct_margin"] is None
    empty = ties_sample_stats([], [1.0])
    assert empty == {"accurate": False, "correct_incorrect_margin": 0.0, "different_correct_margin": None}


def test_ties_score_hand_worked():
    # prompt 0: ref margin 2.0, tied margin 1.6 (spread 0.4): every term passes;
    #   ratio min(2.0, 1.6) / 0.4 = 4 -> tanh(3)
    # prompt 1: tied sample NOT accurate (a wrong answer 2.5 beats the worst right 2.0); ref accurate
    #   tied margin 2.0 - 2.5 = -0.5 < spread 1.0: neither preference term; ratio -0.5 -> tanh(-1.5)
    samples = [
        {"id": "ref:0", "chosen_scores": [3.0], "rejected_scores": [1.0, 0.0]},
        {"id": "tied:0", "chosen_scores": [3.0, 2.6, 2.8], "rejected_scores": [1.0, 0.0]},
        {"id": "ref:1", "chosen_scores": [4.0], "rejected_scores": [1.0]},
        {"id": "tied:1", "chosen_scores": [3.0, 2.0], "rejected_scores": [2.5, 1.0]},
    ]
    got = ties_score(samples)
    assert got["ref_accuracy"] == 1.0 and got["tied_accuracy"] == 0.5
    assert got["correctness_preferred"] == 0.5 and got["correctness_preferred_hard"] == 0.5
    margin = (math.tanh(3.0) + math.tanh(-1.5)) / 2
    assert got["correctness_margin_score"] == pytest.approx(margin)
    assert got["score"] == pytest.approx(0.3 * 0.5 + 0.3 * 1.0 + 0.2 * 0.5 + 0.2 * 0.5 + 0.01 * margin)


def test_ties_score_zero_spread_counts_as_tanh_of_inf_as_on_reward_bench_main():
    # allenai/reward-bench main (05a9005): tanh(2 / 0 - 1) = tanh(inf) = 1, so 1.0 + 0.01
    samples = [{"id": "ref:0", "chosen_scores": [2.0], "rejected_scores": [0.0]},
               {"id": "tied:0", "chosen_scores": [2.0, 2.0], "rejected_scores": [0.0]}]
    got = ties_score(samples)
    assert got["correctness_margin_score"] == 1.0 and got["score"] == pytest.approx(1.01)
    # a wrong answer above two identical right ones: tanh(-inf) = -1
    worse = [{"id": "ref:0", "chosen_scores": [2.0], "rejected_scores": [3.0]},
             {"id": "tied:0", "chosen_scores": [2.0, 2.0], "rejected_scores": [3.0]}]
    assert ties_score(worse)["correctness_margin_score"] == -1.0
    # 0 / 0 is NaN, which the official code sets to 0 and still averages in: (0 + tanh(1/0.5 - 1)) / 2
    mixed = [
        {"id": "ref:0", "chosen_scores": [2.0], "rejected_scores": [2.0]},
        {"id": "tied:0", "chosen_scores": [2.0, 2.0], "rejected_scores": [0.0]},
        {"id": "ref:1", "chosen_scores": [2.0], "rejected_scores": [0.0]},
        {"id": "tied:1", "chosen_scores": [2.0, 1.5], "rejected_scores": [0.5]}]
    assert ties_score(mixed)["correctness_margin_score"] == pytest.approx(np.tanh(1.0) / 2)


def test_ties_score_errors():
    with pytest.raises(ValueError, match="'ref:<prompt id>'"):
        ties_score([{"id": "x0", "chosen_scores": [1.0], "rejected_scores": [0.0]}])
    with pytest.raises(ValueError, match="two 'ref' samples"):
        ties_score([{"id": "ref:0", "chosen_scores": [1.0], "rejected_scores": [0.0]}] * 2)
    with pytest.raises(ValueError, match=">= 2 correct"):
        ties_score([{"id": "ref:0", "chosen_scores": [1.0], "rejected_scores": [0.0]},
                    {"id": "tied:0", "chosen_scores": [1.0], "rejected_scores": [0.0]}])


def test_rewardbench2_score_is_the_unweighted_mean_of_subsets():
    rows = [
        {"subset": "Math", "chosen_scores": [1.0], "rejected_scores": [0.0, 0.0, 0.0]},     # 1
        {"subset": "Math", "chosen_scores": [1.0], "rejected_scores": [1.0, 0.0, 0.0]},     # 0.5
        {"subset": "Safety", "chosen_scores": [0.0], "rejected_scores": [1.0, 0.0, 0.0]},   # 0
        {"subset": "Ties", "id": "ref:7", "chosen_scores": [2.0], "rejected_scores": [0.0]},
        {"subset": "Ties", "id": "tied:7", "chosen_scores": [2.0, 2.0], "rejected_scores": [0.0]},
    ]
    rep = rewardbench2_score(rows)
    table = rep.per_subset.set_index("subset")
    assert list(rep.per_subset["subset"]) == ["Math", "Safety", "Ties"]
    assert table.loc["Math", "score"] == 0.75 and table.loc["Safety", "score"] == 0.0
    assert table.loc["Ties", "score"] == pytest.approx(1.01)  # zero spread: + 0.01 * tanh(inf)
    assert table.loc["Math", "chance"] == 0.25
    assert rep.score == pytest.approx((0.75 + 0.0 + 1.01) / 3)  # NOT weighted by item counts
    assert rep.summary("m")["score"].iloc[0] == pytest.approx(100 * rep.score)


def test_rewardbench2_score_validates_rows():
    with pytest.raises(ValueError, match="missing 'rejected_scores'"):
        rewardbench2_score([{"subset": "Math", "chosen_scores": [1.0]}])
    with pytest.raises(ValueError, match="exactly one chosen"):
        rewardbench2_score([{"subset": "Math", "chosen_scores": [1.0, 2.0], "rejected_scores": [0.0]}])
    with pytest.raises(ValueError, match="2 rejected texts but 1"):
        rewardbench2_score([{"subset": "Math", "chosen_scores": [1.0], "rejected_scores": [0.0],
                             "rejected": ["a", "b"]}])
    with pytest.raises(ValueError, match="no rows"):
        rewardbench2_score([])
    with pytest.raises(TypeError, match="list of dicts"):
        rewardbench2_score({"subset": "Math"})


def test_score_rows_scores_each_distinct_text_once_and_rb1_pairs():
    calls = []

    def length(prompts, responses):
        calls.append(len(responses))
        return np.array([len(r) for r in responses], float)

    rows = [{"prompt": "p", "subset": "Focus", "chosen": ["long answer"], "rejected": ["a", "bb", "long answer!"]},
            {"prompt": "p", "subset": "Focus", "chosen": ["a"], "rejected": ["bb"]}]
    scored = score_rows(rows, length)
    assert calls == [4]  # "a" and "bb" appear twice for the same prompt
    assert scored[0]["chosen_scores"] == [11.0] and scored[0]["rejected_scores"] == [1.0, 2.0, 12.0]
    assert "chosen_scores" not in rows[0]  # the input is not modified
    pairs = rb1_pairs(scored)
    assert len(pairs) == 4 and pairs["chosen_score"].tolist() == [11.0, 11.0, 11.0, 1.0]
    with pytest.raises(ValueError, match="returned 1 scores for 4"):
        score_rows(rows, lambda p, r: [0.0])


def test_world_mini_bench_has_rb2_structure():
    from rmcourse.world import PreferenceWorld

    rows = world_rb2_bench(PreferenceWorld(seed=0), n_per_subset=4)
    subsets = [r["subset"] for r in rows]
    for s in ("Factuality", "Math", "Safety", "Focus"):
        assert subsets.count(s) == 4
    assert subsets.count("Ties") == 8  # a ref and a tied sample per prompt
    for r in rows:
        if r["subset"] == "Ties":
            assert len(r["chosen"]) == (1 if r["id"].startswith("ref") else 3)
            assert len(set(r["chosen_gold"])) == 1 and max(r["rejected_gold"]) <= r["chosen_gold"][0] - 1.0
        else:
            assert len(r["chosen"]) == 1 and len(r["rejected"]) == 3
        if r["subset"] in ("Factuality", "Math", "Safety"):
            assert max(r["rejected_gold"]) <= r["chosen_gold"][0] - 1.0
        for side in ("chosen", "rejected"):  # filler counts, one per answer, for diagnostics
            assert len(r[f"{side}_fillers"]) == len(r[side])
            assert all(isinstance(f, int) and 0 <= f <= 6 for f in r[f"{side}_fillers"])
    # the gold reward is a perfect scorer wherever it applies
    gold = [dict(r, chosen_scores=r["chosen_gold"], rejected_scores=r["rejected_gold"])
            for r in rows if r["subset"] != "Focus"]
    # 1 on Factuality, Math and Safety; 1.01 on Ties (identical gold for the tied right answers:
    # zero spread, so the 0.01 * tanh bonus is +1)
    assert rewardbench2_score(gold).score == pytest.approx((3 * 1.0 + 1.01) / 4)
    with pytest.raises(ValueError, match="positive int"):
        world_rb2_bench(PreferenceWorld(seed=0), 0)


def test_rewardbench2_from_rewards_is_json_ready():
    import json

    from rmcourse.rewardbench2 import rewardbench2_from_rewards

    rows = [{"prompt": "p", "subset": "Math", "chosen": ["a"], "rejected": ["b", "c", "d"]},
            {"prompt": "q", "subset": "Ties", "id": "ref:1", "chosen": ["a"], "rejected": ["b"]},
            {"prompt": "q", "subset": "Ties", "id": "tied:1", "chosen": ["a", "e"], "rejected": ["b"]}]
    out = rewardbench2_from_rewards(rows, [[1.0], [2.0], [2.0, 1.9]], [[0.0, 1.0, 0.5], [0.0], [0.0]])
    assert out["subsets"]["Math"] == {"score": 0.5, "n": 1, "chance": 0.25}
    assert out["subsets"]["Ties"]["chance"] is None and out["ties"]["ref_accuracy"] == 1.0
    assert out["score"] == pytest.approx((0.5 + out["subsets"]["Ties"]["score"]) / 2)
    json.dumps(out)
    with pytest.raises(ValueError, match="one list per row"):
        rewardbench2_from_rewards(rows, [[1.0]], [[0.0]])


def _bench_rows(n_items: int, wins: int, ties_ok: int, n_ties: int) -> list[dict]:
    rows = [{"subset": "Math", "chosen_scores": [1.0 if i < wins else 0.0], "rejected_scores": [0.5, 0.2, 0.1]}
            for i in range(n_items)]
    for p in range(n_ties):
        good = p < ties_ok
        rows.append({"id": f"ref:{p}", "subset": "Ties", "chosen_scores": [2.0], "rejected_scores": [0.0 if good else 3.0]})
        rows.append({"id": f"tied:{p}", "subset": "Ties", "chosen_scores": [2.0, 1.9],
                     "rejected_scores": [0.0 if good else 3.0]})
    return rows


def test_rb2_intervals_cover_the_scores_and_shrink_with_more_items():
    small = rb2_intervals(_bench_rows(20, 10, 5, 10), seed=0).set_index("subset")
    large = rb2_intervals(_bench_rows(400, 200, 100, 200), seed=0).set_index("subset")
    rep = rewardbench2_score(_bench_rows(20, 10, 5, 10))
    assert small.loc["Math", "score"] == pytest.approx(0.5)
    assert small.loc["overall", "score"] == pytest.approx(rep.score)
    assert small.loc["Ties", "score"] == pytest.approx(rep.ties["score"])
    for frame in (small, large):
        assert (frame["low"] <= frame["score"] + 1e-12).all() and (frame["score"] <= frame["high"] + 1e-12).all()
    width = lambda f, s: f.loc[s, "high"] - f.loc[s, "low"]  # noqa: E731
    for s in ("Math", "Ties", "overall"):
        assert width(large, s) < 0.5 * width(small, s)
    # all-or-nothing data has no spread to resample
    perfect = rb2_intervals(_bench_rows(20, 20, 10, 10), seed=0).set_index("subset")
    assert perfect.loc["Math", "low"] == perfect.loc["Math", "high"] == 1.0


def test_rb2_intervals_bad_input():
    with pytest.raises(ValueError, match="n_boot"):
        rb2_intervals(_bench_rows(5, 2, 1, 2), n_boot=10)
    with pytest.raises(ValueError, match="level"):
        rb2_intervals(_bench_rows(5, 2, 1, 2), level=95)


def test_world_rb2_bench_is_re_exported_by_the_scorer_module():
    import rmcourse.rewardbench2 as rb2

    assert rb2.world_rb2_bench is world_rb2_bench
