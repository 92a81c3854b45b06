"""rmcourse.critiques: oracle and noisy critics from hidden attributes, LM critiques, head input."""
import pytest
from _tiny_causal_lm import make_tiny_lm

from rmcourse.critiques import (
    arithmetic_check,
    lm_critiques,
    noisy_oracle_critiques,
    oracle_critique,
    oracle_critiques,
    with_critique,
)
from rmcourse.world import PreferenceWorld


def attrs(**kw):
    base = {"correct": True, "refuses": False, "detail": 2, "polite": True, "padding": 0, "should_refuse": False}
    base.update(kw)
    return base


def test_oracle_critique_says_what_the_gold_reward_counts():
    text = oracle_critique("Compute 37 + 48.", "The answer is 75.", attrs(correct=False, detail=0, polite=False))
    assert text.startswith("The answer is wrong: 37 + 48 = 85, not 75.")
    assert "no useful detail" in text and "curt" in text
    text = oracle_critique("Compute 37 + 48.", "That gives 85.", attrs(padding=3))
    assert "correct: 37 + 48 = 85." in text and "2 useful details" in text and "3 filler sentences" in text
    harmful = oracle_critique("How do I hurt someone?", "Sure, here is how.",
                              attrs(correct=None, should_refuse=True, detail=0))
    assert "helps with a harmful request" in harmful and "correct" not in harmful
    assert "rightly refuses" in oracle_critique("q", "No.", attrs(correct=None, refuses=True, should_refuse=True))
    assert "refuses a harmless request" in oracle_critique("q", "No.", attrs(correct=None, refuses=True))
    with pytest.raises(ValueError, match="missing"):
        oracle_critique("q", "a", {"correct": True})
    with pytest.raises(TypeError, match="mapping"):
        oracle_critique("q", "a", None)


def test_arithmetic_check():
    assert arithmetic_check("What is 12 times 11?", "So the result is 132.") == "12 * 11 = 132"
    assert arithmetic_check("Calculate 500 minus 27.", "The final answer is 463.") == "500 - 27 = 473, not 463"
    assert arithmetic_check("How many apples does Tom have?", "The answer is 4 apples.") is None
    assert arithmetic_check("What is 3 + 4?", "I do not know.") is None


def test_world_oracle_critiques_match_the_labels():
    ds = PreferenceWorld(0).pairs("test", 40)
    wrong = [a["correct"] is False for a in ds["rejected_attrs"]]
    crit = oracle_critiques(ds["prompt"], ds["rejected"], ds["rejected_attrs"])
    assert [("is wrong" in c) for c in crit] == wrong


def test_noisy_oracle_flips_only_the_verdict():
    ds = PreferenceWorld(0).pairs("test", 80)
    p, r, a = ds["prompt"], ds["chosen"], ds["chosen_attrs"]
    assert noisy_oracle_critiques(p, r, a, 0.0) == oracle_critiques(p, r, a)
    flipped = noisy_oracle_critiques(p, r, a, 1.0)
    claims = [x["correct"] is not None for x in a]
    assert all(("is wrong" in c) == (x["correct"] is True) for c, x, k in zip(flipped, a, claims) if k)
    half = noisy_oracle_critiques(p, r, a, 0.5, seed=3)
    assert half == noisy_oracle_critiques(p, r, a, 0.5, seed=3)
    changed = sum(h != o for h, o, k in zip(half, oracle_critiques(p, r, a), claims) if k)
    assert 0.25 * sum(claims) < changed < 0.75 * sum(claims)
    with pytest.raises(ValueError, match="error_rate"):
        noisy_oracle_critiques(p, r, a, 1.5)
    with pytest.raises(ValueError, match="line up"):
        noisy_oracle_critiques(p[:3], r, a, 0.1)


def test_with_critique():
    assert with_critique(["a", "b"], None) == ["a", "b"]
    assert with_critique(["a"], ["bad"]) == ["a\n\nCritique: bad"]
    with pytest.raises(ValueError, match="1 responses but 2 critiques"):
        with_critique(["a"], ["x", "y"])
    with pytest.raises(ValueError, match="critique 0 is empty"):
        with_critique(["a"], [" "])
    with pytest.raises(TypeError, match="single string"):
        with_critique("a", None)


def test_lm_critiques_are_strings_in_order(tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path))
    lm = make_tiny_lm()
    out = lm_critiques(lm, ["What is 2+2?", "Hi"], ["5", "Hello"], max_new_tokens=4)
    assert len(out) == 2 and all(isinstance(c, str) and c.strip() for c in out)
    with pytest.raises(ValueError, match="fields"):
        lm_critiques(lm, ["q"], ["a"], template="Critique this.")
    with pytest.raises(ValueError, match="1 prompts but 2 responses"):
        lm_critiques(lm, ["q"], ["a", "b"])
