"""Each chapter-05 checker accepts a correct solution and rejects typical mistakes by name."""
import numpy as np
import pytest
from scipy.optimize import minimize_scalar
from scipy.special import expit, log_expit
from scipy.stats import kendalltau

from rmcourse.checks import ch05


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- section_score ------------------------------------------------------------------------------
def good_section_score(accuracies, weights, subsets):
    present = [s for s in subsets if s in accuracies]
    return sum(accuracies[s] * weights[s] for s in present) / sum(weights[s] for s in present)


def test_section_score(capsys):
    ok, out = verdict(ch05.check_section_score, good_section_score, capsys)
    assert ok and out.startswith("✅")

    def unweighted(acc, w, subsets):
        present = [s for s in subsets if s in acc]
        return float(np.mean([acc[s] for s in present]))

    ok, out = verdict(ch05.check_section_score, unweighted, capsys)
    assert not ok and "plain mean" in out

    def zero_for_missing(acc, w, subsets):
        return sum(acc.get(s, 0.0) * w[s] for s in subsets) / sum(w[s] for s in subsets)

    ok, out = verdict(ch05.check_section_score, zero_for_missing, capsys)
    assert not ok and "hep-go" in out

    def all_subsets(acc, w, subsets):
        return sum(acc[s] * w[s] for s in acc) / sum(w[s] for s in acc)

    ok, out = verdict(ch05.check_section_score, all_subsets, capsys)
    assert not ok and "outside `subsets`" in out

    ok, out = verdict(ch05.check_section_score, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- rewardbench_overall ------------------------------------------------------------------------
def test_rewardbench_overall(capsys):
    def good(sections, prior=None):
        total = sum(sections.values())
        return total / 4 if prior is None else (2 * total + prior) / 9

    ok, out = verdict(ch05.check_rewardbench_overall, good, capsys)
    assert ok and out.startswith("✅")

    def equal_weight(sections, prior=None):
        vals = list(sections.values()) + ([] if prior is None else [prior])
        return sum(vals) / len(vals)

    ok, out = verdict(ch05.check_rewardbench_overall, equal_weight, capsys)
    assert not ok and "count half" in out

    def by_eight(sections, prior=None):
        total = sum(sections.values())
        return total / 4 if prior is None else (2 * total + prior) / 8

    ok, out = verdict(ch05.check_rewardbench_overall, by_eight, capsys)
    assert not ok and "not 8" in out

    def falsy(sections, prior=None):
        total = sum(sections.values())
        return (2 * total + prior) / 9 if prior else total / 4

    ok, out = verdict(ch05.check_rewardbench_overall, falsy, capsys)
    assert not ok and "prior is None" in out


# --- expected_calibration_error -----------------------------------------------------------------
def good_ece(confidence, correct, n_bins=10):
    idx = np.clip(np.floor((confidence - 0.5) / 0.5 * n_bins).astype(int), 0, n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        m = idx == b
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
    return ece


def test_ece(capsys):
    ok, out = verdict(ch05.check_expected_calibration_error, good_ece, capsys)
    assert ok and out.startswith("✅")

    def unweighted(confidence, correct, n_bins=10):
        idx = np.clip(np.floor((confidence - 0.5) / 0.5 * n_bins).astype(int), 0, n_bins - 1)
        gaps = [abs(correct[idx == b].mean() - confidence[idx == b].mean())
                for b in range(n_bins) if (idx == b).any()]
        return float(np.mean(gaps))

    ok, out = verdict(ch05.check_expected_calibration_error, unweighted, capsys)
    assert not ok and "equal weight" in out

    def seed_style(confidence, correct, n_bins=10):  # (lower, upper] drops confidence == 0.5
        edges = np.linspace(0.5, 1, n_bins + 1)
        ece = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            m = (confidence > lo) & (confidence <= hi)
            if m.any():
                ece += m.mean() * abs(correct[m].mean() - confidence[m].mean())
        return ece

    ok, out = verdict(ch05.check_expected_calibration_error, seed_style, capsys)
    assert not ok and "bin edge" in out

    def zero_one(confidence, correct, n_bins=10):
        idx = np.clip(np.floor(confidence * n_bins).astype(int), 0, n_bins - 1)
        return sum((idx == b).mean() * abs(correct[idx == b].mean() - confidence[idx == b].mean())
                   for b in range(n_bins) if (idx == b).any())

    ok, out = verdict(ch05.check_expected_calibration_error, zero_one, capsys)
    assert not ok and "[0.5, 1]" in out and "global gap" not in out

    def global_gap(confidence, correct, n_bins=10):  # no bins at all (the review's N19)
        return float(abs(correct.mean() - confidence.mean()))

    ok, out = verdict(ch05.check_expected_calibration_error, global_gap, capsys)
    assert not ok and "one global gap" in out


# --- fit_temperature ----------------------------------------------------------------------------
def good_fit_temperature(margins, labels):
    def nll(log_t):
        z = margins / np.exp(log_t)
        return -np.mean(labels * log_expit(z) + (1 - labels) * log_expit(-z))

    return float(np.exp(minimize_scalar(nll, bounds=(-5, 5), method="bounded").x))


def test_fit_temperature(capsys):
    ok, out = verdict(ch05.check_fit_temperature, good_fit_temperature, capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch05.check_fit_temperature, lambda m, y: 1 / good_fit_temperature(m, y), capsys)
    assert not ok and "1/T" in out
    ok, out = verdict(ch05.check_fit_temperature, lambda m, y: 1.0, capsys)
    assert not ok and "need T about" in out


# --- kendall_tau (tau-b by counting pairs) ------------------------------------------------------
def _counts(x, y, tie_test=lambda d: d == 0):
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape:
        raise ValueError("x and y must score the same items")
    c = d = tx = ty = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            dx, dy = x[i] - x[j], y[i] - y[j]
            if tie_test(dx):
                tx += 1
            if tie_test(dy):
                ty += 1
            if not tie_test(dx) and not tie_test(dy):
                if (dx > 0) == (dy > 0):
                    c += 1
                else:
                    d += 1
    return c, d, tx, ty, len(x) * (len(x) - 1) / 2


def good_kendall_tau(x, y):
    c, d, tx, ty, n0 = _counts(x, y)
    if tx == n0 or ty == n0:
        raise ValueError("tau-b is undefined when one side gives every item the same score")
    return (c - d) / np.sqrt((n0 - tx) * (n0 - ty))


def test_kendall_tau_accepts_counting_and_scipy(capsys):
    ok, out = verdict(ch05.check_kendall_tau, good_kendall_tau, capsys)
    assert ok and out.startswith("✅"), out

    def with_scipy(x, y):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.shape != y.shape or len(set(x)) < 2 or len(set(y)) < 2:
            raise ValueError("undefined")
        return kendalltau(x, y).statistic

    ok, out = verdict(ch05.check_kendall_tau, with_scipy, capsys)
    assert ok, out
    ok, out = verdict(ch05.check_kendall_tau, todo, capsys)
    assert not ok and out.startswith("⏳")


def test_kendall_tau_rejects_argsort(capsys):
    def seed(x, y):
        return kendalltau(x, np.argsort(y)[::-1]).statistic

    ok, out = verdict(ch05.check_kendall_tau, seed, capsys)
    assert not ok and "argsort" in out


def test_kendall_tau_rejects_tau_a_gamma_and_ties_as_concordant(capsys):
    def tau_a(x, y):
        c, d, tx, ty, n0 = _counts(x, y)
        if tx == n0 or ty == n0:
            raise ValueError("undefined")
        return (c - d) / n0

    ok, out = verdict(ch05.check_kendall_tau, tau_a, capsys)
    assert not ok and "tau-a" in out

    def gamma(x, y):
        c, d, tx, ty, n0 = _counts(x, y)
        if tx == n0 or ty == n0:
            raise ValueError("undefined")
        return (c - d) / (c + d)

    ok, out = verdict(ch05.check_kendall_tau, gamma, capsys)
    assert not ok and "gamma" in out

    def ties_concordant(x, y):
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        if x.shape != y.shape or len(set(x)) < 2 or len(set(y)) < 2:
            raise ValueError("undefined")
        n0 = len(x) * (len(x) - 1) / 2
        s = sum(1 if (x[i] - x[j]) * (y[i] - y[j]) >= 0 else -1
                for i in range(len(x)) for j in range(i + 1, len(x)))
        return s / n0

    ok, out = verdict(ch05.check_kendall_tau, ties_concordant, capsys)
    assert not ok and "concordant" in out


def test_kendall_tau_rejects_double_counting_and_sign_errors(capsys):
    ok, out = verdict(ch05.check_kendall_tau, lambda x, y: 2 * good_kendall_tau(x, y), capsys)
    assert not ok and "twice" in out
    ok, out = verdict(ch05.check_kendall_tau, lambda x, y: -good_kendall_tau(x, y), capsys)
    assert not ok and "tau = 1" in out


def test_kendall_tau_demands_value_errors(capsys):
    def nan_when_constant(x, y):
        c, d, tx, ty, n0 = _counts(x, y)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.float64(c - d) / np.sqrt((n0 - tx) * (n0 - ty))

    ok, out = verdict(ch05.check_kendall_tau, nan_when_constant, capsys)
    assert not ok and "undefined" in out

    def zero_division(x, y):
        c, d, tx, ty, n0 = _counts(x, y)
        return (c - d) / ((n0 - tx) * (n0 - ty)) ** 0.5

    ok, out = verdict(ch05.check_kendall_tau, zero_division, capsys)
    assert not ok and "dividing by zero" in out

    def truncating(x, y):
        n = min(len(x), len(y))
        return good_kendall_tau(np.asarray(x)[:n], np.asarray(y)[:n])

    ok, out = verdict(ch05.check_kendall_tau, truncating, capsys)
    assert not ok and "different lengths" in out


# --- predicted_side -----------------------------------------------------------------------------
def good_predicted_side(chosen, rejected, labels):
    gap = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
    p = expit(gap)
    labels = np.asarray(labels)
    correct = ((gap > 0) & (labels == 1)) | ((gap < 0) & (labels == 0))
    return np.maximum(p, 1 - p), correct


def test_predicted_side_accepts_a_correct_solution(capsys):
    ok, out = verdict(ch05.check_predicted_side_confidence, good_predicted_side, capsys)
    assert ok and out.startswith("✅"), out
    ok, out = verdict(ch05.check_predicted_side_confidence, todo, capsys)
    assert not ok and out.startswith("⏳")


def test_predicted_side_rejects_the_seed_pairing(capsys):
    def seed(chosen, rejected, labels):
        gap = np.asarray(chosen) - np.asarray(rejected)
        return expit(gap), (gap > 0).astype(float)

    ok, out = verdict(ch05.check_predicted_side_confidence, seed, capsys)
    assert not ok and "p(chosen)" in out and "errata 10" in out


def test_predicted_side_rejects_typical_mistakes(capsys):
    def truth_probability(chosen, rejected, labels):
        conf, correct = good_predicted_side(chosen, rejected, labels)
        p = expit(np.asarray(chosen) - np.asarray(rejected))
        return np.where(np.asarray(labels) == 1, p, 1 - p), correct

    ok, out = verdict(ch05.check_predicted_side_confidence, truth_probability, capsys)
    assert not ok and "ITS OWN choice" in out

    def ignores_labels(chosen, rejected, labels):
        conf, _ = good_predicted_side(chosen, rejected, labels)
        return conf, np.asarray(chosen) > np.asarray(rejected)

    ok, out = verdict(ch05.check_predicted_side_confidence, ignores_labels, capsys)
    assert not ok and "ignores the labels" in out

    def ties_right(chosen, rejected, labels):
        gap = np.asarray(chosen, dtype=float) - np.asarray(rejected, dtype=float)
        conf, _ = good_predicted_side(chosen, rejected, labels)
        return conf, (gap >= 0) == (np.asarray(labels) == 1)

    ok, out = verdict(ch05.check_predicted_side_confidence, ties_right, capsys)
    assert not ok and "tie" in out

    def raw_gap(chosen, rejected, labels):
        _, correct = good_predicted_side(chosen, rejected, labels)
        return np.abs(np.asarray(chosen) - np.asarray(rejected)), correct

    ok, out = verdict(ch05.check_predicted_side_confidence, raw_gap, capsys)
    assert not ok and "probability" in out

    ok, out = verdict(ch05.check_predicted_side_confidence,
                      lambda c, r, y: good_predicted_side(c, r, y)[0], capsys)
    assert not ok and "(confidence, correct)" in out
