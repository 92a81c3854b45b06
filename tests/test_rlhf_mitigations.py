"""rmcourse.rlhf_mitigations: intervals over seeds, the frontier test, simulated annotators,
recombined ensembles and iterated RLHF (chapter 09b)."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rmcourse.policy import DETAIL, END, FILLER, RIGHT, AnswerPolicy, exact_stats, prompt_features, render
from rmcourse.proxies import ensemble_proxy, head_proxy
from rmcourse.rl import ProxyReward, train_rl
from rmcourse.rlhf_mitigations import (budget_prices, frontier_gap, gold_at_kl, iterated_rlhf, on_policy_pairs,
                                       pair_dataset, paired_seed_interval, recombine_ensemble, reusing_head_proxy,
                                       run_summary, seed_interval, vote_labels)
from rmcourse.world import PreferenceWorld


@pytest.fixture(scope="module")
def world():
    return PreferenceWorld(seed=0)


@pytest.fixture(scope="module")
def small(world, one_thread):
    prompts = world.prompts("pool", 24)
    train = world.pairs("train", 300)
    return prompts, train


def _history(kl, gold, **extra):
    return pd.DataFrame({"step": np.arange(len(kl)) * 2, "kl": kl, "gold": gold, **extra})


# ---------------------------------------------------------------- intervals
def test_seed_interval_is_the_student_t_interval():
    ci = seed_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t_{0.975, 2} * sd / sqrt(n)
    assert ci.estimate == pytest.approx(2.0)
    assert (ci.low, ci.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert seed_interval([1.0, 2.0, 3.0], level=0.9).high < ci.high
    assert seed_interval([5.0, 5.0]).low == seed_interval([5.0, 5.0]).high == 5.0


def test_paired_interval_cancels_what_the_seeds_share():
    a = np.array([1.0, 5.0, 9.0])  # seeds differ a lot ...
    b = a - np.array([0.9, 1.0, 1.1])  # ... but the method adds 1.0 on every seed
    ci = paired_seed_interval(a, b)
    assert ci.estimate == pytest.approx(1.0) and ci.excludes_zero()
    unpaired = seed_interval(a).low - seed_interval(b).high
    assert unpaired < 0, "separate intervals would overlap: pairing is what decides"
    with pytest.raises(ValueError, match="one value per seed"):
        paired_seed_interval([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="at least 2"):
        seed_interval([1.0])
    with pytest.raises(ValueError, match="non-finite"):
        seed_interval([1.0, float("nan")])


# ---------------------------------------------------------------- reading runs
def test_run_summary_reads_peak_and_end():
    h = _history([0.0, 1.0, 4.0, 6.0, 7.0], [3.0, 4.0, 3.5, 2.0, 3.0], filler=[2, 3, 4, 5, 5], detail=[1, 1, 1, 0, 0])
    s = run_summary(h, n_end=2)
    assert (s["peak_gold"], s["peak_kl"], s["peak_d"], s["peak_step"]) == (4.0, 1.0, 1.0, 2.0)
    assert s["end_gold"] == pytest.approx(2.5) and s["end_kl"] == pytest.approx(6.5)
    assert s["end_filler"] == 5.0 and s["end_detail"] == 0.0
    with pytest.raises(ValueError, match="n_end"):
        run_summary(h, n_end=6)
    with pytest.raises(TypeError):
        run_summary(pd.DataFrame({"x": [1, 2]}))


def test_gold_at_kl_interpolates_in_d_at_the_first_crossing():
    # d = 0, 1, 2, 1 (the run comes back), 3
    h = _history([0.0, 1.0, 4.0, 1.0, 9.0], [3.0, 4.0, 2.0, 5.0, 1.0])
    assert gold_at_kl(h, 0.0) == 3.0
    assert gold_at_kl(h, 1.0) == 4.0
    assert gold_at_kl(h, 2.25) == pytest.approx(3.0)  # d = 1.5: halfway between 4.0 and 2.0
    assert gold_at_kl(h, 0.25) == pytest.approx(3.5)  # d = 0.5, linear in d, not in KL
    assert gold_at_kl(h, 6.25) == pytest.approx(2.0)  # d = 2.5 is first passed between evals 3 (d = 1) and 4 (d = 3)
    assert math.isnan(gold_at_kl(h, 10.0))


def test_frontier_gap_is_zero_on_the_reference_curve_and_positive_above_it():
    ref = _history([0.0, 1.0, 4.0, 9.0], [3.0, 4.0, 3.0, 2.0])
    on_curve = _history([0.0, 0.25, 1.0, 1.0], [3.0, 3.5, 4.0, 4.0])
    assert frontier_gap(on_curve, ref, n_end=2) == pytest.approx(0.0)
    above = _history([0.0, 1.0, 4.0, 4.0], [3.0, 4.0, 3.5, 3.7])
    assert frontier_gap(above, ref, n_end=2) == pytest.approx(0.6)
    beyond = _history([0.0, 16.0], [3.0, 2.0])
    assert math.isnan(frontier_gap(beyond, ref, n_end=1))


# ---------------------------------------------------------------- annotators
def test_vote_labels_follow_bradley_terry_on_gold():
    rng = np.random.default_rng(0)
    n = 20000
    wins, temps = vote_labels(np.full(n, 1.0), np.zeros(n), [0.5, 2.0], rng)
    assert set(np.unique(temps)) == {0.5, 2.0}
    for t in (0.5, 2.0):
        want = 1 / (1 + math.exp(-1.0 / t))
        assert wins[temps == t].mean() == pytest.approx(want, abs=0.02)
    sure, _ = vote_labels(np.full(500, 10.0), np.zeros(500), [0.01], rng)
    assert sure.all()
    with pytest.raises(ValueError, match="temperatures"):
        vote_labels([1.0], [0.0], [0.0], rng)


def test_on_policy_pairs_label_by_gold_with_the_worlds_annotators(world, small):
    prompts, _ = small
    policy = AnswerPolicy(seed=1)
    ref = AnswerPolicy(seed=2)
    pairs = on_policy_pairs(policy, ref, prompts, world, k=3, seed=0)
    assert {"prompt", "chosen", "rejected", "chosen_gold", "rejected_gold", "policy_chosen"} <= set(pairs.column_names)
    assert 0 < len(pairs) <= 3 * len(prompts)
    assert all(c != r for c, r in zip(pairs["chosen_gold"], pairs["rejected_gold"])), "gold ties are left out"
    assert np.array_equal(pairs["label_correct"], np.array(pairs["chosen_gold"]) > np.array(pairs["rejected_gold"]))
    assert 0.5 < np.mean(pairs["label_correct"]) < 1.0, "annotators mostly, not always, agree with gold"
    for p, i in zip(pairs["prompt"], pairs["prompt_index"]):
        assert p == prompts[i]["text"]
    again = on_policy_pairs(policy, ref, prompts, world, k=3, seed=0)
    assert again["chosen"] == pairs["chosen"], "seeded: the same pairs and votes"


def test_pair_dataset_concatenates_in_order(small):
    _, train = small
    both = pair_dataset(train.select(range(3)), train.select(range(3, 5)))
    assert both.column_names == ["prompt", "chosen", "rejected"]
    assert both["chosen"] == list(train["chosen"][:5])
    with pytest.raises(TypeError):
        pair_dataset({"prompt": []})


# ---------------------------------------------------------------- proxies and RL
def test_budget_prices_spend_the_full_body_on_detail_or_filler(small):
    prompts, train = small
    words = ProxyReward(lambda p, a: np.array([len(t.split()) for t in a], dtype=float), "words")
    table = budget_prices(words, prompts[:5])
    assert table.index.tolist() == [0, 1, 2, 3]
    assert table["filler"].tolist() == [5, 4, 3, 2]
    assert table["gold"].tolist() == [2.5, 3.5, 4.5, 5.5], "gold: +2.5 right claim, +1 per detail, 0 per filler"
    seq = [RIGHT, DETAIL, FILLER, FILLER, FILLER, FILLER, END]
    assert table.loc[1, "proxy"] == pytest.approx(np.mean([len(render(p, seq).split()) for p in prompts[:5]]))
    assert "member_var" not in table
    ens = budget_prices(ensemble_proxy(train, n_members=3, seed=0), prompts[:5])
    assert (ens["member_var"] >= 0).all() and ens["member_var"].max() > 0


def test_recombine_ensemble_equals_training_the_same_ensemble_with_that_rule(small):
    _, train = small
    mean = ensemble_proxy(train, n_members=3, method="mean", seed=0)
    worst = ensemble_proxy(train, n_members=3, method="worst", seed=0)
    again = recombine_ensemble(mean, "worst")
    prompts, answers = list(train["prompt"][:20]), list(train["chosen"][:20])
    assert np.allclose(again(prompts, answers), worst(prompts, answers))
    assert (again(prompts, answers) <= mean(prompts, answers) + 1e-6).all()
    with pytest.raises(TypeError):
        recombine_ensemble(head_proxy(train), "worst")
    with pytest.raises(ValueError):
        recombine_ensemble(mean, "median")


def test_reusing_head_proxy_is_head_proxy_without_rehashing_the_base(world, small):
    prompts, train = small
    base, new = train.select(range(200)), train.select(range(200, 260))
    both = pair_dataset(base, new)
    make = reusing_head_proxy(base)
    texts = list(train["prompt"][:30]), list(train["rejected"][:30])
    assert np.allclose(make(both)(*texts), head_proxy(both)(*texts), atol=1e-6)
    assert np.allclose(make(base)(*texts), head_proxy(base)(*texts), atol=1e-6)
    with pytest.raises(ValueError, match="start with"):
        make(pair_dataset(new, base))


def test_iterated_rlhf_round_one_is_the_plain_run_and_later_rounds_retrain(world, small):
    prompts, train = small
    ref = AnswerPolicy(seed=0).eval()
    proxy = head_proxy(train)
    kw = dict(beta=0.05, eval_prompts=prompts[:8], eval_every=2, k_eval=1, prompts_per_step=8)
    plain = train_rl(ref, prompts, proxy, steps=4, seed=3, **kw).history
    run = iterated_rlhf(ref, prompts, train, world, make_proxy=head_proxy, first_proxy=proxy, rounds=2,
                        steps_per_round=2, seed=3, **kw)
    h = run.history
    assert h["step"].tolist() == [0, 2, 4] and h["round"].tolist() == [1, 1, 2]
    assert np.allclose(h[["kl", "gold"]].iloc[:2].to_numpy(), plain[["kl", "gold"]].iloc[:2].to_numpy())
    assert len(run.proxies) == 2 and run.proxies[0] is proxy and run.proxies[1] is not proxy
    assert len(run.new_pairs) == 1 and len(run.new_pairs[0]) > 0
    # the KL is to the reference, not to the policy round 2 started from
    stats = exact_stats(run.policy, prompt_features(prompts[:8]), ref)
    assert float(stats["kl"].mean()) == pytest.approx(h["kl"].iloc[-1], rel=1e-5)
    with pytest.raises(ValueError, match="steps_per_round"):
        iterated_rlhf(ref, prompts, train, world, make_proxy=head_proxy, steps=3)
