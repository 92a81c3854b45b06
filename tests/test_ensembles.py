import pytest
import torch
import torch.nn.functional as F

from rmcourse.ensembles import (
    combine_rewards,
    member_variance,
    seed_uncertainty_loss,
    uncertainty_weighted_pair_loss,
    uncertainty_weights,
)


@pytest.fixture
def members():
    g = torch.Generator().manual_seed(0)
    return torch.randn(5, 40, generator=g)


def test_worst_is_below_mean_and_min_is_exact(members):
    worst = combine_rewards(members, "worst")
    mean = combine_rewards(members, "mean")
    assert torch.all(worst <= mean)
    assert torch.equal(worst, members.min(dim=0).values)
    assert torch.allclose(mean, members.mean(dim=0))


def test_uncertainty_penalises_disagreement():
    agree = torch.tensor([[1.0, 1.0], [1.0, 1.0]])  # item 0 and 1: agreement
    split = torch.tensor([[0.0, 1.0], [2.0, 1.0]])  # item 0: members disagree, same mean
    assert torch.allclose(combine_rewards(agree, "uncertainty"), torch.tensor([1.0, 1.0]))
    out = combine_rewards(split, "uncertainty", lam=0.5)
    assert out[0].item() == pytest.approx(1.0 - 0.5 * 1.0)  # population variance of {0, 2} is 1
    assert out[1].item() == pytest.approx(1.0)
    assert combine_rewards(split, "uncertainty", lam=0.0).tolist() == [1.0, 1.0]


def test_weighted_loss_really_weights_pairs_but_seed_form_only_rescales():
    # pair 0: members agree; pair 1: members disagree strongly (and the pairs' margins differ)
    chosen = torch.tensor([[1.0, 3.0], [1.0, -2.0]])
    rejected = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    per_pair = -F.logsigmoid(chosen.mean(0) - rejected.mean(0))
    weights = uncertainty_weights(chosen, rejected)
    assert weights[0] > weights[1]
    fixed = uncertainty_weighted_pair_loss(chosen, rejected)
    assert fixed.item() == pytest.approx((weights * per_pair).mean().item())
    # the weighted loss is not a constant times the plain mean: the ratio moves with the pairs
    plain = per_pair.mean()
    assert fixed.item() != pytest.approx((weights.mean() * plain).item())
    # the seed form is exactly mean(weights) * plain loss (torch.var is unbiased there)
    seed = seed_uncertainty_loss(chosen, rejected)
    seed_weights = 1.0 / (1.0 + chosen.var(0) + rejected.var(0))
    assert seed.item() == pytest.approx((seed_weights.mean() * plain).item())
    assert uncertainty_weighted_pair_loss(chosen, rejected, reduction="none").shape == (2,)


def test_weights_carry_no_gradient():
    chosen = torch.tensor([[1.0, 3.0], [1.0, -1.0]], requires_grad=True)
    rejected = torch.zeros(2, 2, requires_grad=True)
    assert not uncertainty_weights(chosen, rejected).requires_grad
    loss = uncertainty_weighted_pair_loss(chosen, rejected)
    loss.backward()
    # with detached weights the gradient on each member's chosen reward is w_i * dl_i / M only
    w = uncertainty_weights(chosen.detach(), rejected.detach())
    margin = chosen.detach().mean(0)
    expected = -(w * torch.sigmoid(-margin)) / 2 / 2  # / M members / B pairs (mean)
    assert torch.allclose(chosen.grad, expected.expand(2, 2))
    # the seed form sends gradient through the weights too: its gradient differs
    c2 = chosen.detach().clone().requires_grad_(True)
    seed_uncertainty_loss(c2, rejected.detach()).backward()
    assert not torch.allclose(c2.grad[0], c2.grad[1])


def test_one_member_has_zero_variance():
    x = torch.randn(1, 4)
    assert torch.equal(member_variance(x), torch.zeros(4))


def test_bad_inputs(members):
    with pytest.raises(ValueError, match="unknown method 'median'"):
        combine_rewards(members, "median")
    with pytest.raises(ValueError, match=r"shape \[members, items\]"):
        combine_rewards(torch.ones(3))
    with pytest.raises(TypeError, match="torch.Tensor"):
        combine_rewards([[1.0]])
    with pytest.raises(ValueError, match="lam"):
        combine_rewards(members, "uncertainty", lam=-1)
    with pytest.raises(ValueError, match="differ in shape"):
        uncertainty_weighted_pair_loss(torch.ones(2, 3), torch.ones(3, 3))
    with pytest.raises(ValueError, match="non-finite"):
        combine_rewards(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match="unknown reduction"):
        uncertainty_weighted_pair_loss(torch.ones(2, 3), torch.ones(2, 3), reduction="avg")
