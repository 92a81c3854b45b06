"""Chapter 06's helpers: the K-wise loss, the exact KL of best-of-n, undetached uncertainty weights,
jointly trained ensembles and the optimizer-step count of the heads."""
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from rmcourse.ensembles import uncertainty_weighted_pair_loss, uncertainty_weights
from rmcourse.heads import PairFeatures, train_ensemble_heads, train_head, train_kwise_head
from rmcourse.losses import kwise_loss, pairwise_loss
from rmcourse.overoptimization import best_of_n_probabilities, kl_best_of_n, kl_best_of_n_exact

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- kwise_loss
def test_kwise_loss_is_the_per_prompt_mean_of_all_pairs():
    r = [torch.tensor([0.3, 1.2, -0.4]), torch.tensor([2.0, -1.0])]
    s = [torch.tensor([1.0, 3.0, 2.0]), torch.tensor([0.0, 1.0])]
    first = torch.stack([-F.logsigmoid(r[0][1] - r[0][0]), -F.logsigmoid(r[0][1] - r[0][2]),
                         -F.logsigmoid(r[0][2] - r[0][0])]).mean()
    second = -F.logsigmoid(r[1][1] - r[1][0])
    assert torch.allclose(kwise_loss(r, s), (first + second) / 2, atol=1e-6)
    # K = 2 is the pairwise loss
    assert torch.allclose(kwise_loss([r[1]], [s[1]]), pairwise_loss(r[1][1:], r[1][:1]), atol=1e-6)


def test_kwise_loss_each_prompt_counts_once():
    big = torch.linspace(2, -2, 9)
    small = torch.tensor([-1.0, 1.0])
    batch = kwise_loss([big, small], [torch.arange(9, 0, -1).float(), torch.tensor([1.0, 0.0])])
    alone = [kwise_loss([big], [torch.arange(9, 0, -1).float()]), kwise_loss([small], [torch.tensor([1.0, 0.0])])]
    assert torch.allclose(batch, (alone[0] + alone[1]) / 2)


def test_kwise_loss_skips_ties_and_keeps_the_gradient():
    r = torch.tensor([0.1, 0.5, -0.2], requires_grad=True)
    loss = kwise_loss([r], [[1.0, 1.0, 0.0]])  # the tied pair (0, 1) makes no comparison
    want = (-F.logsigmoid(r[0] - r[2]) - F.logsigmoid(r[1] - r[2])) / 2
    assert torch.allclose(loss, want)
    loss.backward()
    assert r.grad[2] > 0 and r.grad[0] < 0  # descent raises the winners, lowers the loser


def test_kwise_loss_bad_inputs():
    with pytest.raises(TypeError, match="list of 1-D tensors"):
        kwise_loss(torch.zeros(3), [[1, 2, 3]])
    with pytest.raises(ValueError, match="2 reward tensors but 1 score"):
        kwise_loss([torch.zeros(2), torch.zeros(2)], [[1, 2]])
    with pytest.raises(ValueError, match="3 rewards but 2 scores"):
        kwise_loss([torch.zeros(3)], [[1, 2]])
    with pytest.raises(ValueError, match="nothing to compare"):
        kwise_loss([torch.zeros(2)], [[1.0, 1.0]])
    with pytest.raises(TypeError, match="floating-point"):
        kwise_loss([torch.zeros(2, dtype=torch.long)], [[1.0, 0.0]])


# ---------------------------------------------------------------- exact KL of best-of-n
def test_best_of_n_probabilities_match_simulation():
    p = np.array([0.1, 0.4, 0.2, 0.3])
    q = best_of_n_probabilities(p, 3)
    assert q.sum() == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    draws = rng.choice(4, size=(200_000, 3), p=p).max(axis=1)  # index order = reward order
    assert np.allclose(np.bincount(draws, minlength=4) / len(draws), q, atol=0.005)


def test_exact_kl_is_bounded_by_the_analytic_expression():
    rng = np.random.default_rng(1)
    for _ in range(20):
        p = rng.dirichlet(np.ones(rng.integers(2, 50)))
        for n in (1, 2, 7, 64):
            assert kl_best_of_n_exact(p, n) <= kl_best_of_n(n) + 1e-12
    many = np.full(100_000, 1e-5)
    assert kl_best_of_n_exact(many, 32) == pytest.approx(kl_best_of_n(32), abs=1e-3)
    heavy = np.r_[np.full(10, 0.05), 0.5]
    assert kl_best_of_n_exact(heavy, 1024) <= math.log(2) + 1e-12
    assert kl_best_of_n_exact(np.array([0.5, 0.0, 0.5]), 4) == pytest.approx(kl_best_of_n_exact(np.array([0.5, 0.5]), 4))
    assert kl_best_of_n_exact(np.array([0.3, 0.7]), 1) == 0.0


def test_exact_kl_bad_inputs():
    with pytest.raises(ValueError, match="sum to 1"):
        kl_best_of_n_exact([0.2, 0.2], 2)
    with pytest.raises(ValueError, match=">= 0"):
        kl_best_of_n_exact([1.5, -0.5], 2)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        kl_best_of_n_exact([], 2)
    with pytest.raises(ValueError, match=">= 1"):
        kl_best_of_n_exact([0.5, 0.5], 0)


# ---------------------------------------------------------------- undetached weights
def test_undetached_weights_reward_disagreement():
    g = torch.Generator().manual_seed(0)
    c = torch.randn(5, 16, generator=g).requires_grad_(True)
    r = torch.randn(5, 16, generator=g).requires_grad_(True)
    assert not uncertainty_weights(c, r).requires_grad and uncertainty_weights(c, r, detach=False).requires_grad
    # scale every member's deviation from the mean by (1 + s): d loss / d s < 0 only when not detached
    s = torch.zeros((), requires_grad=True)
    spread = lambda x: x.mean(0) + (1 + s) * (x - x.mean(0))
    for detach, sign in ((False, -1), (True, 0)):
        loss = uncertainty_weighted_pair_loss(spread(c.detach()), spread(r.detach()), detach_weights=detach)
        (grad,) = torch.autograd.grad(loss, s)
        assert (grad < 0) if sign < 0 else abs(float(grad)) < 1e-6
    with pytest.raises(TypeError, match="True or False"):
        uncertainty_weights(c, r, detach="no")


def _toy_pairs(n, seed):
    g = torch.Generator().manual_seed(seed)
    x_c, x_r = torch.randn(n, 8, generator=g), torch.randn(n, 8, generator=g)
    w = torch.linspace(1, -1, 8)
    better = (x_c @ w) > (x_r @ w)
    return PairFeatures(torch.where(better[:, None], x_c, x_r), torch.where(better[:, None], x_r, x_c))


def test_jointly_trained_members_disagree_only_when_weights_are_not_detached():
    train, test = _toy_pairs(400, 0), _toy_pairs(200, 1)
    variance = {}
    for detach in (True, False):
        heads = train_ensemble_heads(train, 4, detach_weights=detach, hidden=16, epochs=2, lr=1e-2)
        with torch.no_grad():
            rewards = torch.stack([h(test.chosen) for h in heads])
        variance[detach] = float(rewards.var(0, unbiased=False).mean())
        accuracy = float((torch.stack([h(test.chosen) for h in heads]).mean(0)
                          > torch.stack([h(test.rejected) for h in heads]).mean(0)).float().mean())
        if detach:
            assert accuracy > 0.85
    assert variance[False] > 10 * variance[True]
    with pytest.raises(ValueError, match="n_members"):
        train_ensemble_heads(train, 1)


# ---------------------------------------------------------------- optimizer steps
def test_heads_count_their_optimizer_steps():
    pairs = _toy_pairs(100, 2)
    assert train_head(pairs, hidden=0, epochs=3, batch_size=32).steps == 3 * 4
    feats = [torch.randn(k, 8, generator=torch.Generator().manual_seed(k)) for k in (3, 4, 5, 2, 6)]
    scores = [list(range(k)) for k in (3, 4, 5, 2, 6)]
    run = train_kwise_head(feats, scores, epochs=2, prompts_per_batch=2, hidden=0)
    assert run.steps == 2 * 3 and run.forwards == 2 * 20
    # the loss is the mean over prompts of each prompt's mean over its C(K, 2) pairs
    n_pairs = sum(math.comb(k, 2) for k in (3, 4, 5, 2, 6))
    assert run.extra["n_pairs"] == n_pairs == len(list(itertools.chain.from_iterable(
        itertools.combinations(range(k), 2) for k in (3, 4, 5, 2, 6))))
