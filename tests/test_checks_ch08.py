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

    def mean_loss(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return cr, rw, (-F.logsigmoid(cr - rw)).mean()

    def beta_twice(c, r, rc, rr, beta):
        cr, rw = beta * beta * (c - rc), beta * beta * (r - rr)
        return cr, rw, -F.logsigmoid(cr - rw)

    def beta_again_in_loss(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return cr, rw, -F.logsigmoid(beta * (cr - rw))

    for message, fn in [("forgets the reference", no_ref), ("sign is flipped", flipped), ("by beta", no_beta),
                        ("wrong way", wrong_way), ("without beta", loss_without_beta),
                        ("one loss per pair", averaged), ("return (chosen_rewards", two_things),
                        ("no .mean()", mean_loss), ("applied twice", beta_twice), ("beta again", beta_again_in_loss)]:
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

    def with_r(r, v, grid, threshold=0.03):
        for lam in sorted(grid):
            if spearmanr(r - lam * v, r)[0] <= threshold:
                return float(lam)
        return 1.0

    def plus(r, v, grid, threshold=0.03):
        for lam in sorted(grid):
            if spearmanr(r + lam * v, v)[0] <= threshold:
                return float(lam)
        return 1.0

    for message, fn in [("LARGEST", largest), ("returned the correlation", correlation), ("1.0", no_fallback),
                        ("not with r", with_r), ("SUBTRACT", plus)]:
        ok, out = verdict(ch08.check_verbosity_penalty, fn, capsys)
        assert not ok and message in out, (message, out)


def test_equivalent_correct_forms_pass(capsys):
    """Other correct ways to write the answers: float64, a list, softplus, log-space, min over a list."""
    def dpo_numpy_losses(c, r, rc, rr, beta):  # the loss via log1p(exp(-margin)), in float64
        cr, rw = beta * (c.double() - rc.double()), beta * (r.double() - rr.double())
        return cr, rw, torch.log1p(torch.exp(-(cr - rw)))

    def dpo_list(c, r, rc, rr, beta):
        cr, rw = beta * (c - rc), beta * (r - rr)
        return [cr, rw, F.softplus(rw - cr)]

    def pen_numpy(r, v, grid, threshold=0.03):
        ok = [lam for lam in grid if spearmanr(r - lam * v, v)[0] <= threshold]
        return min(ok) if ok else 1.0

    def prm_logspace(p, how):
        return float(np.exp(np.sum(np.log(p)))) if how == "prod" else min(p)

    for checker, fn in [(ch08.check_dpo_implicit_rewards, dpo_numpy_losses), (ch08.check_dpo_implicit_rewards, dpo_list),
                        (ch08.check_verbosity_penalty, pen_numpy), (ch08.check_prm_solution_score, prm_logspace)]:
        ok, out = verdict(checker, fn, capsys)
        assert ok, (fn.__name__, out)


# --- odin_extra_loss ---------------------------------------------------------------------------
def _rho(x, y):
    xc, yc = x - x.mean(), y - y.mean()
    return (xc * yc).sum() / (xc.norm() * yc.norm() + 1e-8)


def good_odin(rq, rl, L, wq, wl, a, b):
    return a * (_rho(rq, L).abs() - _rho(rl, L)) + b * (wq * wl).sum().abs()


def test_odin_extra_loss(capsys):
    ok, out = verdict(ch08.check_odin_extra_loss, good_odin, capsys)
    assert ok and out.startswith("✅")

    def corrcoef_form(rq, rl, L, wq, wl, a, b):  # torch.corrcoef and torch.dot: the same numbers
        rho_q = torch.corrcoef(torch.stack([rq, L]))[0, 1]
        rho_l = torch.corrcoef(torch.stack([rl, L]))[0, 1]
        return length_coef_form(rho_q, rho_l, torch.dot(wq, wl), a, b)

    def length_coef_form(rho_q, rho_l, dot, a, b):
        return a * torch.abs(rho_q) - a * rho_l + b * torch.abs(dot)

    def std_form(rq, rl, L, wq, wl, a, b):  # unbiased std on both sides: the n-1 cancels
        def rho(x, y):
            return ((x - x.mean()) * (y - y.mean())).sum() / ((len(x) - 1) * x.std() * y.std())
        return a * (rho(rq, L).abs() - rho(rl, L)) + b * (wq @ wl).abs()

    for fn in (corrcoef_form, std_form):
        ok, out = verdict(ch08.check_odin_extra_loss, fn, capsys)
        assert ok, (fn.__name__, out)

    wrong = {
        "wrong sign": lambda rq, rl, L, wq, wl, a, b: a * (_rho(rq, L).abs() + _rho(rl, L)) + b * (wq * wl).sum().abs(),
        "NEGATIVE correlation": lambda rq, rl, L, wq, wl, a, b: a * (_rho(rq, L) - _rho(rl, L)) + b * (wq * wl).sum().abs(),
        "orthogonality term needs an absolute": lambda rq, rl, L, wq, wl, a, b: a * (_rho(rq, L).abs() - _rho(rl, L)) + b * (wq * wl).sum(),
        "not the covariance": lambda rq, rl, L, wq, wl, a, b: a * (((rq - rq.mean()) * (L - L.mean())).mean().abs()
                                                                  - ((rl - rl.mean()) * (L - L.mean())).mean()) + b * (wq * wl).sum().abs(),
        "RLHFlow's variant": lambda rq, rl, L, wq, wl, a, b: a * (_rho(rq, L).abs() - _rho(rl, L))
                                                          + b * ((wq * wl).sum() / (wq.norm() * wl.norm())).abs(),
        "swapped": lambda rq, rl, L, wq, wl, a, b: b * (_rho(rq, L).abs() - _rho(rl, L)) + a * (wq * wl).sum().abs(),
        "its own term": lambda rq, rl, L, wq, wl, a, b: _rho(rq, L).abs() - _rho(rl, L) + (wq * wl).sum().abs(),
        "expected": lambda rq, rl, L, wq, wl, a, b: torch.tensor(0.0),
        "float": lambda rq, rl, L, wq, wl, a, b: float(good_odin(rq, rl, L, wq, wl, a, b)),
        "shape": lambda rq, rl, L, wq, wl, a, b: good_odin(rq, rl, L, wq, wl, a, b).reshape(1),
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch08.check_odin_extra_loss, fn, capsys)
        assert not ok and message in out, (message, out)
    ok, out = verdict(ch08.check_odin_extra_loss, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- math_shepherd_step_labels ---------------------------------------------------------------
def good_shepherd(completion_answers, gold, soft=False):
    labels = []
    for answers in completion_answers:
        if not answers:
            raise ValueError("a step with no completions has no estimate")
        hits = sum(a == gold for a in answers)
        labels.append(hits / len(answers) if soft else float(hits > 0))
    return labels


def test_math_shepherd_labels(capsys):
    ok, out = verdict(ch08.check_math_shepherd_labels, good_shepherd, capsys)
    assert ok and out.startswith("✅")

    def numpy_form(completion_answers, gold, soft=False):  # one 2-D array, bools for hard labels
        a = np.asarray(completion_answers)
        if a.ndim != 2 or a.shape[1] == 0:
            raise ValueError("every step needs at least one completion")
        hit = a == gold
        return hit.mean(axis=1) if soft else hit.any(axis=1)

    def comprehension_bools(completion_answers, gold, soft=False):  # a list of True/False for hard
        if any(len(a) == 0 for a in completion_answers):
            raise ValueError("no completions")
        if soft:
            return [a.count(gold) / len(a) for a in completion_answers]
        return [gold in a for a in completion_answers]

    def torch_form(completion_answers, gold, soft=False):  # a tensor; statistics raises ValueError
        import statistics
        shares = [statistics.mean(float(x == gold) for x in a) for a in completion_answers]
        t = torch.tensor(shares)
        return t if soft else (t > 0).float()

    for fn in (numpy_form, comprehension_bools, torch_form):
        ok, out = verdict(ch08.check_math_shepherd_labels, fn, capsys)
        assert ok, (fn.__name__, out)

    def share(a, gold):
        return sum(x == gold for x in a) / len(a) if a else 0.0

    def cumulated(c, g, soft=False):
        out, ok_so_far = [], 1.0
        for a in c:
            label = share(a, g) if soft else float(share(a, g) > 0)
            ok_so_far = min(ok_so_far, label)
            out.append(ok_so_far)
        return out

    def cumulated_product(c, g, soft=False):
        return list(np.cumprod(good_shepherd(c, g, soft))) if soft else good_shepherd(c, g, soft)

    def zero_division(c, g, soft=False):
        return [sum(x == g for x in a) / len(a) if soft else float(g in a) for a in c] if soft else \
            [float(sum(x == g for x in a) / len(a) > 0) for a in c]

    wrong = {
        "swapped": lambda c, g, soft=False: [float(share(a, g) > 0) if soft else share(a, g) for a in c],
        "soft=False returned the share": lambda c, g, soft=False: [share(a, g) for a in c],
        "ALL completions": lambda c, g, soft=False: [share(a, g) if soft else float(share(a, g) == 1) for a in c],
        "majority vote": lambda c, g, soft=False: [share(a, g) if soft else float(share(a, g) >= 0.5) for a in c],
        "not with another completion": lambda c, g, soft=False: [share(a, a[0]) if soft else float(a[0] in a) for a in c],
        "wrong target": lambda c, g, soft=False: [share(a, a[0]) if soft else float(share(a, g) > 0) for a in c],
        "exact labelling": cumulated,
        "running minimum or product": cumulated_product,
        "NUMBER of completions": lambda c, g, soft=False: [sum(x == g for x in a) if soft else float(g in a) for a in c],
        "raise ValueError": lambda c, g, soft=False: [share(a, g) if soft else float(g in a) for a in c],
        "you raised ZeroDivisionError": zero_division,
        "hard-coded": lambda c, g, soft=False: [sum(x == g for x in a) / 4 if soft else float(g in a) for a in c],
        "treated as 'no answer'": lambda c, g, soft=False: [share([x for x in a if x], g) if soft else
                                                            float(any(x for x in a if x == g)) for a in c],
        "one label per step": lambda c, g, soft=False: float(all(g in a for a in c)),
        "None": lambda c, g, soft=False: None,
        "shape": lambda c, g, soft=False: [good_shepherd(c, g, soft)],
    }
    for message, fn in wrong.items():
        ok, out = verdict(ch08.check_math_shepherd_labels, fn, capsys)
        assert not ok and message in out, (message, out)
    ok, out = verdict(ch08.check_math_shepherd_labels, todo, capsys)
    assert not ok and out.startswith("⏳")
