"""Each chapter-06 checker accepts a correct solution and rejects typical mistakes by name."""
import copy
import itertools
import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.special import comb

from rmcourse.checks import ch06


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- train_with_early_stopping -----------------------------------------------------------------
def good_early_stopping(model, train_one_epoch, validation_loss, max_epochs, patience):
    best_loss, best_epoch, best_state, since = float("inf"), 0, None, 0
    for epoch in range(1, max_epochs + 1):
        train_one_epoch(model)
        loss = validation_loss(model)
        if loss < best_loss:
            best_loss, best_epoch, since = loss, epoch, 0
            best_state = copy.deepcopy(model.state_dict())
        else:
            since += 1
            if since >= patience:
                break
    model.load_state_dict(best_state)
    return best_epoch


def test_early_stopping(capsys):
    ok, out = verdict(ch06.check_early_stopping, good_early_stopping, capsys)
    assert ok and out.startswith("✅")

    def by_reference(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, best_state, since = float("inf"), 0, None, 0
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss < best_loss:
                best_loss, best_epoch, since = loss, epoch, 0
                best_state = model.state_dict()  # live tensors: becomes the last
            else:
                since += 1
                if since >= patience:
                    break
        model.load_state_dict(best_state)
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, by_reference, capsys)
    assert not ok and "reference" in out and "deep copy" in out

    def no_restore(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, since = float("inf"), 0, 0
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss < best_loss:
                best_loss, best_epoch, since = loss, epoch, 0
            else:
                since += 1
                if since >= patience:
                    break
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, no_restore, capsys)
    assert not ok and "still holds the weights" in out

    def rebinding(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, best_model, since = float("inf"), 0, None, 0
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss < best_loss:
                best_loss, best_epoch, since = loss, epoch, 0
                best_model = copy.deepcopy(model)
            else:
                since += 1
                if since >= patience:
                    break
        model = best_model  # noqa: F841 (the caller never sees this)
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, rebinding, capsys)
    assert not ok and "rebinding" in out

    def ties_improve(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, best_state, since = float("inf"), 0, None, 0
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss <= best_loss:
                best_loss, best_epoch, since = loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since += 1
                if since >= patience:
                    break
        model.load_state_dict(best_state)
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, ties_improve, capsys)
    assert not ok and "TIES" in out

    def one_too_many(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, best_state, since = float("inf"), 0, None, 0
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss < best_loss:
                best_loss, best_epoch, since = loss, epoch, 0
                best_state = copy.deepcopy(model.state_dict())
            else:
                since += 1
                if since > patience:
                    break
        model.load_state_dict(best_state)
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, one_too_many, capsys)
    assert not ok and "one too many" in out

    def never_stops(model, train_one_epoch, validation_loss, max_epochs, patience):
        best_loss, best_epoch, best_state = float("inf"), 0, None
        for epoch in range(1, max_epochs + 1):
            train_one_epoch(model)
            loss = validation_loss(model)
            if loss < best_loss:
                best_loss, best_epoch = loss, epoch
                best_state = copy.deepcopy(model.state_dict())
        model.load_state_dict(best_state)
        return best_epoch

    ok, out = verdict(ch06.check_early_stopping, never_stops, capsys)
    assert not ok and "trained all" in out

    def zero_based(model, train_one_epoch, validation_loss, max_epochs, patience):
        return good_early_stopping(model, train_one_epoch, validation_loss, max_epochs, patience) - 1

    ok, out = verdict(ch06.check_early_stopping, zero_based, capsys)
    assert not ok and "counted from 0" in out

    def validates_untrained(model, train_one_epoch, validation_loss, max_epochs, patience):
        validation_loss(model)
        return good_early_stopping(model, train_one_epoch, validation_loss, max_epochs, patience)

    ok, out = verdict(ch06.check_early_stopping, validates_untrained, capsys)
    assert not ok and "after each epoch" in out
    ok, out = verdict(ch06.check_early_stopping, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- pairwise_loss (margin, centering) ----------------------------------------------------------
def good_pairwise(chosen, rejected, margin=None, center_coef=0.0):
    gap = chosen - rejected - (0.0 if margin is None else margin)
    return -F.logsigmoid(gap).mean() + center_coef * ((chosen + rejected) ** 2).mean()


def test_pairwise_loss(capsys):
    ok, out = verdict(ch06.check_pairwise_loss, good_pairwise, capsys)
    assert ok and out.startswith("✅")
    wrong = {
        "wrong sign": lambda c, r, m=None, k=0.0: good_pairwise(c, r, None if m is None else -m, k),
        "not the difference": lambda c, r, m=None, k=0.0: good_pairwise(c, r, m) + k * ((c - r) ** 2).mean(),
        "only pins the global mean": lambda c, r, m=None, k=0.0: good_pairwise(c, r, m) + k * (c + r).mean() ** 2,
        "summed the centering": lambda c, r, m=None, k=0.0: good_pairwise(c, r, m) + k * ((c + r) ** 2).sum(),
        "4 times the midpoint": lambda c, r, m=None, k=0.0: good_pairwise(c, r, m) + k * (((c + r) / 2) ** 2).mean(),
        "logsigmoid": lambda c, r, m=None, k=0.0: (-torch.log(torch.sigmoid(c - r - (0.0 if m is None else m)))).mean()
        + k * ((c + r) ** 2).mean(),
        "rewards the rejected": lambda c, r, m=None, k=0.0: good_pairwise(r, c, m, k),
        "take the mean": lambda c, r, m=None, k=0.0: -F.logsigmoid(c - r).sum(),
        "connected": lambda c, r, m=None, k=0.0: good_pairwise(c, r, m, k).detach(),
        "expected a torch.Tensor": lambda c, r, m=None, k=0.0: float(good_pairwise(c, r, m, k)),
    }
    for phrase, fn in wrong.items():
        ok, out = verdict(ch06.check_pairwise_loss, fn, capsys)
        assert not ok and phrase in out, (phrase, out)


# --- kwise_loss ---------------------------------------------------------------------------------
def good_kwise(rewards, scores):
    per_prompt = []
    for r, s in zip(rewards, scores):
        terms = [-F.logsigmoid(r[i] - r[j]) if s[i] > s[j] else -F.logsigmoid(r[j] - r[i])
                 for i, j in itertools.combinations(range(len(s)), 2) if s[i] != s[j]]
        per_prompt.append(torch.stack(terms).mean())
    return torch.stack(per_prompt).mean()


def test_kwise_loss(capsys):
    ok, out = verdict(ch06.check_kwise_loss, good_kwise, capsys)
    assert ok and out.startswith("✅")

    def pooled(rewards, scores):
        terms = [-F.logsigmoid(r[i] - r[j]) if s[i] > s[j] else -F.logsigmoid(r[j] - r[i])
                 for r, s in zip(rewards, scores)
                 for i, j in itertools.combinations(range(len(s)), 2) if s[i] != s[j]]
        return torch.stack(terms).mean()

    def summed(rewards, scores):
        out = []
        for r, s in zip(rewards, scores):
            out.append(torch.stack([-F.logsigmoid(r[i] - r[j]) if s[i] > s[j] else -F.logsigmoid(r[j] - r[i])
                                    for i, j in itertools.combinations(range(len(s)), 2) if s[i] != s[j]]).sum())
        return torch.stack(out).mean()

    def neighbours(rewards, scores):
        out = []
        for r, s in zip(rewards, scores):
            order = torch.argsort(torch.as_tensor(s), descending=True)
            out.append(-F.logsigmoid(r[order[:-1]] - r[order[1:]]).mean())
        return torch.stack(out).mean()

    def lower_wins(rewards, scores):
        return good_kwise(rewards, [-torch.as_tensor(s) for s in scores])

    def ties_counted(rewards, scores):
        per_prompt = []
        for r, s in zip(rewards, scores):
            terms = [-F.logsigmoid(r[i] - r[j]) if s[i] >= s[j] else -F.logsigmoid(r[j] - r[i])
                     for i, j in itertools.combinations(range(len(s)), 2)]
            per_prompt.append(torch.stack(terms).mean())
        return torch.stack(per_prompt).mean()

    for phrase, fn in {"outweighs": pooled, "divide by C(K, 2)": summed, "neighbouring": neighbours,
                       "LOWER score": lower_wins, "makes no comparison": ties_counted,
                       "connected": lambda r, s: good_kwise(r, s).detach()}.items():
        ok, out = verdict(ch06.check_kwise_loss, fn, capsys)
        assert not ok and phrase in out, (phrase, out)


# --- kl_best_of_n_exact -------------------------------------------------------------------------
def good_kl_exact(probs, n):
    cdf = np.cumsum(probs)
    q = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
    keep = q > 0
    return float(np.sum(q[keep] * np.log(q[keep] / probs[keep])))


def test_kl_best_of_n_exact(capsys):
    ok, out = verdict(ch06.check_kl_best_of_n_exact, good_kl_exact, capsys)
    assert ok and out.startswith("✅")

    def no_skip(probs, n):
        cdf = np.cumsum(probs)
        q = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
        with np.errstate(divide="ignore", invalid="ignore"):
            return float(np.sum(q * np.log(q / probs)))

    def reverse(probs, n):
        cdf = np.cumsum(probs)
        q = cdf ** n - np.concatenate([[0.0], cdf[:-1]]) ** n
        keep = q > 0
        return float(np.sum(probs[keep] * np.log(probs[keep] / q[keep])))

    def worst_of_n(probs, n):
        return good_kl_exact(probs[::-1].copy(), n)

    def bits(probs, n):
        return good_kl_exact(probs, n) / math.log(2)

    def no_difference(probs, n):
        q = np.cumsum(probs) ** n
        return float(np.sum(q * np.log(q / probs)))

    wrong = {"contributes 0": no_skip, "KL(base || best-of-n)": reverse, "worst-of-n": worst_of_n,
             "bits": bits, "AT MOST": no_difference,
             "analytic upper bound": lambda p, n: math.log(n) - (n - 1) / n}
    for phrase, fn in wrong.items():
        ok, out = verdict(ch06.check_kl_best_of_n_exact, fn, capsys)
        assert not ok and phrase in out, (phrase, out)
    ok, out = verdict(ch06.check_kl_best_of_n_exact, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- expected_best_of_n -------------------------------------------------------------------------
def good_bon(proxy, gold, n):
    k = len(proxy)
    g = gold[np.argsort(proxy)]
    i = np.arange(1, k + 1)
    w = comb(i - 1, n - 1) / comb(k, n)
    return float(w @ g)


def test_expected_best_of_n(capsys):
    ok, out = verdict(ch06.check_expected_best_of_n, good_bon, capsys)
    assert ok and out.startswith("✅")

    def descending(proxy, gold, n):
        k = len(proxy)
        g = gold[np.argsort(-proxy)]
        i = np.arange(1, k + 1)
        return float(comb(i - 1, n - 1) / comb(k, n) @ g)

    ok, out = verdict(ch06.check_expected_best_of_n, descending, capsys)
    assert not ok and "ascending" in out

    def off_by_one(proxy, gold, n):
        k = len(proxy)
        g = gold[np.argsort(proxy)]
        i = np.arange(1, k + 1)
        w = comb(i, n - 1)
        return float(w / w.sum() @ g)

    ok, out = verdict(ch06.check_expected_best_of_n, off_by_one, capsys)
    assert not ok and "C(i-1, n-1)" in out


# --- combine_rewards ----------------------------------------------------------------------------
def good_combine(m, method="mean", lam=1.0):
    if method == "mean":
        return m.mean(0)
    if method == "worst":
        return m.min(0).values
    return m.mean(0) - lam * m.var(0, unbiased=False)


def test_combine_rewards(capsys):
    ok, out = verdict(ch06.check_combine_rewards, good_combine, capsys)
    assert ok and out.startswith("✅")

    def maxi(m, method="mean", lam=1.0):
        return m.max(0).values if method == "worst" else good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, maxi, capsys)
    assert not ok and "minimum" in out

    def std(m, method="mean", lam=1.0):
        if method == "uncertainty":
            return m.mean(0) - lam * m.std(0, unbiased=False)
        return good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, std, capsys)
    assert not ok and "variance" in out

    def wrong_dim(m, method="mean", lam=1.0):
        return m.mean(1) if method == "mean" else good_combine(m, method, lam)

    ok, out = verdict(ch06.check_combine_rewards, wrong_dim, capsys)
    assert not ok and "shape" in out


# --- uncertainty_weighted_pair_loss -------------------------------------------------------------
def good_weighted(c, r):
    w = (1.0 / (1.0 + c.var(0, unbiased=False) + r.var(0, unbiased=False))).detach()
    return (w * -F.logsigmoid(c.mean(0) - r.mean(0))).mean()


def test_uncertainty_weighted_pair_loss(capsys):
    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, good_weighted, capsys)
    assert ok and out.startswith("✅")

    def seed(c, r):
        w = 1.0 / (1.0 + c.var(0) + r.var(0))
        loss = F.binary_cross_entropy_with_logits(c.mean(0) - r.mean(0), torch.ones(c.shape[1]))
        return (loss * w).mean()

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, seed, capsys)
    assert not ok and "reduction" in out

    def attached(c, r):
        w = 1.0 / (1.0 + c.var(0, unbiased=False) + r.var(0, unbiased=False))
        return (w * -F.logsigmoid(c.mean(0) - r.mean(0))).mean()

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss, attached, capsys)
    assert not ok and ".detach()" in out and "disagree" in out and "agreeing" not in out

    ok, out = verdict(ch06.check_uncertainty_weighted_pair_loss,
                      lambda c, r: good_weighted(c, r).item(), capsys)
    assert not ok and "connected" in out


# --- fit_gao_bon --------------------------------------------------------------------------------
def good_fit(d, gold):
    d, gold = np.asarray(d), np.asarray(gold)
    y = gold - gold[d == 0].mean()
    (a, b), *_ = np.linalg.lstsq(np.column_stack([d, -d ** 2]), y, rcond=None)
    return a, b


def test_fit_gao_bon(capsys):
    ok, out = verdict(ch06.check_fit_gao_bon, good_fit, capsys)
    assert ok and out.startswith("✅")

    def sign(d, gold):
        a, b = good_fit(d, gold)
        return a, -b

    ok, out = verdict(ch06.check_fit_gao_bon, sign, capsys)
    assert not ok and "wrong sign" in out

    def no_offset(d, gold):
        d, gold = np.asarray(d), np.asarray(gold)
        (a, b), *_ = np.linalg.lstsq(np.column_stack([d, -d ** 2]), gold, rcond=None)
        return a, b

    ok, out = verdict(ch06.check_fit_gao_bon, no_offset, capsys)
    assert not ok and "d = 0" in out


# --- label_smoothed_pair_loss -------------------------------------------------------------------
def good_smoothed(chosen, rejected, epsilon):
    d = chosen - rejected
    return (-(1 - epsilon) * F.logsigmoid(d) - epsilon * F.logsigmoid(-d)).mean()


def test_label_smoothed_pair_loss(capsys):
    ok, out = verdict(ch06.check_label_smoothed_pair_loss, good_smoothed, capsys)
    assert ok and out.startswith("✅")

    def by_library(chosen, rejected, epsilon):  # the same loss through TRL-style pairwise_loss
        from rmcourse.losses import pairwise_loss
        return ((1 - epsilon) * pairwise_loss(chosen, rejected, reduction="none")
                + epsilon * pairwise_loss(rejected, chosen, reduction="none")).mean()

    ok, out = verdict(ch06.check_label_smoothed_pair_loss, by_library, capsys)
    assert ok, out

    def per_pair(c, r, e):
        d = c - r
        return -(1 - e) * F.logsigmoid(d) - e * F.logsigmoid(-d)

    def floored(c, r, e):  # "avoid eps = 0" guard that breaks the plain limit
        return good_smoothed(c, r, max(e, 0.01))

    def kl(c, r, e):  # cross-entropy minus the target's entropy
        return good_smoothed(c, r, e) + (1 - e) * math.log(1 - e) + e * math.log(e) if e > 0 else \
            good_smoothed(c, r, e) + float("nan")

    wrong = {
        "wrong side": lambda c, r, e: good_smoothed(c, r, 1 - e),
        "log(sigmoid(x)) underflows": lambda c, r, e: (-(1 - e) * torch.log(torch.sigmoid(c - r))
                                                       - e * torch.log(torch.sigmoid(r - c))).mean(),
        "summed over pairs": lambda c, r, e: per_pair(c, r, e).sum(),
        "one loss per pair": per_pair,
        "reduce to the plain": floored,
        "epsilon is ignored": lambda c, r, e: -F.logsigmoid(c - r).mean(),
        "uniform target": lambda c, r, e: good_smoothed(c, r, e / 2),
        "Robust DPO": lambda c, r, e: (-(1 - e) * F.logsigmoid(c - r)
                                       + e * F.logsigmoid(r - c)).mean() / (1 - 2 * e),
        "wrong sign": lambda c, r, e: (-(1 - e) * F.logsigmoid(c - r) + e * F.logsigmoid(r - c)).mean(),
        "entropy": kl,
        "connected": lambda c, r, e: good_smoothed(c, r, e).detach(),
        "expected a torch.Tensor": lambda c, r, e: float(good_smoothed(c, r, e)),
        "forget `return`": lambda c, r, e: None,
        "gradient with respect to the chosen": lambda c, r, e: good_smoothed(c.detach(), r, e),
    }
    for phrase, fn in wrong.items():
        ok, out = verdict(ch06.check_label_smoothed_pair_loss, fn, capsys)
        assert not ok and phrase in out, (phrase, out)

    ok, out = verdict(ch06.check_label_smoothed_pair_loss, todo, capsys)
    assert not ok and out.startswith("⏳")
