"""The trainer on a tiny random BERT (hidden 32, 2 layers) with MiniLM's tokenizer: seconds, not minutes.

The synthetic task: the chosen response says "good", the rejected one "bad", with independently
drawn surrounding words, so an untrained model is at chance and a trained one is not.
"""
import math
import random

import matplotlib
import numpy as np
import pandas as pd
import pytest
import torch
from datasets import Dataset

matplotlib.use("Agg")

from rmcourse.metrics import pair_collator_for, pairwise_accuracy, score_pairs  # noqa: E402
from rmcourse.models import RewardModel, bundled_model_path  # noqa: E402
from rmcourse.tokenization import tokenize_pairs  # noqa: E402
from rmcourse.trainer import (  # noqa: E402
    FLOAT32_ATTENTION, HISTORY_COLUMNS, TrainConfig, TrainResult, dropout_disabled, evaluate,
    float32_attention, forward_chunk_size, lr_factor, make_optimizer, param_groups,
    stacked_rewards, train_reward_model, use_bf16,
)

PROMPTS = ["How was the movie?", "Tell me about your day.", "Is the soup any good?",
           "What do you think of the plan?", "How is the weather?"]
SUBJECTS = ["It", "The whole thing", "Honestly it", "Overall it", "This one"]
TAILS = ["today.", "in every way.", "for sure.", "I would say.", "as far as I can tell."]


def make_pairs(n, seed=0, reverse=False, margin=None):
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        good = f"{rng.choice(SUBJECTS)} was good {rng.choice(TAILS)}"
        bad = f"{rng.choice(SUBJECTS)} was bad {rng.choice(TAILS)}"
        row = {"prompt": rng.choice(PROMPTS), "chosen": bad if reverse else good,
               "rejected": good if reverse else bad}
        if margin is not None:
            row["margin"] = margin
        rows.append(row)
    return Dataset.from_list(rows)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: see tests/conftest.py


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])


@pytest.fixture(scope="module")
def make_model(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)

    def build(seed=0):
        torch.manual_seed(seed)
        return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=64)

    return build


def quiet(**kw):
    return TrainConfig(progress=False, **kw)


def test_training_learns_an_easy_preference(make_model, capsys):
    model = make_model()
    held_out = make_pairs(32, seed=99)
    before = evaluate(model, held_out, batch_size=32, max_length=64)
    result = train_reward_model(model, make_pairs(64), make_pairs(16, seed=1),
                                quiet(lr=1e-2, batch_size=8, epochs=2.0, eval_every=4,
                                      max_length=64))
    after = evaluate(model, held_out, batch_size=32, max_length=64)
    assert "64 pairs" in capsys.readouterr().out  # the truncation report is printed once
    assert isinstance(result, TrainResult)
    assert before["accuracy"] < 0.8 and after["accuracy"] >= 0.9
    assert after["margin"] > before["margin"] + 1.0
    h = result.history
    assert h["margin"].iloc[-3:].mean() > h["margin"].iloc[:3].mean() + 1.0
    assert h["loss"].iloc[-3:].mean() < h["loss"].iloc[:3].mean() - 0.3
    assert result.n_steps == 16 and list(h["step"]) == list(range(1, 17))
    assert h["epoch"].iloc[-1] == pytest.approx(2.0)
    assert result.best_val_accuracy == h["val_accuracy"].max()
    assert result.pairs_per_second > 0 and result.train_seconds > 0
    assert not result.stopped_early


def test_history_columns_val_rows_and_plot(make_model):
    result = train_reward_model(make_model(), make_pairs(24), make_pairs(8, seed=1),
                                quiet(lr=1e-3, batch_size=4, max_steps=6, eval_every=4,
                                      log_every=2))
    h = result.history
    assert list(h.columns) == HISTORY_COLUMNS
    # logged every 2 steps, plus the eval step 4 (already a log step) and the last step 6
    assert list(h["step"]) == [2, 4, 6]
    assert h.loc[h["step"] == 2, "val_accuracy"].isna().all()
    assert h.loc[h["step"].isin([4, 6]), "val_loss"].notna().all()  # the last step is validated
    assert (h["reward_std"] >= 0).all() and h["accuracy"].between(0, 1).all()
    fig = result.plot()
    assert len(fig.axes) == 3
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_lr_factor_is_warmup_then_cosine():
    assert [lr_factor(s, 10, 4) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(0, 10, 0) == 1.0
    assert lr_factor(5, 10, 0) == pytest.approx(0.5)  # half way down the cosine
    assert lr_factor(9, 10, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.9)))
    with pytest.raises(ValueError, match="warmup_steps"):
        lr_factor(0, 10, 11)
    with pytest.raises(ValueError, match="total_steps"):
        lr_factor(0, 0, 0)


def test_lr_in_history_warms_up_then_decays(make_model):
    config = quiet(lr=1e-3, batch_size=4, max_steps=12, warmup_ratio=0.25)
    lrs = train_reward_model(make_model(), make_pairs(16), None, config).history["lr"].to_numpy()
    assert np.allclose(lrs[:3], [1e-3 / 3, 2e-3 / 3, 1e-3])
    assert np.all(np.diff(lrs[:3]) > 0) and np.all(np.diff(lrs[2:]) < 0)
    assert lrs[-1] > 0
    # the peak is step index 2; the cosine spans the 10 steps after it and is half way at index 7
    assert lrs[7] == pytest.approx(0.5e-3)


@pytest.fixture
def sgd(monkeypatch):
    # Adam's first step is ~lr*sign(grad): float noise in a near-zero gradient flips it. Plain SGD
    # makes the update linear in the gradient, which is what accumulation must preserve.
    import rmcourse.trainer as trainer

    monkeypatch.setattr(trainer, "make_optimizer",
                        lambda model, config: torch.optim.SGD(model.parameters(), lr=config.lr))


def _one_step(model, pairs, **kw):
    # float32: the equality below is about the arithmetic of accumulation, not bf16 rounding.
    base = dict(lr=100.0, max_steps=1, warmup_ratio=0.0, max_grad_norm=None, bf16=False)
    train_reward_model(model, pairs, None, quiet(**base, **kw))
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_accumulation_gives_the_big_batch_update(make_model, sgd):
    pairs = make_pairs(8)
    start = {k: v.clone() for k, v in make_model().state_dict().items()}
    big = _one_step(make_model(), pairs, batch_size=8, grad_accum_steps=1)
    accumulated = _one_step(make_model(), pairs, batch_size=4, grad_accum_steps=2)
    half = _one_step(make_model(), pairs, batch_size=4, grad_accum_steps=1)
    move = {k: big[k] - start[k] for k in start}
    scale = max(float(m.abs().max()) for m in move.values())
    assert scale > 1e-3  # the step did move the weights
    for name in start:
        torch.testing.assert_close(accumulated[name] - start[name], move[name],
                                   atol=1e-4 * scale, rtol=1e-3, msg=f"parameter {name} differs")
    # guard: a step on half the pairs (no accumulation) is a different update
    worst = max(float((half[k] - big[k]).abs().max()) for k in start)
    assert worst > 0.05 * scale


def test_early_stopping_restores_the_best_weights(make_model):
    # Validation prefers "bad": the more the model learns the training task, the worse it gets.
    model = make_model()
    val = make_pairs(16, seed=1, reverse=True)
    result = train_reward_model(model, make_pairs(64), val,
                                quiet(lr=1e-2, batch_size=8, max_steps=40, eval_every=2,
                                      early_stopping_patience=2, eval_batch_size=16))
    h = result.history.dropna(subset=["val_accuracy"])
    assert result.stopped_early and result.n_steps < 40
    assert result.restored_best
    assert h["val_accuracy"].iloc[-1] < result.best_val_accuracy  # the last weights were worse
    assert result.best_step == int(h.loc[h["val_accuracy"].idxmax(), "step"])
    again = evaluate(model, val, batch_size=16, max_length=128)
    assert again["accuracy"] == pytest.approx(result.best_val_accuracy)
    best_loss = float(h.loc[h["step"] == result.best_step, "val_loss"].iloc[0])
    assert again["loss"] == pytest.approx(best_loss, rel=1e-5)


def test_same_seed_same_history_other_seed_other_order(make_model):
    def run(seed):
        cfg = quiet(lr=1e-3, batch_size=4, max_steps=4, seed=seed, group_by_length=True)
        return train_reward_model(make_model(), make_pairs(24), None, cfg).history

    first, second, other = run(0), run(0), run(1)
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first["loss"], other["loss"])


def test_margin_and_centering_enter_the_loss(make_model):
    pairs = make_pairs(8, margin=1.0)
    cfg = dict(lr=1e-3, batch_size=8, max_steps=1)
    plain = train_reward_model(make_model(), pairs, None, quiet(**cfg)).history
    with_margin = train_reward_model(make_model(), pairs, None,
                                     quiet(use_margin=True, **cfg)).history
    # an untrained model gives r_c ~ r_r, so the loss is log 2 without, softplus(1) with margin 1
    assert plain["loss"].iloc[0] == pytest.approx(math.log(2), abs=1e-3)
    assert with_margin["loss"].iloc[0] == pytest.approx(math.log1p(math.e), abs=1e-3)

    shifted = make_model()
    with torch.no_grad():
        shifted.hf.classifier.bias.fill_(3.0)  # every reward ~ 3, so (r_c + r_r)^2 ~ 36
    centred = train_reward_model(shifted, pairs, None,
                                 quiet(center_rewards_coef=0.01, **cfg)).history
    assert centred["reward_mean"].iloc[0] == pytest.approx(3.0, abs=0.01)
    assert centred["loss"].iloc[0] == pytest.approx(math.log(2) + 0.36, abs=0.01)


def test_evaluate_matches_scoring_and_accuracy(make_model):
    model = make_model()
    pairs = make_pairs(12, seed=5)
    scores = evaluate(model, pairs, batch_size=5, max_length=64)
    chosen, rejected = score_pairs(model, pairs, batch_size=5, max_length=64)
    assert set(scores) == {"loss", "accuracy", "margin", "n_ties"}
    assert scores["accuracy"] == pairwise_accuracy(chosen, rejected).accuracy
    assert scores["margin"] == pytest.approx(float((chosen - rejected).mean()))
    expected_loss = float(torch.nn.functional.softplus(rejected - chosen).mean())
    assert scores["loss"] == pytest.approx(expected_loss, rel=1e-5)


def test_weight_decay_skips_biases_and_layernorm(make_model):
    model = make_model()
    decay, no_decay = param_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all("bias" in names[id(p)] or "LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert any("LayerNorm" in names[id(p)] for p in no_decay["params"])
    assert all(p.ndim == 2 for p in decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    optimizer = make_optimizer(model, TrainConfig(lr=3e-4, weight_decay=0.1))
    assert isinstance(optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 3e-4 for g in optimizer.param_groups)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(lr=0.0), ValueError, "lr must be in"),
    (dict(lr="fast"), TypeError, "lr must be a number"),
    (dict(batch_size=0), ValueError, "batch_size must be >= 1"),
    (dict(batch_size=2.5), TypeError, "batch_size must be an int"),
    (dict(epochs=-1), ValueError, "epochs"),
    (dict(max_steps=0), ValueError, "max_steps"),
    (dict(warmup_ratio=1.5), ValueError, "warmup_ratio"),
    (dict(weight_decay=-0.1), ValueError, "weight_decay"),
    (dict(max_grad_norm=0.0), ValueError, "max_grad_norm"),
    (dict(grad_accum_steps=0), ValueError, "grad_accum_steps"),
    (dict(center_rewards_coef=float("nan")), ValueError, "center_rewards_coef"),
    (dict(use_margin="yes"), TypeError, "use_margin must be True or False"),
    (dict(bf16="yes"), ValueError, "bf16 must be"),
    (dict(disable_dropout="yes"), TypeError, "disable_dropout must be True or False"),
    (dict(forward_chunk_size=0), ValueError, "forward_chunk_size must be a positive int"),
    (dict(forward_chunk_size="small"), ValueError, "forward_chunk_size must be"),
    (dict(eval_every=0), ValueError, "eval_every"),
    (dict(early_stopping_patience=2), ValueError, "needs eval_every"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(log_every=0), ValueError, "log_every"),
])
def test_bad_config_is_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


def test_bad_training_calls_are_named(make_model):
    model = make_model()
    pairs = make_pairs(4)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        train_reward_model(model, pairs, None, {"lr": 1e-3})
    with pytest.raises(ValueError, match="no column 'margin'"):
        train_reward_model(model, pairs, None, quiet(use_margin=True))
    with pytest.raises(ValueError, match="needs a val_ds"):
        train_reward_model(model, pairs, None, quiet(eval_every=1, early_stopping_patience=1))
    with pytest.raises(ValueError, match="empty"):
        train_reward_model(model, pairs.select([]), None, quiet())
    with pytest.raises(TypeError, match="RewardModel"):
        train_reward_model(torch.nn.Linear(2, 1), pairs, None, quiet())
    with pytest.raises(ValueError, match="missing column 'chosen'"):
        train_reward_model(model, pairs.remove_columns("chosen"), None, quiet())
    with pytest.raises(ValueError, match="bf16=True needs a CUDA or CPU device, not mps"):
        use_bf16(TrainConfig(bf16=True), "mps")


# ---------------------------------------------------------------- precision
def test_bf16_auto_follows_the_device_check(monkeypatch):
    monkeypatch.setenv("RMCOURSE_BF16", "1")  # as on a CPU with bf16 matrix units
    assert use_bf16(TrainConfig(), "cpu") is True
    monkeypatch.setenv("RMCOURSE_BF16", "0")  # as on a CPU without them
    assert use_bf16(TrainConfig(), "cpu") is False
    assert use_bf16(TrainConfig(bf16=True), "cpu") is True  # forced: emulated, but it works
    assert use_bf16(TrainConfig(bf16=False), "cpu") is False
    assert use_bf16(TrainConfig(), "mps") is False


def test_bf16_training_learns_and_keeps_the_reward_head_in_float32(make_model):
    model = make_model()
    result = train_reward_model(model, make_pairs(64), None,
                                quiet(lr=1e-2, batch_size=8, epochs=2.0, bf16=True))
    assert result.history["loss"].iloc[-3:].mean() < result.history["loss"].iloc[:3].mean() - 0.3
    assert evaluate(model, make_pairs(32, seed=99), max_length=64)["accuracy"] >= 0.9
    # Under bf16 autocast the rewards still come out of a float32 head: not on bf16's grid.
    pairs = make_pairs(32, seed=7)
    tok = model.tokenizer(list(pairs["prompt"]), list(pairs["chosen"]), padding=True,
                          return_tensors="pt")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        rewards = model(tok["input_ids"], tok["attention_mask"], tok["token_type_ids"])
    assert not torch.equal(rewards, rewards.bfloat16().float()), "rewards were rounded to bf16"


def test_float32_attention_is_exact_in_float32_and_restored(make_model):
    model = make_model()
    model.eval()
    batch = model.tokenizer(["short", "a much longer text than the first one"], padding=True,
                            return_tensors="pt")  # the first row is padded: the mask matters
    with torch.no_grad():
        plain = model(**batch)
        with float32_attention(model) as switched:
            assert switched and model.hf.config._attn_implementation == FLOAT32_ATTENTION
            inside = model(**batch)
    assert model.hf.config._attn_implementation == "sdpa"
    torch.testing.assert_close(inside, plain, rtol=0, atol=1e-6)
    # Under bf16 autocast attention then runs in float32: closer to the float32 rewards.
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        bf16_attention = model(**batch)
        with float32_attention(model):
            f32_attention = model(**batch)
    assert (f32_attention - plain).abs().max() <= (bf16_attention - plain).abs().max()


def test_float32_attention_leaves_other_attention_alone(make_model):
    model = make_model()
    model.hf.set_attn_implementation("eager")
    with float32_attention(model) as switched:
        assert not switched and model.hf.config._attn_implementation == "eager"


# ---------------------------------------------------------------- dropout
@pytest.fixture(scope="module")
def make_dropout_model(tokenizer):
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128,
                        num_labels=1, hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3)

    def build(seed=0):
        torch.manual_seed(seed)
        return RewardModel(BertForSequenceClassification(config), tokenizer, max_length=64)

    return build


def _train_mode_margins(model, pairs, repeats=2):
    batch = pair_collator_for(model)(tokenize_pairs(pairs, model.tokenizer, 64)[0].to_list())
    model.train()
    with torch.no_grad():
        return [torch.sub(*model.pair_rewards(batch)) for _ in range(repeats)]


def test_dropout_puts_noise_into_the_margin_and_dropout_disabled_removes_it(make_dropout_model):
    model = make_dropout_model()
    pairs = make_pairs(8)
    first, second = _train_mode_margins(model, pairs)
    assert not torch.allclose(first, second), "dropout should draw new masks every forward"
    with dropout_disabled(model) as n_switched:
        assert n_switched == sum(isinstance(m, torch.nn.Dropout) for m in model.modules())
        first, second = _train_mode_margins(model, pairs)
    torch.testing.assert_close(first, second, rtol=0, atol=0)
    assert all(m.p == 0.3 for m in model.modules() if isinstance(m, torch.nn.Dropout))


def test_dropout_disabled_covers_decoder_attention_dropout():
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, num_key_value_heads=1, num_labels=1,
                         pad_token_id=0, attention_dropout=0.4)
    model = LlamaForSequenceClassification(config)
    attention = [m for m in model.modules() if hasattr(m, "attention_dropout")]
    assert attention and all(m.attention_dropout == 0.4 for m in attention)
    with dropout_disabled(model) as n_switched:
        assert n_switched == len(attention)
        assert all(m.attention_dropout == 0.0 for m in attention)
    assert all(m.attention_dropout == 0.4 for m in attention)


@pytest.mark.parametrize("disable", [True, False])
def test_training_runs_with_dropout_off_by_default_and_restores_it(make_dropout_model, disable):
    model = make_dropout_model()
    dropout = next(m for m in model.modules() if isinstance(m, torch.nn.Dropout))
    seen = []
    dropout.register_forward_hook(lambda module, args, out: seen.append((module.training, module.p)))
    config = quiet(lr=1e-3, batch_size=4, max_steps=2) if disable else \
        quiet(lr=1e-3, batch_size=4, max_steps=2, disable_dropout=False)
    assert TrainConfig().disable_dropout is True
    train_reward_model(model, make_pairs(8), None, config)
    rates = {p for training, p in seen if training}
    assert rates == ({0.0} if disable else {0.3})
    assert dropout.p == 0.3  # restored after training


def test_train_seconds_leave_validation_out(make_model, monkeypatch):
    import time

    import rmcourse.trainer as trainer

    real = trainer._evaluate_tokenized

    def slow_validation(*args, **kwargs):
        time.sleep(0.5)
        return real(*args, **kwargs)

    monkeypatch.setattr(trainer, "_evaluate_tokenized", slow_validation)
    start = time.perf_counter()
    result = train_reward_model(make_model(), make_pairs(16), make_pairs(4, seed=1),
                                quiet(lr=1e-3, batch_size=4, max_steps=3, eval_every=1))
    wall = time.perf_counter() - start
    assert result.history["val_accuracy"].notna().sum() == 3  # validated three times
    assert 0 < result.train_seconds < wall - 1.5
    assert result.pairs_per_second == pytest.approx(12 / result.train_seconds)


# ---------------------------------------------------------------- length-sorted forward chunks
def test_forward_chunk_size_auto_is_chunks_on_a_cpu_only():
    assert forward_chunk_size(TrainConfig(), "cpu") == 8
    assert forward_chunk_size(TrainConfig(), "cuda") is None
    assert forward_chunk_size(TrainConfig(), "cpu", world=2) is None  # DDP: one forward
    assert forward_chunk_size(TrainConfig(forward_chunk_size=None), "cpu") is None
    assert forward_chunk_size(TrainConfig(forward_chunk_size=3), "cuda") == 3


def test_chunked_rewards_and_gradients_equal_one_stacked_forward(make_model):
    model = make_model()
    model.train()  # the fixture has no dropout, so train mode is deterministic
    pairs, _ = tokenize_pairs(make_pairs(6, seed=4), model.tokenizer, 64)
    batch = pair_collator_for(model, 64)(list(pairs))
    lengths = batch["attention_mask"].sum(1)
    assert len(set(lengths.tolist())) > 1  # rows of different lengths: chunks differ from one pad
    grads = []
    for chunk in (None, 5, 1):
        model.zero_grad()
        rewards = stacked_rewards(model, batch, torch.device("cpu"), chunk)
        (rewards[:6] - rewards[6:]).pow(2).sum().backward()  # depends on which row is which
        grads.append((rewards.detach(), [p.grad.clone() for p in model.parameters()]))
    (r0, g0), *others = grads
    for r, g in others:
        torch.testing.assert_close(r, r0, atol=1e-5, rtol=1e-5)
        for a, b in zip(g, g0):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    # guard: the rows really were reordered for the forward and put back
    shuffled = stacked_rewards(model, {k: v.flip(0) for k, v in batch.items()}, "cpu", 5)
    torch.testing.assert_close(shuffled.detach().flip(0), r0, atol=1e-5, rtol=1e-5)


def test_training_with_and_without_chunks_gives_the_same_weights(make_model, sgd):
    pairs = make_pairs(12, seed=2)
    out = []
    for chunk in (None, 4):
        model = make_model()
        train_reward_model(model, pairs, None, quiet(lr=1.0, batch_size=6, max_steps=2, bf16=False,
                                                     forward_chunk_size=chunk))
        out.append({k: v.clone() for k, v in model.state_dict().items()})
    start = make_model().state_dict()
    for name in start:
        torch.testing.assert_close(out[1][name], out[0][name], atol=2e-5, rtol=1e-4,
                                   msg=f"parameter {name} differs")
    assert max(float((out[0][k] - start[k]).abs().max()) for k in start) > 1e-4  # it trained
