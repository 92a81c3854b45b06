"""Each chapter-09 checker accepts correct solutions (in several equivalent forms) and rejects
typical mistakes by name."""
import numpy as np
import pytest
import torch

from rmcourse import rl
from rmcourse.checks import ch09


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


def assert_named(checker, fn, phrase, capsys):
    ok, out = verdict(checker, fn, capsys)
    assert not ok and out.startswith("❌") and phrase in out, (phrase, out)


def assert_passes(checker, fn, capsys):
    ok, out = verdict(checker, fn, capsys)
    assert ok and out.startswith("✅"), out


# --- exercise 1: kl_penalised_rewards ------------------------------------------------------------
def good_rewards(scores, logprobs, ref_logprobs, mask, beta):
    rewards = torch.where(mask, -beta * (logprobs - ref_logprobs), torch.zeros_like(logprobs))
    last = mask.sum(1) - 1
    rewards[torch.arange(len(scores)), last] += scores.to(rewards.dtype)
    return rewards


def loop_rewards(scores, logprobs, ref_logprobs, mask, beta):
    out = torch.zeros_like(logprobs)
    for i in range(logprobs.shape[0]):
        n = int(mask[i].sum())
        for t in range(n):
            out[i, t] = -beta * (logprobs[i, t] - ref_logprobs[i, t])
        out[i, n - 1] = out[i, n - 1] + scores[i]
    return out


def onehot_rewards(scores, logprobs, ref_logprobs, mask, beta):
    m = mask.to(logprobs.dtype)
    is_last = torch.nn.functional.one_hot(mask.long().sum(1) - 1, logprobs.shape[1]).to(logprobs.dtype)
    return -beta * (logprobs - ref_logprobs) * m + scores[:, None].to(logprobs.dtype) * is_last


def _with_score_at(index_fn, kl_sign=-1.0, masked=True, on_every=False):
    def fn(scores, logprobs, ref_logprobs, mask, beta):
        kl = kl_sign * beta * (logprobs - ref_logprobs)
        rewards = torch.where(mask, kl, torch.zeros_like(kl)) if masked else kl.clone()
        if on_every:
            return rewards + torch.where(mask, scores[:, None].to(kl.dtype), torch.zeros_like(kl))
        rewards[torch.arange(len(scores)), index_fn(mask)] += scores.to(kl.dtype)
        return rewards
    return fn


def test_kl_penalised_rewards(capsys):
    for fn in (good_rewards, loop_rewards, onehot_rewards, rl.kl_penalised_rewards):
        assert_passes(ch09.check_kl_penalised_rewards, fn, capsys)
    last = lambda m: m.sum(1) - 1  # noqa: E731
    wrong = {
        "on every token": _with_score_at(last, on_every=True),
        "position -1": _with_score_at(lambda m: torch.full((m.shape[0],), -1)),
        "FIRST token": _with_score_at(lambda m: torch.zeros(m.shape[0], dtype=torch.long)),
        "wrong sign": _with_score_at(last, kl_sign=1.0),
        "swapped": lambda s, lp, ref, m, b: good_rewards(s, ref, lp, m, b),
        "not 0 on the padding": _with_score_at(last, masked=False),
        "beta is missing": lambda s, lp, ref, m, b: good_rewards(s, lp, ref, m, 1.0),
        "penalty -beta * (log pi - log pi_ref) is missing": lambda s, lp, ref, m, b: good_rewards(s, lp, ref, m, 0.0),
        "score was subtracted": lambda s, lp, ref, m, b: good_rewards(-s, lp, ref, m, b),
        "score is missing": lambda s, lp, ref, m, b: good_rewards(0 * s, lp, ref, m, b),
        "one number per answer": lambda s, lp, ref, m, b: good_rewards(s, lp, ref, m, b).sum(1),
        "forget `return`": lambda s, lp, ref, m, b: None,
    }
    for phrase, fn in wrong.items():
        assert_named(ch09.check_kl_penalised_rewards, fn, phrase, capsys)

    def in_place(scores, logprobs, ref_logprobs, mask, beta):
        logprobs -= ref_logprobs
        return good_rewards(scores, logprobs + ref_logprobs, ref_logprobs, mask, beta)

    assert_named(ch09.check_kl_penalised_rewards, in_place, "in place", capsys)
    ok, out = verdict(ch09.check_kl_penalised_rewards, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- exercise 2: rloo_advantages -----------------------------------------------------------------
def good_rloo(returns):
    k = returns.shape[1]
    return returns - (returns.sum(1, keepdim=True) - returns) / (k - 1)


def scaled_rloo(returns):
    k = returns.shape[1]
    return k / (k - 1) * (returns - returns.mean(1, keepdim=True))


def loop_rloo(returns):
    out = torch.empty_like(returns)
    p, k = returns.shape
    for i in range(p):
        for j in range(k):
            others = [returns[i, o] for o in range(k) if o != j]
            out[i, j] = returns[i, j] - sum(others) / len(others)
    return out


def test_rloo_advantages(capsys):
    for fn in (good_rloo, scaled_rloo, loop_rloo, rl.rloo_advantages):
        assert_passes(ch09.check_rloo_advantages, fn, capsys)
    wrong = {
        "own baseline": lambda r: r - r.mean(1, keepdim=True),
        "there are k - 1 of them": lambda r: r - (r.sum(1, keepdim=True) - r) / r.shape[1],
        "ALL k returns": lambda r: r - r.sum(1, keepdim=True) / (r.shape[1] - 1),
        "no baseline": lambda r: r.clone(),
        "across prompts": lambda r: r - (r.sum() - r) / (r.numel() - 1),
        "mean over the whole batch": lambda r: r - r.mean(),
        "GRPO": rl.group_advantages,
        "sign is flipped": lambda r: -good_rloo(r),
        "shape": lambda r: good_rloo(r).flatten(),
    }
    for phrase, fn in wrong.items():
        assert_named(ch09.check_rloo_advantages, fn, phrase, capsys)

    def in_place(r):
        r -= r.mean(1, keepdim=True)
        return r * r.shape[1] / (r.shape[1] - 1)

    assert_named(ch09.check_rloo_advantages, in_place, "in place", capsys)
    ok, out = verdict(ch09.check_rloo_advantages, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- exercise 3: ppo_clip_loss -------------------------------------------------------------------
def good_ppo(logprobs, old_logprobs, advantages, mask, clip=0.2):
    ratio = torch.exp(logprobs - old_logprobs.detach())
    adv = advantages[:, None]
    surrogate = torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)
    return -(surrogate * mask).sum() / mask.sum()


def minmax_ppo(logprobs, old_logprobs, advantages, mask, clip=0.2):
    ratio = (logprobs - old_logprobs.detach()).exp()
    clipped = torch.max(torch.min(ratio, torch.tensor(1 + clip)), torch.tensor(1 - clip))
    adv = advantages[:, None].expand_as(ratio)
    loss = torch.maximum(-ratio * adv, -clipped * adv)  # -min(a, b) = max(-a, -b)
    return loss[mask].mean()


def where_ppo(logprobs, old_logprobs, advantages, mask, clip=0.2):
    ratio = torch.exp(logprobs - old_logprobs.detach())
    adv = advantages[:, None]
    outside = ((adv > 0) & (ratio > 1 + clip)) | ((adv < 0) & (ratio < 1 - clip))
    surrogate = torch.where(outside, torch.clamp(ratio, 1 - clip, 1 + clip).detach() * adv, ratio * adv)
    return -torch.masked_select(surrogate, mask).mean()


def _ppo(ratio_fn, combine, reduce):
    def fn(logprobs, old_logprobs, advantages, mask, clip=0.2):
        ratio = ratio_fn(logprobs, old_logprobs.detach())
        adv = advantages[:, None]
        return reduce(combine(ratio, adv, clip), mask)
    return fn


token_mean = lambda x, m: -(x * m).sum() / m.sum()  # noqa: E731
pessimistic = lambda r, a, c: torch.min(r * a, r.clamp(1 - c, 1 + c) * a)  # noqa: E731
exp_ratio = lambda lp, old: torch.exp(lp - old)  # noqa: E731


def test_ppo_clip_loss(capsys):
    for fn in (good_ppo, minmax_ppo, where_ppo, rl.ppo_clip_loss):
        assert_passes(ch09.check_ppo_clip_loss, fn, capsys)
    wrong = {
        "MIN": _ppo(exp_ratio, lambda r, a, c: torch.max(r * a, r.clamp(1 - c, 1 + c) * a), token_mean),
        "sign is wrong": _ppo(exp_ratio, pessimistic, lambda x, m: (x * m).sum() / m.sum()),
        "inverted": _ppo(lambda lp, old: torch.exp(old - lp), pessimistic, token_mean),
        "not exponentiated": _ppo(lambda lp, old: lp - old, pessimistic, token_mean),
        "divided the log-probabilities": _ppo(lambda lp, old: lp / old, pessimistic, token_mean),
        "clipped the advantage": _ppo(exp_ratio, lambda r, a, c: torch.min(r * a, r * a.clamp(1 - c, 1 + c)), token_mean),
        "clipped the product": _ppo(exp_ratio, lambda r, a, c: torch.min(r * a, (r * a).clamp(1 - c, 1 + c)), token_mean),
        "no clipping": _ppo(exp_ratio, lambda r, a, c: r * a, token_mean),
        "only kept the clipped term": _ppo(exp_ratio, lambda r, a, c: r.clamp(1 - c, 1 + c) * a, token_mean),
        "over padding": _ppo(exp_ratio, pessimistic, lambda x, m: -x.mean()),
        "divided by every position": _ppo(exp_ratio, pessimistic, lambda x, m: -(x * m).sum() / m.numel()),
        "summed over tokens": _ppo(exp_ratio, pessimistic, lambda x, m: -(x * m).sum()),
        "GRPO's original form": _ppo(exp_ratio, pessimistic, lambda x, m: -((x * m).sum(1) / m.sum(1)).mean()),
        "connected": lambda *a, **k: good_ppo(*a, **k).detach(),
        "expected a torch.Tensor": lambda *a, **k: float(good_ppo(*a, **k).detach()),
        "one number": _ppo(exp_ratio, pessimistic, lambda x, m: -(x * m)),
    }
    for phrase, fn in wrong.items():
        assert_named(ch09.check_ppo_clip_loss, fn, phrase, capsys)

    def no_detach(logprobs, old_logprobs, advantages, mask, clip=0.2):
        ratio = torch.exp(logprobs - old_logprobs)
        adv = advantages[:, None]
        return -(torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv) * mask).sum() / mask.sum()

    assert_named(ch09.check_ppo_clip_loss, no_detach, "detach them", capsys)

    def ignores_clip(logprobs, old_logprobs, advantages, mask, clip=0.2):
        return good_ppo(logprobs, old_logprobs, advantages, mask, 0.2)

    assert_named(ch09.check_ppo_clip_loss, ignores_clip, "clip = 0.1", capsys)

    def value_only(logprobs, old_logprobs, advantages, mask, clip=0.2):  # right number, no gradient to clip
        ratio = torch.exp(logprobs - old_logprobs.detach())
        adv = advantages[:, None]
        clipped = ratio + (ratio.clamp(1 - clip, 1 + clip) - ratio).detach()  # passes gradient where clipped
        return -(torch.min(ratio * adv, clipped * adv) * mask).sum() / mask.sum()

    assert_named(ch09.check_ppo_clip_loss, value_only, "gradient", capsys)
    ok, out = verdict(ch09.check_ppo_clip_loss, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- exercise 4: kl_estimators -------------------------------------------------------------------
def good_kl(logprobs, ref_logprobs, mask):
    log_r = torch.where(mask, ref_logprobs - logprobs, torch.zeros_like(logprobs))
    return {"k1": -log_r.sum(1), "k3": (log_r.exp() - 1 - log_r).sum(1)}


def summed_first_kl(logprobs, ref_logprobs, mask):  # k1 as log pi(y) - log pi_ref(y), k3 with expm1
    m = mask.to(logprobs.dtype)
    k1 = (logprobs * m).sum(1) - (ref_logprobs * m).sum(1)
    log_r = (ref_logprobs - logprobs) * m
    return (k1, (torch.expm1(log_r) - log_r).sum(1))


def loop_kl(logprobs, ref_logprobs, mask):
    k1, k3 = torch.zeros(len(mask)), torch.zeros(len(mask))
    for i in range(len(mask)):
        for t in range(mask.shape[1]):
            if mask[i, t]:
                x = float(ref_logprobs[i, t] - logprobs[i, t])
                k1[i] += -x
                k3[i] += np.exp(x) - 1 - x
    return {"k1": k1, "k3": k3}


def _kl_with(k3_token, k1_sign=1.0, mask_k1=True, mean=False):
    def fn(logprobs, ref_logprobs, mask):
        m = mask.to(logprobs.dtype)
        x = ref_logprobs - logprobs
        k1 = (-k1_sign * x * (m if mask_k1 else 1)).sum(1)
        k3 = k3_token(x, m)
        return {"k1": k1, "k3": (k3 * m).sum(1) / (m.sum(1) if mean else 1) if k3.ndim == 2 else k3}
    return fn


k3_right = lambda x, m: torch.exp(x) - 1 - x  # noqa: E731


def test_kl_estimators(capsys):
    for fn in (good_kl, summed_first_kl, loop_kl, rl.kl_estimators):
        assert_passes(ch09.check_kl_estimators, fn, capsys)
    wrong = {
        "k1 has the wrong sign": _kl_with(k3_right, k1_sign=-1.0),
        "k1 sums over the padding": _kl_with(k3_right, mask_k1=False),
        "ratio inverted": _kl_with(lambda x, m: torch.exp(-x) - 1 + x),
        "misses the -1": _kl_with(lambda x, m: torch.exp(x) - x),
        "log term of k3 has the wrong sign": _kl_with(lambda x, m: torch.exp(x) - 1 + x),
        "k3 sums over the padding": _kl_with(lambda x, m: (torch.exp(x) - 1 - x).sum(1)),
        "k2": _kl_with(lambda x, m: 0.5 * x ** 2),
        "per-token MEAN": _kl_with(k3_right, mean=True),
        "whole answer's ratio": _kl_with(lambda x, m: torch.expm1((x * m).sum(1)) - (x * m).sum(1)),
        "without ['k3']": lambda lp, ref, m: {"k1": good_kl(lp, ref, m)["k1"]},
    }
    for phrase, fn in wrong.items():
        assert_named(ch09.check_kl_estimators, fn, phrase, capsys)

    def k1_mean(lp, ref, m):
        out = good_kl(lp, ref, m)
        out["k1"] = out["k1"] / m.sum(1)
        return out

    assert_named(ch09.check_kl_estimators, k1_mean, "per-token MEAN", capsys)
    ok, out = verdict(ch09.check_kl_estimators, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- exercise 5: hacking_signal ------------------------------------------------------------------
def good_signal(optimised, held_out):
    def rise(s):
        return (s.mean(axis=1) - s[0].mean()) / s[0].std()
    return rise(optimised) - rise(held_out)


def sample_std_signal(optimised, held_out):
    out = []
    for c in range(len(optimised)):
        z_opt = (np.mean(optimised[c]) - np.mean(optimised[0])) / np.std(optimised[0], ddof=1)
        z_held = (np.mean(held_out[c]) - np.mean(held_out[0])) / np.std(held_out[0], ddof=1)
        out.append(z_opt - z_held)
    return out


def torch_signal(optimised, held_out):
    o, h = torch.as_tensor(optimised), torch.as_tensor(held_out)
    z = lambda s: (s.mean(1) - s[0].mean()) / s[0].std(unbiased=False)  # noqa: E731
    return z(o) - z(h)


def standardise_then_mean(optimised, held_out):  # z-score every answer first, then average
    o = (optimised - optimised[0].mean()) / optimised[0].std()
    h = (held_out - held_out[0].mean()) / held_out[0].std()
    return (o - h).mean(axis=1)


def test_hacking_signal(capsys):
    for fn in (good_signal, sample_std_signal, torch_signal, standardise_then_mean):
        assert_passes(ch09.check_hacking_signal, fn, capsys)
    wrong = {
        "sign is flipped": lambda o, h: good_signal(h, o),
        "raw scores": lambda o, h: o.mean(1) - h.mean(1),
        "did not divide": lambda o, h: (o.mean(1) - o[0].mean()) - (h.mean(1) - h[0].mean()),
        "must be 0 at checkpoint 0": lambda o, h: o.mean(1) / o[0].std() - h.mean(1) / h[0].std(),
        "ratio of mean scores": lambda o, h: o.mean(1) / o[0].mean() - h.mean(1) / h[0].mean(),
        "each checkpoint's own spread": lambda o, h: (o.mean(1) - o[0].mean()) / o.std(1)
        - (h.mean(1) - h[0].mean()) / h.std(1),
        "pooled": lambda o, h: (o.mean(1) - o[0].mean()) / o.std() - (h.mean(1) - h[0].mean()) / h.std(),
        "ITS OWN std": lambda o, h: (o.mean(1) - o[0].mean()) / o[0].std() - (h.mean(1) - h[0].mean()) / o[0].std(),
        "one value per checkpoint": lambda o, h: good_signal(o, h)[:, None] * np.ones(3),
        "it must be 0 there": lambda o, h: good_signal(o, h) + 0.5,
    }
    for phrase, fn in wrong.items():
        assert_named(ch09.check_hacking_signal, fn, phrase, capsys)

    def in_place(o, h):
        o -= o[0].mean()
        return good_signal(o, h)

    assert_named(ch09.check_hacking_signal, in_place, "in place", capsys)
    ok, out = verdict(ch09.check_hacking_signal, todo, capsys)
    assert not ok and out.startswith("⏳")


def test_reference_signal_is_zero_for_affine_copies():
    rng = np.random.default_rng(0)
    opt = rng.normal(size=(5, 30)) + np.arange(5)[:, None]
    assert np.allclose(ch09.hacking_signal(opt, 3 * opt + 7), 0)
    with pytest.raises(ValueError):
        ch09.hacking_signal(opt, opt[:, :10])


def test_needs_exercise_turns_not_implemented_into_a_hint(capsys):
    with ch09.needs_exercise(3):
        todo()
    assert "solve exercise 3 first" in capsys.readouterr().out
    with pytest.raises(ZeroDivisionError):
        with ch09.needs_exercise(3):
            1 / 0
