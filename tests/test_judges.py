"""rmcourse.judges: parsing, expected scores, pairwise debiasing, Self-Rewarding pairs."""
import math

import numpy as np
import pytest
import torch
from _tiny_causal_lm import make_tiny_lm

from rmcourse.judges import (
    PAIRWISE_TEMPLATE,
    RUBRIC_JUDGE_TEMPLATE,
    SEED_JUDGE_TEMPLATE,
    best_vs_worst_pairs,
    debiased_preference,
    expected_score,
    fill_template,
    format_judge_prompt,
    judge_expected_scores,
    naive_first_number,
    pairwise_first_probability,
    parse_score,
    parse_scores,
    position_flip_rate,
)


@pytest.fixture(scope="module")
def tiny_lm(one_thread):
    return make_tiny_lm()


@pytest.fixture(autouse=True)
def private_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path / "artifacts"))


@pytest.mark.parametrize("text, low, high, want", [
    ("The answer is relevant and helpful.\nScore: 4", 0, 5, 4.0),
    ("Score: 2. On reflection the sum is right, so Score: 5", 0, 5, 5.0),  # the last one counts
    ("It says 37 + 48 = 75. Score: 1", 0, 5, 1.0),                        # not the 37
    ("score: 3/5", 0, 5, 3.0),
    ("Score: **4**", 0, 5, 4.0),
    ("I give it 4 out of 5.", 0, 5, 4.0),
    ("Score: 7/10", 0, 5, None),      # a score on another scale is not a score on this one
    ("Score: 9", 0, 5, None),         # out of range
    ("The answer is 75. Good job!", 0, 5, None),
    ("It scored 4 points overall", 0, 5, None),
    ("8/10, helpful and accurate", 1, 10, 8.0),
    ("Score: 4.5", 0, 5, 4.5),
    ("", 0, 5, None),
    ("**Score**: 4", 0, 5, 4.0),      # markdown around the label
    ("Score: 3\nNote: a score of 5 needs expert knowledge.", 0, 5, 3.0),  # "Score:" beats a later "score of"
    ("The overall score is 4.", 0, 5, 4.0),  # "score is N" when no "Score:" is stated
    ("Score: 4/10", 0, 5, None),      # in range, but on another scale
    ("About 2/3 of the steps are right.", 0, 5, None),  # a fraction, not a score out of 5
])
def test_parse_score(text, low, high, want):
    assert parse_score(text, low, high) == want


def test_parse_scores_counts_what_it_could_not_read():
    parsed = parse_scores(["Score: 3", "no idea", "Score: 11"], 0, 5)
    assert parsed.scores == [3.0, None, None] and parsed.n_unparsed == 2
    assert math.isclose(parsed.parse_rate, 1 / 3)
    with pytest.raises(TypeError, match="single string"):
        parse_scores("Score: 3")
    with pytest.raises(ValueError, match="low < high"):
        parse_score("Score: 3", 5, 0)
    with pytest.raises(TypeError, match="text must be a str"):
        parse_score(None)


def test_the_naive_parser_invents_scores():
    assert naive_first_number("37 + 48 = 75, so this is wrong.") == 37.0
    assert parse_score("37 + 48 = 75, so this is wrong.") is None


def test_expected_score_renormalises_over_the_score_tokens():
    lp = torch.log(torch.tensor([[0.1, 0.1, 0.0 + 1e-12, 0.2],    # mass 0.4: renormalised
                                 [0.25, 0.25, 0.25, 0.25]]))
    got = expected_score(lp)
    assert torch.allclose(got, torch.tensor([(0 * 0.1 + 1 * 0.1 + 3 * 0.2) / 0.4, 1.5]), atol=1e-5)
    got = expected_score(lp, values=[1, 2, 3, 4])
    assert torch.allclose(got[1], torch.tensor(2.5))
    with pytest.raises(ValueError, match="<= 0"):
        expected_score(torch.tensor([[0.2, 0.8]]))
    with pytest.raises(ValueError, match=r"\[N, K\]"):
        expected_score(torch.tensor([-1.0, -2.0]))
    with pytest.raises(ValueError, match="values"):
        expected_score(torch.zeros(1, 3) - 1, values=[0, 1])


def test_format_judge_prompt():
    text = format_judge_prompt(RUBRIC_JUDGE_TEMPLATE, "What is 2+2?", "4")
    assert "User: What is 2+2?\n<response>4</response>" in text and "{" not in text
    assert "1-10" not in text and "Score: <total points>" in text
    assert "1 to 10" in format_judge_prompt(SEED_JUDGE_TEMPLATE, "q", "a")
    with pytest.raises(ValueError, match="fields"):
        format_judge_prompt("Rate {response}", "q", "a")
    with pytest.raises(ValueError, match="nothing to judge"):
        format_judge_prompt(RUBRIC_JUDGE_TEMPLATE, "q", " ")


def test_fill_template_fills_each_field_once():
    # chained str.replace would put the second answer inside the first one here
    text = fill_template("Q: {prompt}\nA: {a}\nB: {b}", prompt="p", a="print(f'{b}')", b="x = 1")
    assert text == "Q: p\nA: print(f'{b}')\nB: x = 1"
    assert (format_judge_prompt(RUBRIC_JUDGE_TEMPLATE, "Say {response}", "{prompt} kept")
            .count("Say {response}") == 1)
    assert fill_template("{keep} {x}", x="1") == "{keep} 1"  # braces of no given field stay
    with pytest.raises(ValueError, match=r"\{critique\}"):
        fill_template("{prompt}", prompt="p", critique="c")
    with pytest.raises(TypeError, match="a must be a str"):
        fill_template("{a}", a=3)


def test_position_debiasing():
    always_a = torch.tensor([0.9, 0.8, 0.95])
    assert position_flip_rate(always_a, always_a) == 1.0
    assert torch.allclose(debiased_preference(always_a, always_a), torch.full((3,), 0.5))
    assert torch.allclose(debiased_preference(torch.tensor([0.9]), torch.tensor([0.8])), torch.tensor([0.55]))
    consistent_ab, consistent_ba = torch.tensor([0.9, 0.2]), torch.tensor([0.3, 0.7])
    assert position_flip_rate(consistent_ab, consistent_ba) == 0.0
    assert torch.allclose(debiased_preference(consistent_ab, consistent_ba), torch.tensor([0.8, 0.25]))
    assert position_flip_rate(torch.tensor([0.5]), torch.tensor([0.2])) == 1.0  # a tie is no verdict
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        debiased_preference(torch.tensor([1.5]), torch.tensor([0.5]))
    with pytest.raises(ValueError, match="shape"):
        debiased_preference(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="same non-zero length"):
        position_flip_rate(torch.zeros(0), torch.zeros(0))


def test_best_vs_worst_pairs_drops_and_counts():
    prompts = ["p0", "p1", "p2", "p3", "p4"]
    cands = [["a", "b", "c", "d"], ["e", "f", "g", "h"], ["i", "j", "k", "l"], ["m", "n", "o", "p"],
             ["q", "r", "s", "t"]]
    scores = [[3, None, 5, 1],          # best c, worst d, one unparsed
              [2, 2, 2, 2],             # a tie: dropped
              [None, None, 4, None],    # one scored: too few
              [4, 1, 4, 1],             # ties at both ends: first best (m), last worst (p)
              [float("nan"), 0.5, 0.7, 0.6]]
    out = best_vs_worst_pairs(prompts, cands, scores)
    assert [(p["prompt"], p["chosen"], p["rejected"]) for p in out.pairs] == [
        ("p0", "c", "d"), ("p3", "m", "p"), ("p4", "s", "r")]
    assert out.n_unparsed == 1 + 3 + 1 and out.n_dropped_tie == 1 and out.n_dropped_too_few == 1
    assert out.pairs[0]["chosen_score"] == 5.0 and out.pairs[0]["rejected_index"] == 3
    assert len(out) == 3 and out.n_prompts == 5
    with pytest.raises(ValueError, match="line up"):
        best_vs_worst_pairs(prompts[:2], cands, scores)
    with pytest.raises(ValueError, match="prompt 0"):
        best_vs_worst_pairs(["p"], [["a", "b"]], [[1]])
    with pytest.raises(TypeError, match="number or None"):
        best_vs_worst_pairs(["p"], [["a", "b"]], [[True, 1]])


def test_best_vs_worst_pairs_drops_numpy_nan():
    # np.float32 is not a Python float: its NaN must still count as unparsed, not become a "pair"
    # whose chosen and rejected are the same NaN-scored candidate
    out = best_vs_worst_pairs(["p", "q"], [["a", "b", "c"], ["d", "e"]],
                              [[np.float32("nan"), np.float32(1.0), np.float32(2.0)],
                               [np.float64("nan"), np.float32(3.0)]])
    assert [(p["chosen"], p["rejected"]) for p in out.pairs] == [("c", "b")]
    assert out.n_unparsed == 2 and out.n_dropped_too_few == 1
    assert all(p["chosen_index"] != p["rejected_index"] for p in out.pairs)
    all_nan = best_vs_worst_pairs(["p"], [["a", "b"]], [np.full(2, np.nan, dtype=np.float32)])
    assert all_nan.pairs == [] and all_nan.n_unparsed == 2


def test_add_filler_uses_the_worlds_content_neutral_filler():
    from rmcourse.judges import FILLER_SENTENCES, add_filler
    from rmcourse.world import GOLD_WEIGHTS
    from rmcourse.world_text import FILLER

    assert FILLER_SENTENCES == FILLER and GOLD_WEIGHTS["padding"] == 0.0
    assert not any("let me know" in f.lower() or "hope" in f.lower() for f in FILLER_SENTENCES)
    padded = add_filler("The answer is 4.", 3, seed=1)
    added = padded[len("The answer is 4. "):]
    assert padded.startswith("The answer is 4. ") and sum(f in added for f in FILLER_SENTENCES) == 3
    assert padded == add_filler("The answer is 4.", 3, seed=1) != add_filler("The answer is 4.", 3, seed=2)
    with pytest.raises(ValueError, match="n must be an int"):
        add_filler("a", len(FILLER_SENTENCES) + 1)


def test_expected_score_refuses_a_row_without_probability():
    with pytest.raises(ValueError, match="row 1 .* -inf for every score token"):
        expected_score(torch.tensor([[-1.0, -2.0], [-math.inf, -math.inf]]))


def test_judging_with_a_tiny_lm(tiny_lm):
    scores, mass = judge_expected_scores(tiny_lm, ["What is 2+2?", "Hi"], ["4", "Hello!"])
    assert scores.shape == (2,) and bool(((scores >= 0) & (scores <= 5)).all())
    assert bool(((mass > 0) & (mass <= 1 + 1e-5)).all())
    p = pairwise_first_probability(tiny_lm, ["q"], ["first answer"], ["second answer"])
    assert p.shape == (1,) and 0 < float(p) < 1
    with pytest.raises(ValueError, match="field"):
        pairwise_first_probability(tiny_lm, ["q"], ["a"], ["b"], template="Which? {a} {b}")
    with pytest.raises(ValueError, match="1 prompts but 2 second"):
        pairwise_first_probability(tiny_lm, ["q"], ["a"], ["b", "c"])
    with pytest.raises(TypeError, match=r"first\[0\] must be a str"):
        pairwise_first_probability(tiny_lm, ["q"], [1], ["b"])
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        judge_expected_scores(tiny_lm, ["a", "b"], ["c"])
    with pytest.raises(ValueError, match="single digits"):
        judge_expected_scores(tiny_lm, ["a"], ["c"], scale=[1, 10])
    assert "{a}" in PAIRWISE_TEMPLATE
