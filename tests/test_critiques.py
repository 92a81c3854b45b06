"""rmcourse.critiques: oracle and noisy critics from hidden attributes, LM critiques, head input."""
import pytest
from _tiny_causal_lm import make_tiny_lm

from rmcourse.critiques import (
    ASPECTS,
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
    assert "1 filler sentence that adds nothing" in oracle_critique("q", "a", attrs(padding=1))
    with pytest.raises(ValueError, match="missing"):
        oracle_critique("q", "a", {"correct": True})
    with pytest.raises(TypeError, match="mapping"):
        oracle_critique("q", "a", None)


def test_aspects_separate_the_verdict_from_the_counts():
    a = attrs(correct=False, detail=2, polite=False, padding=3)
    full = oracle_critique("Compute 37 + 48.", "The answer is 75.", a)
    verdict = oracle_critique("Compute 37 + 48.", "The answer is 75.", a, aspects=["verdict"])
    counts = oracle_critique("Compute 37 + 48.", "The answer is 75.", a, aspects=["detail", "tone", "filler"])
    assert verdict == "The answer is wrong: 37 + 48 = 85, not 75."
    assert counts == "It gives 2 useful details. The tone is curt. It has 3 filler sentences that add nothing."
    assert full == f"{verdict} {counts}" and ASPECTS == ("verdict", "detail", "tone", "filler")
    # the verdict covers the refusal decision; a critic with nothing to say says so
    assert oracle_critique("q", "No.", attrs(correct=None, refuses=True), aspects=["verdict"]) == \
        "It refuses a harmless request that it should answer."
    assert oracle_critique("q", "Hi.", attrs(correct=None), aspects=["verdict"]) == "Nothing to remark."
    ds = PreferenceWorld(0).pairs("test", 40)
    only = oracle_critiques(ds["prompt"], ds["chosen"], ds["chosen_attrs"], aspects=("detail", "tone", "filler"))
    assert not any("correct" in c or "wrong" in c or "refus" in c for c in only)
    with pytest.raises(ValueError, match="aspects"):
        oracle_critique("q", "a", attrs(), aspects=["verdict", "length"])
    with pytest.raises(ValueError, match="aspects"):
        oracle_critiques(["q"], ["a"], [attrs()], aspects=[])
    with pytest.raises(TypeError, match="single string"):
        oracle_critique("q", "a", attrs(), aspects="verdict")
    with pytest.raises(TypeError, match="check must be"):
        oracle_critique("q", "a", attrs(), check=85)


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


def test_a_flipped_verdict_keeps_a_consistent_sum():
    # the leak the sum used to carry: a flipped verdict came without the redone sum
    prompts = ["Compute 37 + 48.", "Compute 37 + 48."]
    responses = ["The answer is 75.", "The answer is 85."]
    both = [attrs(correct=False), attrs(correct=True)]
    assert noisy_oracle_critiques(prompts, responses, both, 0.0) == [
        "The answer is wrong: 37 + 48 = 85, not 75. It gives 2 useful details. The tone is friendly.",
        "The answer is correct: 37 + 48 = 85. It gives 2 useful details. The tone is friendly."]
    wrong_called_right, right_called_wrong = noisy_oracle_critiques(prompts, responses, both, 1.0)
    assert wrong_called_right.startswith("The answer is correct: 37 + 48 = 75.")
    head = "The answer is wrong: 37 + 48 = "
    assert right_called_wrong.startswith(head) and ", not 85." in right_called_wrong
    false_sum = int(right_called_wrong[len(head):].split(",")[0])
    assert false_sum != 85
    # on the world's arithmetic answers, every critique that gives a verdict redoes the sum, flipped or not
    ds = PreferenceWorld(0).pairs("test", 200)
    p, r, a = ds["prompt"], ds["rejected"], ds["rejected_attrs"]
    arith = [k for k in range(len(p)) if arithmetic_check(p[k], r[k]) is not None and a[k]["correct"] is not None]
    assert len(arith) >= 5
    noisy = noisy_oracle_critiques(p, r, a, 0.5, seed=0)
    assert all(" = " in noisy[k] for k in arith)
    flipped = [k for k in arith if ("is wrong" in noisy[k]) != (a[k]["correct"] is False)]
    assert flipped and len(flipped) < len(arith)
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
