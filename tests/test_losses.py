import math

import pytest
import torch
import torch.nn.functional as F

from rmcourse.losses import bce_form_loss, pairwise_loss, reward_centering_loss


@pytest.fixture()
def rewards():
    gen = torch.Generator().manual_seed(0)
    return torch.randn(32, generator=gen) * 3, torch.randn(32, generator=gen) * 3


def test_pairwise_loss_equals_bce_with_all_ones(rewards):
    c, r = rewards
    bce = torch.nn.BCEWithLogitsLoss()(c - r, torch.ones(32))
    assert torch.allclose(pairwise_loss(c, r), bce, atol=1e-6)
    assert torch.allclose(bce_form_loss(c, r), bce, atol=1e-6)
    m = torch.rand(32)
    assert torch.allclose(pairwise_loss(c, r, margin=m), bce_form_loss(c, r, margin=m), atol=1e-6)
    assert torch.allclose(pairwise_loss(c, r, reduction="none"),
                          bce_form_loss(c, r, reduction="none"), atol=1e-6)


def test_pairwise_loss_known_values():
    zero = torch.zeros(3)
    assert pairwise_loss(zero, zero).item() == pytest.approx(math.log(2))
    c, r = torch.tensor([2.0]), torch.tensor([1.0])
    assert pairwise_loss(c, r).item() == pytest.approx(-math.log(1 / (1 + math.exp(-1))))


def test_pairwise_loss_depends_on_differences_only(rewards):
    c, r = rewards
    assert torch.allclose(pairwise_loss(c + 100.0, r + 100.0), pairwise_loss(c, r), atol=1e-5)


def test_margin_shifts_the_gap(rewards):
    c, r = rewards
    assert torch.allclose(pairwise_loss(c, r, margin=1.5), pairwise_loss(c - 1.5, r), atol=1e-6)
    m = torch.linspace(0, 2, 32)
    assert torch.allclose(pairwise_loss(c, r, margin=m, reduction="none"),
                          -F.logsigmoid(c - r - m), atol=1e-6)
    # A positive margin asks for more: the loss can only go up.
    assert pairwise_loss(c, r, margin=m) > pairwise_loss(c, r)


def test_centering_adds_the_term(rewards):
    c, r = rewards
    base = pairwise_loss(c, r)
    centred = pairwise_loss(c, r, center_coef=0.01)
    assert torch.allclose(centred - base, 0.01 * ((c + r) ** 2).mean(), atol=1e-6)
    assert torch.allclose(reward_centering_loss(c, r, 0.01), centred - base, atol=1e-6)
    # The pairwise term ignores a shared offset; the centering term does not.
    assert pairwise_loss(c + 5, r + 5, center_coef=0.01) > centred
    total = pairwise_loss(c, r, center_coef=0.01, reduction="sum")
    assert torch.allclose(total / 32, centred, atol=1e-5)
    per_pair = pairwise_loss(c, r, center_coef=0.01, reduction="none")
    assert torch.allclose(per_pair.mean(), base, atol=1e-6)  # documented: no centering per pair


def test_gradients_finite_at_extreme_gaps():
    c = torch.tensor([-1000.0, 1000.0, 0.0], requires_grad=True)
    r = torch.tensor([1000.0, -1000.0, 0.0], requires_grad=True)
    loss = pairwise_loss(c, r, center_coef=0.01)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(c.grad).all() and torch.isfinite(r.grad).all()
    naive = -torch.log(torch.sigmoid(c.detach() - r.detach())).mean()
    assert not torch.isfinite(naive)  # why logsigmoid: the naive form gives inf


def test_gradient_pushes_chosen_up(rewards):
    c, r = (t.clone().requires_grad_() for t in rewards)
    pairwise_loss(c, r).backward()
    assert (c.grad < 0).all() and (r.grad > 0).all()
    # d loss / d r_c = -(1 - sigmoid(r_c - r_r)) / B
    expected = -(1 - torch.sigmoid(c.detach() - r.detach())) / 32
    assert torch.allclose(c.grad, expected, atol=1e-6)


def test_bf16_rewards_give_fp32_loss(rewards):
    c, r = rewards
    out = pairwise_loss(c.bfloat16(), r.bfloat16())
    assert out.dtype == torch.float32


@pytest.mark.parametrize(
    "args,kwargs,err,msg",
    [
        ((torch.zeros(3), torch.zeros(4)), {}, ValueError, "same shape"),
        ((torch.zeros(3, 1), torch.zeros(3, 1)), {}, ValueError, "squeeze"),
        ((torch.zeros(0), torch.zeros(0)), {}, ValueError, "empty"),
        ((torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)), {}, TypeError,
         "floating-point"),
        (([0.0, 1.0], torch.zeros(2)), {}, TypeError, "torch.Tensor"),
        ((torch.zeros(3), torch.zeros(3)), {"margin": torch.zeros(2)}, ValueError, "margin"),
        ((torch.zeros(3), torch.zeros(3)), {"margin": "1"}, TypeError, "margin"),
        ((torch.zeros(3), torch.zeros(3)), {"reduction": "avg"}, ValueError, "reduction"),
        ((torch.zeros(3), torch.zeros(3)), {"center_coef": -0.1}, ValueError, "center_coef"),
    ],
)
def test_pairwise_loss_bad_inputs(args, kwargs, err, msg):
    with pytest.raises(err, match=msg):
        pairwise_loss(*args, **kwargs)


def test_bce_form_validates_too():
    with pytest.raises(ValueError, match="same shape"):
        bce_form_loss(torch.zeros(2), torch.zeros(3))
