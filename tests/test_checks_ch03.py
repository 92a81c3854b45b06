"""Each chapter-03 checker accepts a correct solution and names the typical mistakes."""
import pytest
import torch
import torch.nn.functional as F

from rmcourse.checks import ch03
from rmcourse.pooling import last_token_pool


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def not_done(*args, **kwargs):
    raise NotImplementedError("exercise")


# --- last_token_pool ----------------------------------------------------------------------------
def test_last_token_pool_checker(capsys):
    ok, out = verdict(ch03.check_last_token_pool, last_token_pool, capsys)
    assert ok and out.startswith("✅")

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, -1], capsys)
    assert not ok and "under right padding" in out and "hidden[:, -1]" in out

    def by_count(hidden, mask):
        idx = mask.long().sum(1) - 1
        return hidden[torch.arange(hidden.shape[0]), idx]

    ok, out = verdict(ch03.check_last_token_pool, by_count, capsys)
    assert not ok and "under left padding" in out and "mask.sum() - 1" in out

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, 0], capsys)
    assert not ok and "first token" in out

    ok, out = verdict(ch03.check_last_token_pool, lambda h, m: h[:, -1:], capsys)
    assert not ok and "expected [3, 4]" in out

    ok, out = verdict(ch03.check_last_token_pool, not_done, capsys)
    assert not ok and out.startswith("⏳")


# --- stacked_rewards ----------------------------------------------------------------------------
def _pad_to(batch, length, pad_id):
    extra = length - batch["input_ids"].shape[1]
    return (F.pad(batch["input_ids"], (0, extra), value=pad_id),
            F.pad(batch["attention_mask"], (0, extra), value=0))


def stacked(model, chosen, rejected, pad_id):
    length = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
    c_ids, c_mask = _pad_to(chosen, length, pad_id)
    r_ids, r_mask = _pad_to(rejected, length, pad_id)
    rewards = model(torch.cat([c_ids, r_ids]), torch.cat([c_mask, r_mask]))
    b = c_ids.shape[0]
    return rewards[:b], rewards[b:]


def test_stacked_rewards_checker(capsys):
    ok, out = verdict(ch03.check_stacked_rewards, stacked, capsys)
    assert ok and out.startswith("✅")

    def two_calls(model, chosen, rejected, pad_id):
        return model(**chosen), model(**rejected)

    ok, out = verdict(ch03.check_stacked_rewards, two_calls, capsys)
    assert not ok and "called 2 times" in out

    def swapped(model, chosen, rejected, pad_id):
        c, r = stacked(model, chosen, rejected, pad_id)
        return r, c

    ok, out = verdict(ch03.check_stacked_rewards, swapped, capsys)
    assert not ok and "swapped" in out

    def mask_of_ones(model, chosen, rejected, pad_id):
        length = max(chosen["input_ids"].shape[1], rejected["input_ids"].shape[1])
        c_ids, c_mask = _pad_to(chosen, length, pad_id)
        r_ids, _ = _pad_to(rejected, length, pad_id)
        r_mask = F.pad(rejected["attention_mask"], (0, length - rejected["attention_mask"].shape[1]),
                       value=1)
        rewards = model(torch.cat([c_ids, r_ids]), torch.cat([c_mask, r_mask]))
        return rewards[:3], rewards[3:]

    ok, out = verdict(ch03.check_stacked_rewards, mask_of_ones, capsys)
    assert not ok and "rejected rewards" in out and "attention_mask 0" in out

    def no_padding(model, chosen, rejected, pad_id):
        rewards = model(torch.cat([chosen["input_ids"], rejected["input_ids"]]),
                        torch.cat([chosen["attention_mask"], rejected["attention_mask"]]))
        return rewards[:3], rewards[3:]

    ok, out = verdict(ch03.check_stacked_rewards, no_padding, capsys)
    assert not ok and "RuntimeError" in out  # torch.cat of different lengths, shown with its line

    ok, out = verdict(ch03.check_stacked_rewards, lambda *a: torch.zeros(6), capsys)
    assert not ok and "return a tuple" in out

    def zero_padding(model, chosen, rejected, pad_id):  # mask right, ids padded with 0
        return stacked(model, chosen, rejected, 0)

    ok, out = verdict(ch03.check_stacked_rewards, zero_padding, capsys)
    assert not ok and "not pad_id=7" in out and "rightmost id" in out


# --- mean_pool ------------------------------------------------------------------------------------
def mean_pool(hidden, mask):
    weights = mask.float().unsqueeze(-1)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1)


def test_mean_pool_checker(capsys):
    from rmcourse.pooling import mean_pool as course_mean_pool

    ok, out = verdict(ch03.check_mean_pool, mean_pool, capsys)
    assert ok and out.startswith("✅")
    ok, out = verdict(ch03.check_mean_pool, course_mean_pool, capsys)
    assert ok

    def m(mask):
        return mask.float().unsqueeze(-1)

    wrong = {
        "pads included": lambda h, mask: h.mean(dim=1),
        "divided by the full length": lambda h, mask: (h * m(mask)).sum(1) / mask.shape[1],
        "whole batch": lambda h, mask: (h * m(mask)).sum(1) / mask.sum(),
        "returned the sum": lambda h, mask: (h * m(mask)).sum(1),
        "first-token pooling": lambda h, mask: h[torch.arange(h.shape[0]), mask.long().argmax(1)],
        "expected [3, 4]": lambda h, mask: (h * m(mask)).sum(1, keepdim=True) / m(mask).sum(1, keepdim=True),
        "under right padding row 1 (mask [1, 1, 1, 1, 1])": lambda h, mask: h[:, : int(mask[0].sum())].mean(dim=1),
        "did you forget `return`": lambda h, mask: None,
    }
    for words, fn in wrong.items():
        ok, out = verdict(ch03.check_mean_pool, fn, capsys)
        assert not ok and words in out, (words, out)

    def integer_division(h, mask):  # a bool mask summed stays an integer count: still right
        return (h * mask.unsqueeze(-1)).sum(1) / mask.sum(1, keepdim=True)

    ok, out = verdict(ch03.check_mean_pool, integer_division, capsys)
    assert ok, out

    def detached(h, mask):
        return mean_pool(h.detach(), mask)

    ok, out = verdict(ch03.check_mean_pool, detached, capsys)
    assert not ok and "gradient" in out


# --- training_step ------------------------------------------------------------------------------
def training_step(model, batch, optimizer, scheduler, max_grad_norm):
    optimizer.zero_grad(set_to_none=True)
    rewards = model(**batch)
    b = rewards.shape[0] // 2
    loss = -F.logsigmoid(rewards[:b] - rewards[b:]).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


def test_trainer_replay_records_the_trainers_steps():
    replay = ch03.trainer_replay()
    assert len(replay["batches"]) == ch03.REPLAY_STEPS == len(replay["losses"])
    batch = replay["batches"][0]
    assert batch["input_ids"].shape[0] == 2 * replay["config"].batch_size  # stacked chosen+rejected
    lrs = replay["lrs"]
    assert lrs[0] < lrs[1] > lrs[2] > lrs[3]  # warmup, then cosine decay: order matters


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch warns about the mistakes on purpose
def test_training_step_checker(capsys):
    from rmcourse.losses import pairwise_loss

    ok, out = verdict(ch03.check_training_step, training_step, capsys)
    assert ok and out.startswith("✅"), out

    def with_course_loss(model, batch, optimizer, scheduler, max_grad_norm):
        optimizer.zero_grad()
        rewards = model(**batch)
        b = len(rewards) // 2
        loss = pairwise_loss(rewards[:b], rewards[b:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad],
                                       max_grad_norm)
        optimizer.step()
        scheduler.step()
        return loss  # a 0-d tensor is fine too

    ok, out = verdict(ch03.check_training_step, with_course_loss, capsys)
    assert ok, out

    def variant(**mistakes):
        def step(model, batch, optimizer, scheduler, max_grad_norm):
            if not mistakes.get("no_zero"):
                optimizer.zero_grad(set_to_none=True)
            if mistakes.get("no_token_type_ids"):
                rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            else:
                rewards = model(**batch)
            b = rewards.shape[0] // 2
            chosen, rejected = rewards[:b], rewards[b:]
            if mistakes.get("interleave"):
                chosen, rejected = rewards[0::2], rewards[1::2]
            if mistakes.get("sign"):
                chosen, rejected = rejected, chosen
            per_pair = -F.logsigmoid(chosen - rejected)
            loss = per_pair.sum() if mistakes.get("sum") else per_pair.mean()
            loss.backward()
            if mistakes.get("schedule_first"):
                scheduler.step()
            if not mistakes.get("no_clip") and not mistakes.get("clip_late"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if not mistakes.get("no_step"):
                optimizer.step()
            if mistakes.get("clip_late"):
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            if not mistakes.get("schedule_first") and not mistakes.get("no_schedule"):
                scheduler.step()
            if mistakes.get("loss_after"):
                again = model(**batch)
                return float(-F.logsigmoid(again[:b] - again[b:]).mean())
            return float(loss)
        return step

    expectations = {
        "no_zero": "zero_grad",
        "no_clip": "unclipped gradient",
        "clip_late": "BEFORE optimizer.step()",
        "no_schedule": "learning rate never changed",
        "schedule_first": "step the optimizer first",
        "sign": "wrong side",
        "sum": "summed the per-pair losses",
        "interleave": "B chosen rows first",
        "no_step": "weights never changed",
        "loss_after": "computed before the update",
        "no_token_type_ids": "token_type_ids",
    }
    for mistake, words in expectations.items():
        ok, out = verdict(ch03.check_training_step, variant(**{mistake: True}), capsys)
        assert not ok and words in out, (mistake, out)

    ok, out = verdict(ch03.check_training_step, lambda *a: None, capsys)
    assert not ok and "returned None" in out
    ok, out = verdict(ch03.check_training_step, not_done, capsys)
    assert not ok and out.startswith("⏳")


def _step_with(loss_of):
    def step(model, batch, optimizer, scheduler, max_grad_norm):
        optimizer.zero_grad(set_to_none=True)
        rewards = model(**batch)
        b = rewards.shape[0] // 2
        loss = loss_of(rewards[:b], rewards[b:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
        return loss.item()
    return step


def _bce_form(chosen, rejected):
    from rmcourse.losses import bce_form_loss

    return bce_form_loss(chosen, rejected)


def _two_forwards(model, batch, optimizer, scheduler, max_grad_norm):
    """Chosen and rejected halves through the model separately: the same step (dropout is off)."""
    optimizer.zero_grad(set_to_none=True)
    b = batch["input_ids"].shape[0] // 2
    chosen = model(**{k: v[:b] for k, v in batch.items()})
    rejected = model(**{k: v[b:] for k, v in batch.items()})
    loss = -F.logsigmoid(chosen - rejected).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    return loss.item()


def test_training_step_checker_accepts_two_forwards(capsys):
    # Slower, but not wrong: with dropout off, two forwards over the halves of the stacked batch
    # give the same rewards (the halves keep the batch's padding), so the checker must pass it.
    ok, out = verdict(ch03.check_training_step, _two_forwards, capsys)
    assert ok and out.startswith("✅"), out


# The loss forms chapter 01 teaches as the same number: each must pass (they round differently,
# and AdamW turns the rounding into small weight differences the checker must tolerate).
@pytest.mark.parametrize("loss_of", [
    lambda c, r: F.softplus(-(c - r)).mean(),
    lambda c, r: F.binary_cross_entropy_with_logits(c - r, torch.ones_like(c)),
    lambda c, r: torch.nn.BCEWithLogitsLoss()(c - r, torch.ones_like(c)),
    _bce_form,
], ids=["softplus", "bce_with_logits", "BCEWithLogitsLoss", "bce_form_loss"])
def test_training_step_checker_accepts_equivalent_loss_forms(loss_of, capsys):
    ok, out = verdict(ch03.check_training_step, _step_with(loss_of), capsys)
    assert ok and out.startswith("✅"), out


# --- dead_parameter_count -----------------------------------------------------------------------
def dead_count(model, batch):
    model.zero_grad(set_to_none=True)
    model(**batch).sum().backward()
    return sum(p.numel() for p in model.parameters()
               if p.grad is None or not bool(p.grad.any()))


def test_tiny_seed_model_expected_count_is_pooler_plus_classifier():
    model, batch, expected = ch03.tiny_seed_model()
    hidden = model.backbone.config.hidden_size
    assert expected == (hidden * hidden + hidden) + (hidden + 1)
    assert model(**batch).shape == (4,)


def test_dead_parameter_count_checker(capsys):
    ok, out = verdict(ch03.check_dead_parameter_count, dead_count, capsys)
    assert ok and out.startswith("✅")

    def tensors(model, batch):
        model.zero_grad(set_to_none=True)
        model(**batch).sum().backward()
        return sum(1 for p in model.parameters() if p.grad is None)

    ok, out = verdict(ch03.check_dead_parameter_count, tensors, capsys)
    assert not ok and ".numel()" in out

    def head_only(model, batch):
        return sum(p.numel() for p in model.backbone.classifier.parameters())

    ok, out = verdict(ch03.check_dead_parameter_count, head_only, capsys)
    assert not ok and "pooler" in out

    def everything(model, batch):
        return sum(p.numel() for p in model.parameters())

    ok, out = verdict(ch03.check_dead_parameter_count, everything, capsys)
    assert not ok and "every parameter" in out

    def stale(model, batch):
        model(**batch).sum().backward()  # no zero_grad: old gradients hide dead weights
        return sum(p.numel() for p in model.parameters()
                   if p.grad is None or not bool(p.grad.any()))

    ok, out = verdict(ch03.check_dead_parameter_count, stale, capsys)
    assert not ok and "stale gradients" in out


def _freeze(model, n_layers, embeddings=True, count_tensors=False, top=False):
    bert = model.bert
    layers = list(bert.encoder.layer)
    chosen = layers[-n_layers:] if top and n_layers else layers[:n_layers]
    modules = ([bert.embeddings] if embeddings else []) + chosen
    params = [p for m in modules for p in m.parameters()]
    for p in params:
        p.requires_grad_(False)
    return len(params) if count_tensors else sum(p.numel() for p in params)


def test_freeze_bottom_checker(capsys):
    from rmcourse.freezing import freeze_lower_layers

    assert ch03.check_freeze_bottom(freeze_lower_layers) is True  # the course's own version
    assert ch03.check_freeze_bottom(_freeze) is True
    assert "✅ freeze_bottom" in capsys.readouterr().out
    for wrong, words in [
        (lambda m, n: _freeze(m, n, top=True), "was frozen too"),
        (lambda m, n: _freeze(m, n, embeddings=False), "still has requires_grad=True"),
        (lambda m, n: _freeze(m, n, count_tensors=True), "parameter TENSORS"),
        (lambda m, n: None if _freeze(m, n) else None, "did you forget `return`"),
    ]:
        assert ch03.check_freeze_bottom(wrong) is False
        assert words in capsys.readouterr().out
