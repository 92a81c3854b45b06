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

    def ignores_denominators(text, low, high):  # range-checks the value, never the scale it is on
        found = re.findall(r"score\s*:\s*(\d+)", text, re.I) or re.findall(r"(\d+)\s*(?:/|out of)\s*\d+", text)
        return float(found[-1]) if found and low <= float(found[-1]) <= high else None

    ok, out = verdict(ch07.check_parse_score, ignores_denominators, capsys)
    assert not ok and "check the denominator" in out

    def fraction_any_denominator(text, low, high):
        if re.search(r"score", text, re.I):
            return parse_score(text, low, high)
        m = re.findall(r"(\d+)\s*(?:/|out of)\s*\d+", text)
        return float(m[-1]) if m and low <= float(m[-1]) <= high else None

    ok, out = verdict(ch07.check_parse_score, fraction_any_denominator, capsys)
    assert not ok and "'2/3' is a fraction with another denominator" in out

    ok, out = verdict(ch07.check_parse_score, todo, capsys)
    assert not ok and out.startswith("⏳")


def spec_only_parser(text, low, high):
    # the exercise's spec and nothing more: "Score: N[/d]", else "N/high" or "N out of high"
    found = [(float(m.group(1)), m.group(2)) for m in
             re.finditer(r"score\s*:\s*(\d+(?:\.\d+)?)(?:\s*/\s*(\d+))?", text, re.I)]
    if not found:
        found = [(float(m.group(1)), m.group(2)) for m in
                 re.finditer(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)", text, re.I) if float(m.group(2)) == high]
    if not found:
        return None
    value, denominator = found[-1]
    if denominator is not None and float(denominator) != high:
        return None
    return value if low <= value <= high else None


def no_regex_parser(text, low, high):
    # a hand-written scan over the words: a different but equally correct form
    words = text.replace("\n", " ").split()
    stated = []
    for i, w in enumerate(words[:-1]):
        if w.lower().strip("*").rstrip(":") == "score" and w.rstrip("*").endswith(":"):
            stated.append(words[i + 1])
    fractions = [w for w in words if "/" in w]
    outof = [f"{words[i - 1]}/{words[i + 2]}" for i, w in enumerate(words[1:-2], 1)
             if w == "out" and words[i + 1] == "of"]
    pick = stated[-1] if stated else next((f for f in reversed(fractions + outof)
                                           if f.split("/")[1].strip(".,").isdigit()
                                           and float(f.split("/")[1].strip(".,")) == high), None)
    if pick is None:
        return None
    num, _, den = pick.strip(".,").partition("/")
    try:
        value = float(num)
    except ValueError:
        return None
    if den and float(den) != high:
        return None
    return value if low <= value <= high else None


def test_parse_score_accepts_equivalent_correct_forms(capsys):
    for fn in (spec_only_parser, no_regex_parser):
        ok, out = verdict(ch07.check_parse_score, fn, capsys)
        assert ok and out.startswith("✅"), (fn.__name__, out)


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

    def rejects_a_top_candidate(prompts, candidates, scores):  # q4: rejected e2 scored 4, not 1
        return [dict(p, rejected="e2") if p["prompt"] == "q4" else p
                for p in good_pairs(prompts, candidates, scores)]

    ok, out = verdict(ch07.check_build_pairs, rejects_a_top_candidate, capsys)
    assert not ok and "any bottom-scored rejected" in out


def test_build_pairs_accepts_any_tie_break(capsys):
    # plain max/min keep the FIRST of tied candidates at both ends; the reference keeps the last
    # bottom one: the exercise names no tie-break, so both are right
    def first_at_both_ends(prompts, candidates, scores):
        out = []
        for p, cands, sc in zip(prompts, candidates, scores):
            kept = [(s, c) for s, c in zip(sc, cands) if s is not None]
            if len(kept) >= 2 and max(kept, key=lambda t: t[0])[0] > min(kept, key=lambda t: t[0])[0]:
                out.append({"prompt": p, "chosen": max(kept, key=lambda t: t[0])[1],
                            "rejected": min(kept, key=lambda t: t[0])[1]})
        return out

    def last_at_both_ends(prompts, candidates, scores):
        out = first_at_both_ends(prompts, [c[::-1] for c in candidates], [s[::-1] for s in scores])
        return out

    for fn in (first_at_both_ends, last_at_both_ends, good_pairs):
        ok, out = verdict(ch07.check_build_pairs, fn, capsys)
        assert ok and out.startswith("✅"), (fn.__name__, out)


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


# --- swap_consistent_verdict -------------------------------------------------------------------
def good_verdict(p_ab, p_ba, threshold=0.5):
    a_wins = (p_ab > threshold) & (1 - p_ba > threshold)
    b_wins = (1 - p_ab > threshold) & (p_ba > threshold)
    return a_wins.long() - b_wins.long()


def test_swap_consistent_verdict(capsys):
    import numpy as np

    ok, out = verdict(ch07.check_swap_consistent_verdict, good_verdict, capsys)
    assert ok and out.startswith("✅")

    def numpy_form(p_ab, p_ba, threshold=0.5):  # np.where on arrays, int64 out
        a, b = np.asarray(p_ab), np.asarray(p_ba)
        return np.where((a > threshold) & (b < 1 - threshold), 1,
                        np.where((a < 1 - threshold) & (b > threshold), -1, 0))

    def list_form(p_ab, p_ba, threshold=0.5):  # plain Python over the pairs, a list of ints
        out = []
        for x, y in zip(p_ab.tolist(), p_ba.tolist()):
            first, second = x - 0.5, (1 - y) - 0.5   # each order's lean towards a
            margin = threshold - 0.5
            if first > margin and second > margin:
                out.append(1)
            elif first < -margin and second < -margin:
                out.append(-1)
            else:
                out.append(0)
        return out

    def torch_float_form(p_ab, p_ba, threshold=0.5):  # float +-1.0 / 0.0 from sign agreement
        lean_1, lean_2 = p_ab - 0.5, 0.5 - p_ba
        agree = torch.sign(lean_1) == torch.sign(lean_2)
        strong = torch.minimum(lean_1.abs(), lean_2.abs()) > threshold - 0.5
        return torch.where(agree & strong, torch.sign(lean_1), torch.zeros_like(p_ab))

    for fn in (numpy_form, list_form, torch_float_form):
        ok, out = verdict(ch07.check_swap_consistent_verdict, fn, capsys)
        assert ok, (fn.__name__, out)

    def sign(x):
        return torch.sign(x).long()

    wrong = {
        "speaks for b": lambda a, b, t=0.5: good_verdict(a, 1 - b, t),
        "averaged the two orders": lambda a, b, t=0.5: sign(0.5 * (a + 1 - b) - 0.5),
        "first order (p_ab) decide": lambda a, b, t=0.5: torch.where(a > t, 1, -1),
        "swapped order (p_ba) decide": lambda a, b, t=0.5: sign(0.5 - b),
        "reversed": lambda a, b, t=0.5: -good_verdict(a, b, t),
        "exactly 0.5": lambda a, b, t=0.5: ((a >= t) & (b <= 1 - t)).long() - ((a <= 1 - t) & (b >= t)).long(),
        "booleans": lambda a, b, t=0.5: (a > t) & (b < 1 - t),
        "booleans ": lambda a, b, t=0.5: [bool(x > t and y < 1 - t) for x, y in zip(a, b)],
        "shape": lambda a, b, t=0.5: good_verdict(a, b, t).reshape(-1, 1),
        "None": lambda a, b, t=0.5: None,
        "not a probability": lambda a, b, t=0.5: 0.5 * (a + 1 - b),
        "still decided at 0.5": lambda a, b, threshold=0.5: good_verdict(a, b),
        "p_ba < 1 - threshold": lambda a, b, threshold=0.5: ((a > threshold) & (b < threshold)).long()
                                                              - ((a < 1 - threshold) & (b > threshold)).long(),
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch07.check_swap_consistent_verdict, fn, capsys)
        assert not ok and message.strip() in out, (message, out)
    ok, out = verdict(ch07.check_swap_consistent_verdict, todo, capsys)
    assert not ok and out.startswith("⏳")
