"""Each chapter-04 checker accepts a correct solution and rejects typical mistakes by name."""
from __future__ import annotations

import random

import torch

from rmcourse.checks import ch04
from rmcourse.losses import pairwise_loss
from rmcourse.tokenization import length_grouped_batches, padding_fraction


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


# --- stacked_rewards ----------------------------------------------------------------------------
def _stacked(model, batch):
    b = batch["input_ids"].shape[0] // 2
    rewards = model(**batch)
    return rewards[:b], rewards[b:]


def test_stacked_rewards_checker(capsys):
    ok, out = verdict(ch04.check_stacked_rewards, _stacked, capsys)
    assert ok and out.startswith("✅")

    def two_forwards(model, batch):
        b = batch["input_ids"].shape[0] // 2
        halves = [{k: v[s] for k, v in batch.items()} for s in (slice(0, b), slice(b, None))]
        return model(**halves[0]), model(**halves[1])

    ok, out = verdict(ch04.check_stacked_rewards, two_forwards, capsys)
    assert not ok and "called 2 times" in out

    def swapped(model, batch):
        c, r = _stacked(model, batch)
        return r, c

    ok, out = verdict(ch04.check_stacked_rewards, swapped, capsys)
    assert not ok and "swapped" in out

    def no_types(model, batch):
        b = batch["input_ids"].shape[0] // 2
        rewards = model(batch["input_ids"], batch["attention_mask"])
        return rewards[:b], rewards[b:]

    ok, out = verdict(ch04.check_stacked_rewards, no_types, capsys)
    assert not ok and "token_type_ids" in out

    def unfinished(model, batch):
        raise NotImplementedError

    ok, out = verdict(ch04.check_stacked_rewards, unfinished, capsys)
    assert not ok and out.startswith("⏳")


# --- padding_waste ------------------------------------------------------------------------------
def test_padding_waste_checker(capsys):
    ok, out = verdict(ch04.check_padding_waste, padding_fraction, capsys)
    assert ok and out.startswith("✅")

    def global_max(lengths, batches):  # pads every batch to the longest row overall
        rows = [i for b in batches for i in b]
        return 1 - sum(lengths[i] for i in rows) / (max(lengths) * len(rows))

    ok, out = verdict(ch04.check_padding_waste, global_max, capsys)
    assert not ok and "ITS longest row" in out

    ok, out = verdict(ch04.check_padding_waste, lambda lengths, batches: None, capsys)
    assert not ok and "forget `return`" in out

    def real_share(lengths, batches):  # returns the useful share instead of the waste
        return 1 - padding_fraction(lengths, batches)

    ok, out = verdict(ch04.check_padding_waste, real_share, capsys)
    assert not ok and "expected 0.333" in out


# --- real_tokens_per_second ---------------------------------------------------------------------
def test_real_tokens_per_second_checker(capsys):
    def right(masks, seconds):
        return sum(int(m.sum()) for m in masks) / seconds

    ok, out = verdict(ch04.check_real_tokens_per_second, right, capsys)
    assert ok and out.startswith("✅")

    def padded(masks, seconds):
        return sum(m.numel() for m in masks) / seconds

    ok, out = verdict(ch04.check_real_tokens_per_second, padded, capsys)
    assert not ok and "padded positions" in out

    ok, out = verdict(ch04.check_real_tokens_per_second, lambda m, s: sum(int(x.sum()) for x in m), capsys)
    assert not ok and "expected 4.0 tokens/s" in out


# --- length_grouped_batches ---------------------------------------------------------------------
def test_length_grouped_batches_checker(capsys):
    ok, out = verdict(ch04.check_length_grouped_batches,
                      lambda lengths, bs, seed: length_grouped_batches(lengths, bs, seed=seed), capsys)
    assert ok and out.startswith("✅")

    def shuffled_only(lengths, bs, seed):
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    ok, out = verdict(ch04.check_length_grouped_batches, shuffled_only, capsys)
    assert not ok and "not much below random" in out

    def sorted_no_shuffle(lengths, bs, seed):
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    ok, out = verdict(ch04.check_length_grouped_batches, sorted_no_shuffle, capsys)
    assert not ok and "different seed gives identical batches" in out

    def loses_rows(lengths, bs, seed):
        return length_grouped_batches(lengths, bs, seed=seed)[:-1]

    ok, out = verdict(ch04.check_length_grouped_batches, loses_rows, capsys)
    assert not ok and "exactly once" in out


# --- accumulate_gradients -----------------------------------------------------------------------
def _accumulate(weighting):
    def fn(model, micro_batches):
        total = sum(m["input_ids"].shape[0] // 2 for m in micro_batches)
        for batch in micro_batches:
            b = batch["input_ids"].shape[0] // 2
            rewards = model(**batch)
            loss = pairwise_loss(rewards[:b], rewards[b:])
            (loss * weighting(b, total, len(micro_batches))).backward()
    return fn


def test_accumulate_gradients_checker(capsys):
    ok, out = verdict(ch04.check_accumulate_gradients, _accumulate(lambda b, n, k: b / n), capsys)
    assert ok and out.startswith("✅")

    ok, out = verdict(ch04.check_accumulate_gradients, _accumulate(lambda b, n, k: 1 / k), capsys)
    assert not ok and "weight each mean loss by b / 8" in out and "not 1 / 3" in out

    ok, out = verdict(ch04.check_accumulate_gradients, _accumulate(lambda b, n, k: 1.0), capsys)
    assert not ok and "too large" in out

    def zeroes_between(model, micro_batches):
        total = sum(m["input_ids"].shape[0] // 2 for m in micro_batches)
        for batch in micro_batches:
            model.zero_grad(set_to_none=True)  # wipes what the earlier micro-batches added
            b = batch["input_ids"].shape[0] // 2
            rewards = model(**batch)
            (pairwise_loss(rewards[:b], rewards[b:]) * b / total).backward()

    ok, out = verdict(ch04.check_accumulate_gradients, zeroes_between, capsys)
    assert not ok and "do not zero the gradients" in out
