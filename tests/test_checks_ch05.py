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
    assert not ok and "[0.5, 1]" in out


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


# --- kendall_tau --------------------------------------------------------------------------------
def test_kendall_tau(capsys):
    ok, out = verdict(ch05.check_kendall_tau, lambda t, p: kendalltau(t, p).statistic, capsys)
    assert ok and out.startswith("✅")

    def seed(t, p):
        return kendalltau(t, np.argsort(p)[::-1]).statistic

    ok, out = verdict(ch05.check_kendall_tau, seed, capsys)
    assert not ok and "argsort" in out
    ok, out = verdict(ch05.check_kendall_tau, lambda t, p: -kendalltau(t, p).statistic, capsys)
    assert not ok and "tau = 1" in out
