import numpy as np
import pytest
import torch

from rmcourse.heads import (
    PairFeatures,
    RewardHead,
    encoder_features,
    evaluate_head,
    hashed_features,
    kwise_pairs,
    pair_features,
    score_head,
    train_head,
    train_kwise_head,
)


def test_hashed_features_are_deterministic_and_see_words():
    a = hashed_features(["Hi there"], ["The answer is 4. As mentioned, this matters."], dim=64, prompt_dim=8)
    b = hashed_features(["Hi there"], ["The answer is 4. As mentioned, this matters."], dim=64, prompt_dim=8)
    assert a.shape == (1, 72) and torch.equal(a, b)
    assert a[0, 64:].sum() > 0  # the prompt block is filled
    c = hashed_features(["Hi there"], ["The answer is 5."], dim=64, prompt_dim=8)
    assert not torch.equal(a, c)


def test_hashed_features_bad_inputs():
    with pytest.raises(ValueError, match="2 prompts but 1 responses"):
        hashed_features(["a", "b"], ["x"])
    with pytest.raises(ValueError, match="empty text in response 0"):
        hashed_features(["a"], ["  "])
    with pytest.raises(TypeError, match="single string"):
        hashed_features("a", ["x"])
    with pytest.raises(ValueError, match="dim"):
        hashed_features(["a"], ["x"], dim=0)


def _toy_pairs(n, seed, noise=0.0):
    g = torch.Generator().manual_seed(seed)
    w = torch.linspace(-1, 1, 16)
    a, b = torch.randn(n, 16, generator=g), torch.randn(n, 16, generator=g)
    better = (a @ w > b @ w)
    flip = torch.rand(n, generator=g) < noise
    better = better ^ flip
    chosen = torch.where(better[:, None], a, b)
    rejected = torch.where(better[:, None], b, a)
    return PairFeatures(chosen, rejected, margin=torch.ones(n))


def test_train_head_learns_a_linear_preference():
    run = train_head(_toy_pairs(400, 0), _toy_pairs(200, 1), hidden=0, epochs=5, lr=0.05,
                     monitor={"test": _toy_pairs(100, 9)})
    assert run.history["val_accuracy"].iloc[-1] > 0.9
    assert run.history["test_accuracy"].iloc[-1] > 0.85 and "test_loss" in run.history
    assert run.history["val_accuracy"].iloc[0] < 0.8  # it really learnt something
    assert run.forwards == 5 * 2 * 400
    assert list(run.history["epoch"]) == list(range(6))


def test_early_stopping_restores_the_best_weights():
    train, val = _toy_pairs(60, 2, noise=0.3), _toy_pairs(200, 3)
    run = train_head(train, val, hidden=64, epochs=40, lr=0.03, patience=3)
    h = run.history
    best = h.loc[h["val_loss"].idxmin()]
    assert run.best_epoch == int(best["epoch"])
    assert run.restored_best and h["epoch"].iloc[-1] > run.best_epoch
    assert evaluate_head(run.head, val)["loss"] == pytest.approx(best["val_loss"], abs=1e-6)


def test_margin_centering_and_smoothing_change_training():
    train = _toy_pairs(200, 4)
    base = train_head(train, hidden=0, epochs=3, lr=0.05)
    margin = train_head(train, hidden=0, epochs=3, lr=0.05, use_margin=True)
    assert evaluate_head(margin.head, train)["margin"] > evaluate_head(base.head, train)["margin"]
    smooth = train_head(train, hidden=0, epochs=3, lr=0.05, label_smoothing=0.3)
    assert evaluate_head(smooth.head, train)["margin"] < evaluate_head(base.head, train)["margin"]
    shifted = PairFeatures(train.chosen + 3.0, train.rejected + 3.0)
    drift = train_head(shifted, hidden=0, epochs=5, lr=0.05)
    centred = train_head(shifted, hidden=0, epochs=5, lr=0.05, center_coef=0.1)
    assert abs(centred.history["reward_mean"].iloc[-1]) < abs(drift.history["reward_mean"].iloc[-1])


def test_kwise_pairs_and_training():
    feats = [torch.randn(4, 8), torch.randn(3, 8)]
    scores = [[3.0, 1.0, 2.0, 0.0], [0.0, 5.0, 5.0]]
    pairs = kwise_pairs(feats, scores)
    assert len(pairs) == 6 + 2  # C(4,2) and the 2 untied pairs of the second group
    assert torch.equal(pairs.chosen[0], feats[0][0]) and torch.equal(pairs.rejected[0], feats[0][1])
    run = train_kwise_head(feats, scores, epochs=3, prompts_per_batch=1, hidden=0)
    assert run.forwards == 3 * 7 and run.extra["n_pairs"] == 8


def test_flipped_and_subset():
    p = _toy_pairs(5, 6)
    f = p.flipped([True, False, False, False, False])
    assert torch.equal(f.chosen[0], p.rejected[0]) and torch.equal(f.chosen[1], p.chosen[1])
    assert len(p.subset([0, 2])) == 2 and len(p.subset(slice(0, 3))) == 3


def test_pair_features_from_rows():
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": "p", "chosen": "good answer", "rejected": "bad",
                                      "margin": 1.0}])
    feats = pair_features(ds, lambda p, r: hashed_features(p, r, dim=16, prompt_dim=4))
    assert feats.chosen.shape == (1, 20) and feats.margin.tolist() == [1.0]
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        pair_features(datasets.Dataset.from_list([{"prompt": "p", "chosen": "c"}]))


def test_bad_hyperparameters():
    p = _toy_pairs(10, 7)
    with pytest.raises(ValueError, match="patience needs a val"):
        train_head(p, patience=2)
    with pytest.raises(ValueError, match="label_smoothing"):
        train_head(p, label_smoothing=0.7)
    with pytest.raises(ValueError, match="no margin"):
        train_head(PairFeatures(p.chosen, p.rejected), use_margin=True)
    with pytest.raises(ValueError, match="differ in shape"):
        PairFeatures(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="monitor name 'val'"):
        train_head(p, monitor={"val": p})
    with pytest.raises(ValueError, match="dropout"):
        RewardHead(4, dropout=1.0)
    assert score_head(RewardHead(4, hidden=0), torch.ones(3, 4)).shape == (3,)


def test_encoder_features_match_the_models_own_head():
    from rmcourse.models import load_reward_model

    model = load_reward_model("minilm", device="cpu", max_length=64)
    prompts, responses = ["What is 2 + 2?", "Hi"], ["The answer is 4.", "Hello! How can I help you today?"]
    feats = encoder_features(model, prompts, responses, batch_size=1)
    assert feats.shape == (2, model.hf.config.hidden_size)
    # BERT's head reads the [CLS] state through its pooler: the same features give the same rewards
    hf = model.hf
    with torch.no_grad():
        rewards = hf.classifier(hf.bert.pooler(feats[:, None, :]))
    assert torch.allclose(rewards.squeeze(-1), model.score(prompts, responses), atol=1e-4)
