"""Each chapter-07 checker accepts a correct solution and rejects typical mistakes by name."""
import math
import re

import torch

from rmcourse.checks import ch07
from rmcourse.generative import yes_probability
from rmcourse.judges import best_vs_worst_pairs, debiased_preference, expected_score, parse_score


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- parse_score -------------------------------------------------------------------------------
def test_parse_score(capsys):
    ok, out = verdict(ch07.check_parse_score, parse_score, capsys)
    assert ok and out.startswith("✅")

    def first_number(text, low, high):
        m = re.search(r"\d+", text)
        return float(m.group()) if m else None

    ok, out = verdict(ch07.check_parse_score, first_number, capsys)
    assert not ok and "first number in the text is not the score" in out

    def first_score(text, low, high):
        m = re.search(r"score:\s*(\d+)", text, re.I)
        return float(m.group(1)) if m and low <= float(m.group(1)) <= high else parse_score(text, low, high)

    ok, out = verdict(ch07.check_parse_score, first_score, capsys)
    assert not ok and "take the LAST" in out

    def zero_when_missing(text, low, high):
        got = parse_score(text, low, high)
        return 0.0 if got is None else got

    ok, out = verdict(ch07.check_parse_score, zero_when_missing, capsys)
    assert not ok and "never invent one" in out

    def no_range_check(text, low, high):
        m = list(re.finditer(r"score:\s*(\d+)", text, re.I))
        return float(m[-1].group(1)) if m else parse_score(text, low, high)

    ok, out = verdict(ch07.check_parse_score, no_range_check, capsys)
    assert not ok and ("outside low..high" in out or "another scale" in out)

    ok, out = verdict(ch07.check_parse_score, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- expected_score ----------------------------------------------------------------------------
def test_expected_score(capsys):
    ok, out = verdict(ch07.check_expected_score, lambda lp, v: expected_score(lp, v), capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch07.check_expected_score, lambda lp, v: v[lp.argmax(1)], capsys)
    assert not ok and "argmax" in out
    ok, out = verdict(ch07.check_expected_score, lambda lp, v: lp.exp() @ v, capsys)
    assert not ok and "renormalise" in out
    ok, out = verdict(ch07.check_expected_score, lambda lp, v: torch.softmax(lp, dim=0) @ v, capsys)
    assert not ok and "dim=0" in out
    ok, out = verdict(ch07.check_expected_score,
                      lambda lp, v: torch.softmax(lp, 1) @ torch.arange(lp.shape[1], dtype=torch.float32), capsys)
    assert not ok and "use `values`" in out


# --- debiased_preference -----------------------------------------------------------------------
def test_debiased_preference(capsys):
    ok, out = verdict(ch07.check_debiased_preference, debiased_preference, capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch07.check_debiased_preference, lambda a, b: (a + b) / 2, capsys)
    assert not ok and "1 - p_ba" in out
    ok, out = verdict(ch07.check_debiased_preference, lambda a, b: a, capsys)
    assert not ok and "first order's verdict only" in out
    ok, out = verdict(ch07.check_debiased_preference, lambda a, b: 0.5 * ((1 - a) + b), capsys)
    assert not ok and "flip it" in out


# --- build_pairs -------------------------------------------------------------------------------
def good_pairs(prompts, candidates, scores):
    return [{k: p[k] for k in ("prompt", "chosen", "rejected")}
            for p in best_vs_worst_pairs(prompts, candidates, scores).pairs]


def test_build_pairs(capsys):
    ok, out = verdict(ch07.check_build_pairs, good_pairs, capsys)
    assert ok and out.startswith("✅")

    def seed_style(prompts, candidates, scores):  # the learning document's sort
        out = []
        for p, cands, sc in zip(prompts, candidates, scores):
            ranked = sorted(zip(sc, cands), key=lambda t: t[0], reverse=True)
            if ranked[0][0] > ranked[-1][0]:
                out.append({"prompt": p, "chosen": ranked[0][1], "rejected": ranked[-1][1]})
        return out

    ok, out = verdict(ch07.check_build_pairs, seed_style, capsys)
    assert not ok and "crashed" in out

    def none_as_zero(prompts, candidates, scores):
        return good_pairs(prompts, candidates, [[0 if s is None else s for s in sc] for sc in scores])

    ok, out = verdict(ch07.check_build_pairs, none_as_zero, capsys)
    assert not ok and "treated a None score as a number" in out

    def keeps_ties(prompts, candidates, scores):
        out = []
        for p, cands, sc in zip(prompts, candidates, scores):
            kept = [(s, c) for s, c in zip(sc, cands) if s is not None]
            if len(kept) >= 2:
                best = max(kept, key=lambda t: t[0])
                worst = min(kept, key=lambda t: t[0])
                out.append({"prompt": p, "chosen": best[1], "rejected": worst[1]})
        return out

    ok, out = verdict(ch07.check_build_pairs, keeps_ties, capsys)
    assert not ok and "tie" in out

    def swapped(prompts, candidates, scores):
        return [{"prompt": p["prompt"], "chosen": p["rejected"], "rejected": p["chosen"]}
                for p in good_pairs(prompts, candidates, scores)]

    ok, out = verdict(ch07.check_build_pairs, swapped, capsys)
    assert not ok and "swapped" in out


# --- yes_probability ---------------------------------------------------------------------------
def test_yes_probability(capsys):
    ok, out = verdict(ch07.check_yes_probability, yes_probability, capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch07.check_yes_probability, lambda y, n: y.exp(), capsys)
    assert not ok and "renormalise" in out
    ok, out = verdict(ch07.check_yes_probability, lambda y, n: y.exp() / (y.exp() + n.exp()), capsys)
    assert not ok and "underflows" in out
    ok, out = verdict(ch07.check_yes_probability, lambda y, n: torch.sigmoid(n - y), capsys)
    assert not ok and "share of No" in out
    ok, out = verdict(ch07.check_yes_probability, lambda y, n: float(math.nan), capsys)
    assert not ok and "shape" in out
