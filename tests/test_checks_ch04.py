"""Each chapter-04 checker accepts a correct solution and rejects typical mistakes by name."""
from __future__ import annotations

import random

import torch

from rmcourse.checks import ch04
from rmcourse.losses import pairwise_loss
from rmcourse.throughput import activation_memory
from rmcourse.tokenization import length_grouped_batches, padding_fraction


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


# --- stacked_rewards ----------------------------------------------------------------------------
def _padded(rows, pad_id, side="right"):
    width = max(len(r) for r in rows)
    pad = lambda r: [pad_id] * (width - len(r))
    ids = [list(r) + pad(r) if side == "right" else pad(r) + list(r) for r in rows]
    mask = [[1] * len(r) + [0] * (width - len(r)) if side == "right" else
            [0] * (width - len(r)) + [1] * len(r) for r in rows]
    return torch.tensor(ids), torch.tensor(mask)


def _stacked(model, chosen_ids, rejected_ids, pad_id):
    ids, mask = _padded(list(chosen_ids) + list(rejected_ids), pad_id)
    rewards = model(input_ids=ids, attention_mask=mask)
    b = len(chosen_ids)
    return rewards[:b], rewards[b:]


def test_stacked_rewards_checker(capsys):
    ok, out = verdict(ch04.check_stacked_rewards, _stacked, capsys)
    assert ok and out.startswith("✅")

    def two_forwards(model, chosen_ids, rejected_ids, pad_id):
        return (model(*_padded(chosen_ids, pad_id)), model(*_padded(rejected_ids, pad_id)))

    ok, out = verdict(ch04.check_stacked_rewards, two_forwards, capsys)
    assert not ok and "called 2 times" in out

    def swapped(model, chosen_ids, rejected_ids, pad_id):
        c, r = _stacked(model, chosen_ids, rejected_ids, pad_id)
        return r, c

    ok, out = verdict(ch04.check_stacked_rewards, swapped, capsys)
    assert not ok and "swapped" in out

    def pads_with_zero(model, chosen_ids, rejected_ids, pad_id):  # BERT's [PAD], not the given id
        return _stacked(model, chosen_ids, rejected_ids, 0)

    ok, out = verdict(ch04.check_stacked_rewards, pads_with_zero, capsys)
    assert not ok and "pad_id is 3" in out and "last real token" in out

    def no_mask(model, chosen_ids, rejected_ids, pad_id):
        ids, mask = _padded(list(chosen_ids) + list(rejected_ids), pad_id)
        rewards = model(input_ids=ids, attention_mask=torch.ones_like(mask))
        return rewards[:len(chosen_ids)], rewards[len(chosen_ids):]

    ok, out = verdict(ch04.check_stacked_rewards, no_mask, capsys)
    assert not ok and "attention_mask must be 1 on each row's real tokens" in out

    def fixed_width(model, chosen_ids, rejected_ids, pad_id):
        rows = [list(r) + [pad_id] * (192 - len(r)) for r in list(chosen_ids) + list(rejected_ids)]
        mask = [[int(t != pad_id) for t in r] for r in rows]
        rewards = model(input_ids=torch.tensor(rows), attention_mask=torch.tensor(mask))
        return rewards[:len(chosen_ids)], rewards[len(chosen_ids):]

    ok, out = verdict(ch04.check_stacked_rewards, fixed_width, capsys)
    assert not ok and "not to a fixed length" in out

    def left_padded(model, chosen_ids, rejected_ids, pad_id):
        ids, mask = _padded(list(chosen_ids) + list(rejected_ids), pad_id, side="left")
        rewards = model(input_ids=ids, attention_mask=mask)
        return rewards[:len(chosen_ids)], rewards[len(chosen_ids):]

    ok, out = verdict(ch04.check_stacked_rewards, left_padded, capsys)
    assert not ok and "pad on the right" in out

    def calls_pair_rewards(model, chosen_ids, rejected_ids, pad_id):
        ids, mask = _padded(list(chosen_ids) + list(rejected_ids), pad_id)
        return model.pair_rewards({"input_ids": ids, "attention_mask": mask})

    ok, out = verdict(ch04.check_stacked_rewards, calls_pair_rewards, capsys)
    assert not ok and "model.pair_rewards is the course's finished version" in out

    def unfinished(model, chosen_ids, rejected_ids, pad_id):
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


# --- flops_utilization --------------------------------------------------------------------------
def _flops(count_embeddings=False, count_padding=False, per_token=6, hfu_recompute=8, mfu_recompute=6):
    def fn(model, masks, seconds, peak, recompute_forward=False):
        skip = set() if count_embeddings else {
            id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
        n = sum(p.numel() for p in model.parameters() if id(p) not in skip)
        tokens = sum(m.numel() if count_padding else int(m.sum()) for m in masks)
        rate = n * tokens / seconds / peak
        mfu = (mfu_recompute if recompute_forward else per_token) * rate
        hfu = (hfu_recompute if recompute_forward else per_token) * rate
        return mfu, hfu
    return fn


def test_flops_utilization_checker(capsys):
    ok, out = verdict(ch04.check_flops_utilization, _flops(), capsys)
    assert ok and out.startswith("✅")
    for wrong, message in [
        (_flops(count_embeddings=True), "counted the embedding tables"),
        (_flops(count_padding=True), "counted padded positions"),
        (_flops(per_token=2), "forward pass only"),
        (_flops(per_token=8), "MFU counts the 6 N"),
        (_flops(hfu_recompute=6), "the hardware runs the forward twice"),
        (_flops(mfu_recompute=8), "MFU must not change"),
    ]:
        ok, out = verdict(ch04.check_flops_utilization, wrong, capsys)
        assert not ok and message in out, (message, out)
    ok, out = verdict(ch04.check_flops_utilization, lambda *a, **k: 0.5, capsys)
    assert not ok and "return a pair (mfu, hfu)" in out


# --- training_memory ----------------------------------------------------------------------------
def _one_forward(model, batch, device):
    rewards = model(**batch)
    return rewards, rewards[:0]


def _memory(weights_trainable_only=False, grads_all=False, adam_factor=2, adam_all=False,
            act="right"):
    def fn(model, batch):
        size = lambda p: p.numel() * p.element_size()
        params = list(model.parameters())
        trainable = [p for p in params if p.requires_grad]
        weights = sum(size(p) for p in (trainable if weights_trainable_only else params))
        grads = sum(size(p) for p in (params if grads_all else trainable))
        adam = adam_factor * sum(size(p) for p in (params if adam_all else trainable))
        if act == "no_grad":
            with torch.no_grad():
                activations = activation_memory(model, batch, _one_forward)
        elif act == "right":
            activations = activation_memory(model, batch, _one_forward)
        else:
            ptrs = {p.untyped_storage().data_ptr() for p in params}
            seen, total = {}, [0]

            def pack(t):
                s = t.untyped_storage()
                if act == "with_params":
                    seen[s.data_ptr()] = s.nbytes()
                elif act == "numel" and s.data_ptr() not in ptrs:
                    seen[s.data_ptr()] = t.numel()
                elif act == "no_dedupe" and s.data_ptr() not in ptrs:
                    total[0] += s.nbytes()
                return t

            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                model(**batch)
            activations = sum(seen.values()) + total[0]
        return {"weights": weights, "gradients": grads, "adamw": adam, "activations": activations}
    return fn


def test_training_memory_checker(capsys):
    ok, out = verdict(ch04.check_training_memory, _memory(), capsys)
    assert ok and out.startswith("✅"), out
    for wrong, message in [
        (_memory(weights_trainable_only=True), "frozen parameters (here the embeddings) are in memory"),
        (_memory(grads_all=True), "a frozen parameter (requires_grad=False) gets no .grad"),
        (_memory(adam_factor=1), "TWO tensors per trainable parameter"),
        (_memory(adam_all=True), "frozen ones have none"),
        (_memory(act="no_grad"), "autograd saves nothing"),
        (_memory(act="with_params"), "you counted weights"),
        (_memory(act="numel"), "count bytes (numel x element_size), not elements"),
        (_memory(act="no_dedupe"), "count each storage once"),
    ]:
        ok, out = verdict(ch04.check_training_memory, wrong, capsys)
        assert not ok and message in out, (message, out)
    ok, out = verdict(ch04.check_training_memory, lambda model, batch: {"weights": 1}, capsys)
    assert not ok and "missing ['gradients', 'adamw', 'activations']" in out


def test_activation_memory_is_the_saved_non_parameter_storages():
    model, batch = ch04._wide()
    model.train()
    measured = activation_memory(model, batch, _one_forward)
    assert measured > 0
    with torch.no_grad():
        assert activation_memory(model, batch, _one_forward) == 0


# --- length_grouped_batches ---------------------------------------------------------------------
def test_length_grouped_batches_checker(capsys):
    ok, out = verdict(ch04.check_length_grouped_batches,
                      lambda lengths, bs, seed: length_grouped_batches(lengths, bs, seed=seed), capsys)
    assert ok and out.startswith("✅")

    def transformers_sampler(lengths, bs, seed):  # mega-batches longest first, not shuffled
        from transformers.trainer_pt_utils import get_length_grouped_indices

        order = get_length_grouped_indices(lengths, bs, mega_batch_mult=50,
                                           generator=torch.Generator().manual_seed(seed))
        return [order[i:i + bs] for i in range(0, len(order), bs)]

    ok, out = verdict(ch04.check_length_grouped_batches, transformers_sampler, capsys)
    assert ok and out.startswith("✅"), "transformers' own sampler is a valid answer"

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

    def global_sort_shuffled_order(lengths, bs, seed):  # the review's gap: same rows every epoch
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        random.Random(seed).shuffle(batches)
        return batches

    ok, out = verdict(ch04.check_length_grouped_batches, global_sort_shuffled_order, capsys)
    assert not ok and "only reorders the same batches" in out

    def shuffle_then_stable_global_sort(lengths, bs, seed):  # the second review's gap (N3)
        order = list(range(len(lengths)))
        random.Random(seed).shuffle(order)
        order.sort(key=lambda i: -lengths[i])  # stable: ties keep the shuffled order
        batches = [order[i:i + bs] for i in range(0, len(order), bs)]
        random.Random(seed).shuffle(batches)
        return batches

    ok, out = verdict(ch04.check_length_grouped_batches, shuffle_then_stable_global_sort, capsys)
    assert not ok and ("only reorders the same batches" in out or "barely change" in out), out

    def sorted_megabatches_in_sorted_order(lengths, bs, seed):  # all long batches first
        batches = length_grouped_batches(lengths, bs, seed=seed)
        return sorted(batches, key=lambda b: -max(lengths[i] for i in b))

    ok, out = verdict(ch04.check_length_grouped_batches, sorted_megabatches_in_sorted_order, capsys)
    assert not ok and "longest to shortest over the whole epoch" in out

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


# --- pair_mask_and_positions --------------------------------------------------------------------
def _pair_loop(s, a, b, width):
    """The same contract built entry by entry, the way a learner may write it."""
    real = s + a + b
    segment = [0] * s + [1] * a + [2] * b + [3] * (width - real)
    mask = torch.zeros(width, width, dtype=torch.bool)
    for i in range(width):
        for j in range(width):
            if segment[i] == 3:
                mask[i, j] = i == j
            elif j <= i and (segment[j] == 0 or segment[j] == segment[i]):
                mask[i, j] = True
    positions = [p for p in range(s + a)] + [s + k for k in range(b)] + [0] * (width - real)
    return mask, torch.tensor(positions)


def _pair(**change):
    """The reference with one thing changed (each keyword a function of (mask, positions, s, a, b,
    width) that edits them in place or returns a replacement pair)."""
    from rmcourse.prefix_sharing import pair_mask_and_positions

    def fn(s, a, b, width):
        mask, positions = pair_mask_and_positions(s, a, b, width)
        for edit in change.values():
            out = edit(mask, positions, s, a, b, width)
            if out is not None:
                mask, positions = out
        return mask, positions
    return fn


def test_pair_mask_and_positions_accepts_correct_forms(capsys):
    from rmcourse.prefix_sharing import pair_mask_and_positions

    def pads_see_everything_before(mask, positions, s, a, b, width):
        for i in range(s + a + b, width):
            mask[i, :i + 1] = True

    def pads_see_all(mask, positions, s, a, b, width):
        mask[s + a + b:] = True

    def odd_pad_positions(mask, positions, s, a, b, width):
        positions[s + a + b:] = torch.arange(s + a + b, width) + 7

    for fn in (pair_mask_and_positions, _pair_loop,
               _pair(ints=lambda m, p, *_: (m.long(), p)),
               _pair(floats=lambda m, p, *_: (m.float(), p)),
               _pair(int32=lambda m, p, *_: (m.to(torch.uint8), p.int())),
               _pair(pads=pads_see_everything_before), _pair(pads=pads_see_all),
               _pair(positions=odd_pad_positions),
               _pair(as_lists=lambda m, p, *_: (m.tolist(), p.tolist())),
               _pair(as_numpy=lambda m, p, *_: (m.numpy(), p.numpy()))):
        ok, out = verdict(ch04.check_pair_mask_and_positions, fn, capsys)
        assert ok and out.startswith("✅"), out


def test_pair_mask_and_positions_names_each_mistake(capsys):
    tril = lambda n: torch.ones(n, n, dtype=torch.bool).tril()

    def leak(mask, positions, s, a, b, width):  # plain causal over the real tokens
        mask[s + a:s + a + b, s:s + a] = tril(s + a + b)[s + a:, s:s + a]

    def not_causal(mask, positions, s, a, b, width):  # the blocks are full, not triangular
        c, r = s + a, s + a + b
        mask[:s, :s] = True
        mask[s:c, s:c] = True
        mask[c:r, c:r] = True

    def transposed(mask, positions, s, a, b, width):
        return mask.T.contiguous(), positions

    def strictly_causal(mask, positions, s, a, b, width):
        idx = torch.arange(s + a + b)
        mask[idx, idx] = False

    def tail_without_prompt(mask, positions, s, a, b, width):
        mask[s + a:s + a + b, :s] = False

    def prompt_diagonal_only(mask, positions, s, a, b, width):
        mask[:s, :s] = torch.eye(s, dtype=torch.bool)

    def chosen_diagonal_only(mask, positions, s, a, b, width):
        mask[s:s + a, s:s + a] = torch.eye(a, dtype=torch.bool)

    def sees_padding(mask, positions, s, a, b, width):
        mask[:s + a + b, s + a + b:] = True

    def empty_pad_rows(mask, positions, s, a, b, width):
        mask[s + a + b:] = False

    def continued(mask, positions, s, a, b, width):
        positions[:s + a + b] = torch.arange(s + a + b)

    def restart(offset):
        def fn(mask, positions, s, a, b, width):
            positions[s + a:s + a + b] = torch.arange(s + offset, s + offset + b)
        return fn

    def from_one(mask, positions, s, a, b, width):
        positions[:s + a + b] += 1

    def additive(mask, positions, s, a, b, width):
        return torch.zeros(mask.shape).masked_fill(~mask, float("-inf")), positions

    def real_width(mask, positions, s, a, b, width):
        n = s + a + b
        return mask[:n, :n], positions[:n]

    for wrong, messages in [
        (_pair(e=leak), ["the rejected tail sees the chosen tail", "leak",
                         "differ from the two unpacked forwards"]),
        (_pair(e=not_causal), ["not causal", "comes after it"]),
        (_pair(e=transposed), ["transposed"]),
        (_pair(e=strictly_causal), ["does not attend to itself"]),
        (_pair(e=tail_without_prompt), ["rejected tail", "must see the whole shared prompt"]),
        (_pair(e=prompt_diagonal_only), ["shared prompt's own block must be causal"]),
        (_pair(e=chosen_diagonal_only), ["chosen tail", "its own earlier tokens"]),
        (_pair(e=sees_padding), ["must never see padding"]),
        (_pair(e=empty_pad_rows), ["attends to nothing", "NaN", "poisons the weight gradients"]),
        (_pair(e=continued), ["continue after the chosen tail", "n_shared + n_chosen = 7"]),
        (_pair(e=restart(-1)), ["n_shared - 1 = 3", "one too early"]),
        (_pair(e=restart(1)), ["n_shared + 1 = 5", "one too late"]),
        (_pair(e=from_one), ["start at 1"]),
        (_pair(e=lambda m, p, *_: (m, p.float())), ["return integers (torch.long)"]),
        (_pair(e=additive), ["additive form"]),
        (_pair(e=real_width), ["the real tokens only", "[11, 11]"]),
        (_pair(e=lambda m, p, *_: (p, m)), ["return (mask, positions)"]),
        (_pair(e=lambda m, p, *_: (m * 2, p)), ["True/False (or 1/0)"]),
    ]:
        ok, out = verdict(ch04.check_pair_mask_and_positions, wrong, capsys)
        assert not ok and all(m in out for m in messages), (messages, out)

    ok, out = verdict(ch04.check_pair_mask_and_positions, lambda s, a, b, w: None, capsys)
    assert not ok and "forget `return`" in out

    def unfinished(s, a, b, width):
        raise NotImplementedError

    ok, out = verdict(ch04.check_pair_mask_and_positions, unfinished, capsys)
    assert not ok and out.startswith("⏳")


def test_pair_mask_and_positions_checker_covers_the_edge_shapes():
    shapes = ch04._PAIR_SHAPES
    assert any(s == 0 for s, *_ in shapes) and any(s > 0 for s, *_ in shapes)
    assert any(a == 1 for _, a, _, _ in shapes) and any(b == 1 for _, _, b, _ in shapes)
    assert any(s + a + b == w for s, a, b, w in shapes)
    assert any(s + a + b < w for s, a, b, w in shapes)
