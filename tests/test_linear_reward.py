"""The linear Bradley-Terry reward on the world's attributes: features, fit, and the length shortcut."""
import numpy as np
import pytest
import torch

from rmcourse.linear_reward import FEATURES, attribute_features, fit_linear_bt, pair_features
from rmcourse.losses import pairwise_loss
from rmcourse.world import GOLD_WEIGHTS, PreferenceWorld

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def train():
    return PreferenceWorld(seed=0).pairs("train", 3000)


def test_features_follow_gold_weights(train):
    assert FEATURES == tuple(GOLD_WEIGHTS)
    xc, xr = pair_features(train)
    gold = torch.tensor(list(GOLD_WEIGHTS.values()), dtype=torch.float64)
    assert torch.allclose(xc @ gold, torch.tensor(train["chosen_gold"], dtype=torch.float64))
    assert torch.allclose(xr @ gold, torch.tensor(train["rejected_gold"], dtype=torch.float64))
    one = attribute_features([{"detail": 2, "polite": True, "correct": None, "refuses": True,
                               "should_refuse": False, "padding": 3}], ["correct", "refusal_mismatch"])
    assert one.tolist() == [[0.0, 1.0]]


def test_fit_is_the_pairwise_loss_optimum_and_recovers_weights():
    gen = torch.Generator().manual_seed(1)
    w_true = torch.tensor([1.5, -0.7, 0.0], dtype=torch.float64)
    xa = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    xb = torch.randn(4000, 3, generator=gen, dtype=torch.float64)
    a_wins = torch.rand(4000, generator=gen, dtype=torch.float64) < torch.sigmoid((xa - xb) @ w_true)
    xc, xr = torch.where(a_wins[:, None], xa, xb), torch.where(a_wins[:, None], xb, xa)
    w = fit_linear_bt(xc, xr, l2=0.0)
    assert torch.allclose(w, w_true, atol=0.1)
    w = w.clone().requires_grad_()
    pairwise_loss(xc @ w, xr @ w).backward()
    assert w.grad.abs().max() < 1e-7          # a stationary point of the course's loss


def test_padding_weight_jumps_when_correct_is_left_out(train):
    """The length shortcut: measured padding -0.01 with every feature, +0.50 without `correct`
    (seed 0, 3000 train pairs); asserted with margins because the world may change."""
    xc, xr = pair_features(train)
    full = dict(zip(FEATURES, fit_linear_bt(xc, xr).tolist()))
    keep = [f for f in FEATURES if f != "correct"]
    cols = [FEATURES.index(f) for f in keep]
    blind = dict(zip(keep, fit_linear_bt(xc[:, cols], xr[:, cols]).tolist()))
    assert abs(full["padding"]) < 0.15
    assert blind["padding"] > 0.3 and blind["padding"] - full["padding"] > 0.3
    assert 2.0 < full["correct"] / full["detail"] < 3.0      # gold ratio 2.5


def test_separable_pairs_need_l2():
    xc = torch.tensor([[1.0], [2.0]])
    xr = torch.tensor([[0.0], [0.0]])
    with pytest.warns(RuntimeWarning, match="l2"):
        fit_linear_bt(xc, xr, l2=0.0)
    assert np.isfinite(fit_linear_bt(xc, xr, l2=1e-3).numpy()).all()


@pytest.mark.parametrize("call,error,match", [
    (lambda: attribute_features({"detail": 1}), TypeError, "list of attribute dicts"),
    (lambda: attribute_features([{"detail": 1}]), ValueError, "missing attribute"),
    (lambda: attribute_features([], FEATURES), ValueError, "empty"),
    (lambda: attribute_features([{}], ["length"]), ValueError, "unknown feature"),
    (lambda: fit_linear_bt([[1.0]], [[0.0]]), TypeError, "tensor or array"),
    (lambda: fit_linear_bt(torch.ones(3, 2), torch.ones(3, 3)), ValueError, "same shape"),
    (lambda: fit_linear_bt(torch.ones(3), torch.ones(3)), ValueError, "2-D"),
    (lambda: fit_linear_bt(torch.ones(2, 1), torch.ones(2, 1), l2=-1.0), ValueError, "l2"),
    (lambda: pair_features({"chosen": []}), ValueError, "chosen_attrs"),
])
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
