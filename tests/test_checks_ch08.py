"""Each chapter-08 checker accepts a correct solution and rejects typical mistakes by name."""
import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr

from rmcourse.checks import ch08


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- gated_reward ------------------------------------------------------------------------------
def test_gated_reward(capsys):
    good = lambda s, z, scale: (F.softmax(z, dim=-1) * scale * s).sum(-1)  # noqa: E731
    ok, out = verdict(ch08.check_gated_reward, good, capsys)
    assert ok and out.startswith("✅")
    wrong = {
        "raw gate logits": lambda s, z, scale: (z * scale * s).sum(-1),
        "(dim 0)": lambda s, z, scale: (F.softmax(z, dim=0) * scale * s).sum(-1),
        "sigmoid": lambda s, z, scale: (torch.sigmoid(z) * scale * s).sum(-1),
        "learned scale": lambda s, z, scale: (F.softmax(z, dim=-1) * s).sum(-1),
        "SUM": lambda s, z, scale: (F.softmax(z, dim=-1) * scale * s).mean(-1),
        "shape": lambda s, z, scale: (F.softmax(z, dim=-1) * scale * s),
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch08.check_gated_reward, fn, capsys)
        assert not ok and message in out, (message, out)
    ok, out = verdict(ch08.check_gated_reward, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- prm_solution_score ------------------------------------------------------------------------
def good_prm(p, how):
    return float(np.min(p)) if how == "min" else float(np.prod(p))


def test_prm_solution_score(capsys):
    ok, out = verdict(ch08.check_prm_solution_score, good_prm, capsys)
    assert ok and out.startswith("✅")
    wrong = {
        "LAST step": lambda p, how: p[-1],
        "mean lets": lambda p, how: float(np.mean(p)),
        "maximum": lambda p, how: max(p),
        "'min' returned the product": lambda p, how: float(np.prod(p)),
        "'prod' returned the minimum": lambda p, how: float(np.min(p)),
        "log of the product": lambda p, how: float(np.min(p)) if how == "min" else float(np.sum(np.log(p))),
        "None": lambda p, how: None,
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch08.check_prm_solution_score, fn, capsys)
        assert not ok and message in out, (message, out)


# --- dpo_implicit_rewards ----------------------------------------------------------------------
def good_dpo(c, r, rc, rr, beta):
    cr, rw = beta * (c - rc), beta * (r - rr)
    return cr, rw, -F.logsigmoid(cr - rw)


def test_dpo_implicit_rewards(capsys):
    ok, out = verdict(ch08.check_dpo_implicit_rewards, good_dpo, capsys)
    assert ok and out.startswith("✅")

    def no_ref(c, r, rc, rr, beta):
        return beta * c, beta * r, -F.logsigmoid(beta * (c - r))

    def flipped(c, r, rc, rr, beta):
        cr, rw = beta * (rc - c), beta * (rr - r)
        return cr, rw, -F.logsigmoid(cr - rw)

    def no_beta(c, r, rc, rr, beta):
        return c - rc, r - rr, -F.logsigmoid((c - rc) - (r - rr))

    def wrong_way(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return cr, rw, -F.logsigmoid(rw - cr)

    def loss_without_beta(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return cr, rw, -F.logsigmoid((c - rc) - (r - rr))

    def averaged(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return cr, rw, (-F.logsigmoid(cr - rw)).mean().expand(3)

    def two_things(c, r, rc, rr, beta):
        return beta * (c - rc), beta * (r - rr)

    for message, fn in [("forgets the reference", no_ref), ("sign is flipped", flipped), ("by beta", no_beta),
                        ("wrong way", wrong_way), ("without beta", loss_without_beta),
                        ("one loss per pair", averaged), ("return (chosen_rewards", two_things)]:
        ok, out = verdict(ch08.check_dpo_implicit_rewards, fn, capsys)
        assert not ok and message in out, (message, out)


# --- best_of_4 ---------------------------------------------------------------------------------
def good_b4(s):
    s = np.asarray(s, float)
    return 0.0 if s[0] != s.max() else 1.0 / np.sum(s == s.max())


def test_best_of_4(capsys):
    ok, out = verdict(ch08.check_best_of_4, good_b4, capsys)
    assert ok and out.startswith("✅")
    wrong = {
        "counted a tie as a win": lambda s: float(s[0] >= max(s)),
        "counted a tie as a loss": lambda s: float(all(s[0] > x for x in s[1:])),
        "tie as a win": lambda s: float(np.argmax(s) == 0),  # argmax breaks ties to the first index
        "is lost": lambda s: 1.0 / np.sum(np.asarray(s) == s[0]),
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch08.check_best_of_4, fn, capsys)
        assert not ok and message in out, (message, out)


# --- verbosity_penalty -------------------------------------------------------------------------
def good_pen(r, v, grid, threshold=0.03):
    for lam in sorted(grid):
        if spearmanr(r - lam * v, v)[0] <= threshold:
            return float(lam)
    return 1.0


def test_verbosity_penalty(capsys):
    ok, out = verdict(ch08.check_verbosity_penalty, good_pen, capsys)
    assert ok and out.startswith("✅")

    def largest(r, v, grid, threshold=0.03):
        ok_ = [lam for lam in grid if spearmanr(r - lam * v, v)[0] <= threshold]
        return float(max(ok_)) if ok_ else 1.0

    def correlation(r, v, grid, threshold=0.03):
        lam = good_pen(r, v, grid, threshold)
        return float(spearmanr(r - lam * v, v)[0])

    def no_fallback(r, v, grid, threshold=0.03):
        for lam in sorted(grid):
            if spearmanr(r - lam * v, v)[0] <= threshold:
                return float(lam)
        return float(max(grid))

    for message, fn in [("LARGEST", largest), ("returned the correlation", correlation), ("1.0", no_fallback)]:
        ok, out = verdict(ch08.check_verbosity_penalty, fn, capsys)
        assert not ok and message in out, (message, out)
