"""Step-by-step solutions, exact and Math-Shepherd step labels, features, aggregation."""
import random

import numpy as np
import pytest
import torch

from rmcourse.process import (SOLUTION_KINDS, aggregate_solutions, aggregate_step_scores, exact_step_labels,
                              make_problems, math_shepherd_labels, reasoning_features, sample_solution,
                              sample_solutions, solution_table, train_step_classifier)


def test_problems_are_seeded_and_their_values_follow_the_operations():
    a, b = make_problems(20, seed=0), make_problems(20, seed=0)
    assert a == b and make_problems(20, seed=0, split="test") != a
    for p in a:
        value = p.start
        for (op, k, _), v in zip(p.ops, p.values):
            value = value + k if op == "+" else value - k if op == "-" else value * k
            assert value == v and value >= 0
        assert p.answer == p.values[-1] and str(p.start) in p.text
    with pytest.raises(ValueError, match="unknown split"):
        make_problems(2, split="dev")


@pytest.mark.parametrize("kind", SOLUTION_KINDS)
def test_solution_kinds(kind):
    for p in make_problems(30, seed=1):
        s = sample_solution(p, random.Random(0), kind=kind)
        labels = exact_step_labels(s)
        assert len(s.steps) == len(p.ops) + 1 and s.steps[-1].startswith("The answer is")
        if kind == "clean":
            assert s.answer_correct and all(s.step_valid) and all(labels)
        elif kind == "slip":
            assert not s.answer_correct and not all(s.step_valid)
        elif kind == "ignored_slip":  # a right answer through a wrong step
            assert s.answer_correct and not s.derivation_valid and not labels[-1]
            first_bad = s.step_valid.index(False)
            assert s.step_valid[first_bad + 1] is False  # the next step does not follow from it
        else:
            assert not s.answer_correct and all(s.step_valid[:-1]) and labels == [True] * (len(labels) - 1) + [False]
        # prefix labels are monotone: once bad, always bad
        assert all(not labels[i] or labels[i - 1] for i in range(1, len(labels)))


def test_math_shepherd_labels_are_exact_without_noise_and_optimistic_with_recovery():
    p = make_problems(1, seed=2)[0]
    clean = sample_solution(p, random.Random(0), kind="clean")
    slip = sample_solution(p, random.Random(0), kind="slip")
    assert math_shepherd_labels(p, clean, p_slip=0.0, p_recover=0.0) == [1.0] * len(clean.steps)
    assert math_shepherd_labels(p, slip, p_slip=0.0, p_recover=0.0) == [float(x) for x in exact_step_labels(slip)]
    # a completer that always recomputes the right value calls every prefix good but a wrong answer line
    assert math_shepherd_labels(p, slip, p_slip=0.0, p_recover=1.0)[:-1] == [1.0] * len(p.ops)
    soft = math_shepherd_labels(p, clean, n_completions=50, p_slip=0.3, soft=True)
    assert 0 < soft[0] < 1 and soft[-1] == 1.0
    with pytest.raises(ValueError, match="probability"):
        math_shepherd_labels(p, clean, p_slip=1.5)


def test_features_see_last_digits_but_not_carry_slips():
    text_ok = "Now add: 7 + 5 = 12. The answer is 12."
    text_bad = "Now add: 7 + 5 = 13. The answer is 13."
    text_carry = "Now add: 7 + 5 = 22. The answer is 22."
    x = reasoning_features(["q"] * 3, [text_ok, text_bad, text_carry])
    assert not torch.equal(x[0], x[1])
    assert torch.equal(x[0], x[2])  # +10 keeps every last digit: invisible, by design
    with pytest.raises(ValueError, match="verifier_dim"):
        reasoning_features(["q"], ["a"], verifier_dim=0)


def test_logistic_step_classifier_learns_a_separable_rule():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(300, 5, generator=g)
    y = (x[:, 0] - x[:, 1] > 0).float()
    clf = train_step_classifier(x, y)
    assert ((clf.predict_proba(x) > 0.5).float() == y).float().mean() > 0.97
    with pytest.raises(ValueError, match="in \\[0, 1\\]"):
        train_step_classifier(x, y * 2)


def test_aggregation():
    steps = [0.9, 0.2, 0.8]
    assert aggregate_step_scores(steps, "min") == 0.2
    assert aggregate_step_scores(steps, "prod") == pytest.approx(0.144)
    assert aggregate_step_scores(steps, "last") == 0.8
    got = aggregate_solutions([0.9, 0.2, 0.8, 0.5, 0.6], [0, 0, 0, 3, 3], "min")
    assert got.tolist() == [0.2, 0.5]
    assert aggregate_solutions([0.9, 0.2, 0.8, 0.5, 0.6], [0, 0, 0, 3, 3], "last").tolist() == [0.8, 0.6]
    with pytest.raises(ValueError, match="unknown aggregation"):
        aggregate_step_scores(steps, "mean")
    with pytest.raises(ValueError, match="sorted"):
        aggregate_solutions([0.1, 0.2], [1, 0])


def test_solution_table_and_default_mix():
    problems = make_problems(40, seed=0)
    pools = sample_solutions(problems, 8, seed=0)
    t = solution_table(problems, pools)
    assert len(t) == 320 and set(t["kind"]) == set(SOLUTION_KINDS)
    assert (t["wrong_derivation"] == (t["answer_correct"] & ~t["derivation_valid"])).all()
    assert (t.loc[t["kind"] == "ignored_slip", "wrong_derivation"]).all()


def test_verifier_reads_negative_values():
    # x % 10 of a negative number is Python's floor modulo, which keeps last-digit arithmetic
    # consistent: (0 - 9) % 10 == -9 % 10 == 1
    from rmcourse.process import _verifier_tokens

    tokens = _verifier_tokens("Now subtract: 0 - 9 = -9. Adding the new ones: -9 + 4 = -5. "
                              "The answer is -5.")
    assert tokens == ["eq:0-9=1", "n:eq", "eq:1+4=5", "n:eq", "carry:1>1", "n:carry",
                      "ans:5>5", "n:ans"]


def test_math_shepherd_labels_are_read_from_the_rollouts():
    from rmcourse.process import math_shepherd_rollouts

    problems = make_problems(20, seed=1)
    for problem, pool in zip(problems, sample_solutions(problems, 3, seed=1)):
        for s in pool:
            rollouts = math_shepherd_rollouts(problem, s, 4)
            assert len(rollouts) == len(problem.ops) + 1 and all(len(r) == 4 for r in rollouts)
            assert rollouts[-1] == [s.final_answer] * 4
            hard = [float(any(a == problem.answer for a in r)) for r in rollouts]
            soft = [sum(a == problem.answer for a in r) / 4 for r in rollouts]
            assert math_shepherd_labels(problem, s) == hard
            assert math_shepherd_labels(problem, s, soft=True) == soft
