"""Multi-objective reward model pieces: ratings, ridge heads, verbosity penalties, the gate."""
import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from rmcourse.objectives import (GOLD_MIX, OBJECTIVES, GatingNetwork, apply_verbosity_penalties,
                                 fit_objective_heads, objective_ratings, ratings_matrix, train_gating,
                                 verbosity_penalties)
from rmcourse.world import PreferenceWorld, gold_reward


def test_gold_reward_is_a_mixture_of_the_ratings():
    ds = PreferenceWorld(seed=1).pairs("train", 60)
    attrs = list(ds["chosen_attrs"]) + list(ds["rejected_attrs"])
    r = ratings_matrix(attrs)
    mix = torch.tensor([GOLD_MIX[o] for o in OBJECTIVES])
    gold = np.array([gold_reward(a) for a in attrs])
    offset = gold - (r @ mix).numpy()
    assert np.allclose(offset, offset[0])


def test_objective_ratings_and_noise():
    a = {"correct": False, "refuses": False, "detail": 2, "polite": True, "padding": 3, "should_refuse": True}
    assert objective_ratings(a) == {"correctness": -1.0, "detail": 2.0, "politeness": 1.0,
                                    "refusal_decision": 0.0, "verbosity": 3.0}
    noisy = ratings_matrix([a] * 400, noise=0.5, seed=0)
    changed = (noisy != ratings_matrix([a])).any(1).float().mean()
    assert 0.6 < changed < 1.0  # each of 5 ratings is redrawn with prob 0.5 (sometimes to the same value)
    assert torch.equal(noisy, ratings_matrix([a] * 400, noise=0.5, seed=0))
    with pytest.raises(ValueError, match="needs an rng"):
        objective_ratings(a, noise=0.1)
    with pytest.raises(ValueError, match="missing attribute 'padding'"):
        objective_ratings({k: v for k, v in a.items() if k != "padding"})


def test_ridge_heads_recover_a_linear_map():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g)
    w = torch.randn(8, 2, generator=g)
    heads = fit_objective_heads(x, x @ w + 3.0, l2=1e-6, names=("a", "b"))
    assert torch.allclose(heads.predict(x), x @ w + 3.0, atol=1e-3)
    with pytest.raises(ValueError, match="3 objective names"):
        fit_objective_heads(x, x @ w, names=("a", "b", "c"))


def test_verbosity_penalty_is_the_smallest_grid_value_that_decorrelates():
    rng = np.random.default_rng(0)
    v = rng.normal(size=500)
    pred = torch.tensor(np.stack([0.5 * v + rng.normal(size=500), rng.normal(size=500), v], 1), dtype=torch.float32)
    names = ("leaky", "clean", "verbosity")
    pen = verbosity_penalties(pred, names=names, threshold=0.03)
    assert pen["verbosity"] == 1.0 and pen["clean"] <= 0.05
    assert 0.3 <= pen["leaky"] <= 0.7
    adj = apply_verbosity_penalties(pred, pen, names)
    assert spearmanr(adj[:, 0], v)[0] <= 0.03 and torch.all(adj[:, 2] == 0)
    smaller = [lam for lam in (0.1, 0.2, 0.25, 0.3) if lam < pen["leaky"]]
    assert all(spearmanr(pred[:, 0] - lam * pred[:, 2], v)[0] > 0.03 for lam in smaller)
    with pytest.raises(ValueError, match="constant"):
        verbosity_penalties(torch.ones(10, 3), names=names)


def test_gate_outputs_a_scaled_mixture_and_learns_which_objective_matters(one_thread):
    gate = GatingNetwork(4, 3, n_hidden=1, hidden=8, scale=2.0)
    w = gate(torch.randn(5, 4))
    assert torch.all(w >= 0) and torch.allclose(w.sum(-1), torch.full((5,), 2.0))
    # two prompt types: objective 0 decides the preference for type A, objective 1 for type B
    g = torch.Generator().manual_seed(0)
    n = 600
    kind = torch.arange(n) % 2
    prompt = torch.stack([kind.float(), 1 - kind.float()], 1)
    obj_c, obj_r = torch.randn(n, 2, generator=g), torch.randn(n, 2, generator=g)
    better = torch.where(kind == 0, obj_c[:, 0] > obj_r[:, 0], obj_c[:, 1] > obj_r[:, 1])
    chosen = torch.where(better[:, None], obj_c, obj_r)
    rejected = torch.where(better[:, None], obj_r, obj_c)
    from rmcourse.objectives import ObjectiveHeads

    identity = ObjectiveHeads(torch.eye(2), torch.zeros(2), names=("a", "verbosity"))
    model = train_gating(identity, {"a": 0.0, "verbosity": 0.0}, chosen, rejected, prompt, epochs=10, lr=0.05,
                         batch_size=128)
    weights = model.weights(prompt[:2])
    assert weights[0, 0] > weights[0, 1] and weights[1, 1] > weights[1, 0]
    assert model.history["train_accuracy"].iloc[-1] > 0.9
    table = model.breakdown(chosen[:1], prompt[:1])
    assert table["contribution"].sum() == pytest.approx(float(model.score(chosen[:1], prompt[:1])), abs=1e-5)
