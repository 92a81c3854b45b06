"""Checkers for chapter 04 (training fast). Each takes the learner's function and prints a verdict.

The model-based checks use a tiny randomly initialised BERT (2 layers, width 32, dropout off) with
MiniLM's tokenizer and a few preference-world pairs, so they run in about a second and compare
against `rmcourse.throughput` / `rmcourse.tokenization`.
"""
from __future__ import annotations

import functools
import random
from typing import Any, Callable

import torch

from rmcourse.checking import check, expect

__all__ = [
    "check_stacked_rewards",
    "check_padding_waste",
    "check_real_tokens_per_second",
    "check_length_grouped_batches",
    "check_accumulate_gradients",
]


@functools.lru_cache(maxsize=1)
def _tiny() -> tuple[Any, list[dict], Any]:
    """(tiny RewardModel on CPU, 8 tokenized pair rows, PairCollator)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from rmcourse.models import RewardModel, bundled_model_path, quiet_transformers
    from rmcourse.tokenization import PairCollator, tokenize_pairs
    from rmcourse.world import PreferenceWorld

    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(bundled_model_path("minilm")[0])
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=256,
                        num_labels=1, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(4)
        model = RewardModel(BertForSequenceClassification(config), tokenizer)
    tok, _ = tokenize_pairs(PreferenceWorld(0).pairs("train", 8), tokenizer, 192)
    columns = [c for c in tok.column_names if c.endswith(("_input_ids", "_token_type_ids"))]
    return model, tok.select_columns(columns).to_list(), PairCollator(tokenizer, 192)


class _CountingModel(torch.nn.Module):
    """Wraps a model and counts forward calls (to tell one stacked forward from two)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.calls = 0

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        self.calls += 1
        return self.inner(*args, **kwargs)


def _pair(out: Any, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    expect(out is not None, f"{what} returned None: did you forget `return`?")
    expect(isinstance(out, (tuple, list)) and len(out) == 2,
           f"{what} must return a pair (chosen_rewards, rejected_rewards), got {type(out).__name__}")
    chosen, rejected = out
    expect(isinstance(chosen, torch.Tensor) and isinstance(rejected, torch.Tensor),
           f"{what} must return two tensors")
    return chosen, rejected


# ----------------------------------------------------------------------------------------------
def check_stacked_rewards(fn: Callable) -> bool:
    """Exercise: stacked_rewards(model, batch) -> (chosen, rejected) from ONE forward pass."""

    def test() -> None:
        from rmcourse.throughput import stacked_forward

        model, rows, collate = _tiny()
        model.eval()
        batch = collate(rows[:4])
        counted = _CountingModel(model)
        with torch.no_grad():
            chosen, rejected = _pair(fn(counted, batch), "stacked_rewards")
            want_c, want_r = stacked_forward(model, batch)
        expect(counted.calls == 1, f"the model was called {counted.calls} times; stack chosen and "
                                   "rejected into ONE forward over the whole [2B, L] batch")
        expect(tuple(chosen.shape) == (4,) and tuple(rejected.shape) == (4,),
               f"expected 4 chosen and 4 rejected rewards, got shapes {tuple(chosen.shape)} and "
               f"{tuple(rejected.shape)}: rows 0..B-1 are chosen, rows B..2B-1 rejected")
        if torch.allclose(chosen, want_r, atol=1e-5) and torch.allclose(rejected, want_c, atol=1e-5):
            raise AssertionError("chosen and rejected are swapped: the collator puts the B chosen "
                                 "rows FIRST")
        close = torch.allclose(chosen, want_c, atol=1e-5) and torch.allclose(rejected, want_r, atol=1e-5)
        if not close and "token_type_ids" in batch:
            no_types = model(batch["input_ids"], batch["attention_mask"])
            if torch.allclose(chosen, no_types[:4], atol=1e-5):
                raise AssertionError("rewards differ from the reference: pass the batch's "
                                     "token_type_ids too (BERT marks the response as segment 1)")
        expect(close, f"rewards differ from the reference: got chosen {chosen.tolist()}, "
                      f"expected {want_c.tolist()}")

    return check("stacked_rewards", test)


# ----------------------------------------------------------------------------------------------
def check_padding_waste(fn: Callable) -> bool:
    """Exercise: padding_waste(lengths, batches) -> share of padded positions (each batch padded
    to its own longest row)."""

    def test() -> None:
        from rmcourse.tokenization import padding_fraction

        got = fn([3, 1], [[0, 1]])
        expect(got is not None, "padding_waste returned None: did you forget `return`?")
        expect(isinstance(got, (float, int)) and not isinstance(got, bool),
               f"padding_waste must return a float, got {type(got).__name__}")
        expect(abs(got - 2 / 6) < 1e-9, f"lengths [3, 1] in one batch pad to 3 x 2 = 6 positions, "
                                        f"2 of them padding: expected 0.333, got {got:.4g}")
        one_batch = fn([10, 1, 10, 1], [[1, 3], [0, 2]])
        expect(abs(one_batch) < 1e-12,
               f"batches [1, 1] and [10, 10] pad nothing (each batch pads to ITS longest row, "
               f"not the longest overall); got {one_batch:.4g}")
        expect(abs(fn([5, 5, 2], [[0, 1], [2]])) < 1e-12,
               "batches whose rows have equal lengths waste nothing: expected 0.0")
        spread = fn([10, 1, 10, 1], [[0, 1], [2, 3]])
        expect(abs(spread - (1 - 22 / 40)) < 1e-9,
               f"lengths [10, 1] and [10, 1]: expected {1 - 22 / 40:.3f}, got {spread:.4g}")
        rng = random.Random(0)
        lengths = [rng.randint(5, 200) for _ in range(50)]
        order = list(range(50))
        rng.shuffle(order)
        batches = [order[i:i + 8] for i in range(0, 50, 8)]
        want = padding_fraction(lengths, batches)
        got = fn(lengths, batches)
        expect(abs(got - want) < 1e-9, f"random case: expected {want:.4f}, got {got:.4f}")

    return check("padding_waste", test)


# ----------------------------------------------------------------------------------------------
def check_real_tokens_per_second(fn: Callable) -> bool:
    """Exercise: real_tokens_per_second(attention_masks, seconds) -> non-pad tokens / seconds."""

    def test() -> None:
        masks = [torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]]), torch.tensor([[1, 1], [1, 1]])]
        got = fn(masks, 2.0)
        expect(got is not None, "real_tokens_per_second returned None: did you forget `return`?")
        got = float(got)
        if abs(got - (8 + 4) / 2.0) < 1e-9:
            raise AssertionError("you counted padded positions too: count only attention_mask == 1 "
                                 "(real tokens), padding is compute wasted, not work done")
        expect(abs(got - (4 + 4) / 2.0) < 1e-9, f"2 batches with 4 + 4 real tokens in 2 s: expected "
                                               f"4.0 tokens/s, got {got:.4g}")
        expect(abs(float(fn(masks[:1], 0.5)) - 8.0) < 1e-9, "1 batch, 4 real tokens in 0.5 s: "
                                                           "expected 8.0 tokens/s")

    return check("real_tokens_per_second", test)


# ----------------------------------------------------------------------------------------------
def check_length_grouped_batches(fn: Callable) -> bool:
    """Exercise: length_grouped_batches(lengths, batch_size, seed) -> list of index lists."""

    def test() -> None:
        from rmcourse.tokenization import padding_fraction

        rng = random.Random(1)
        lengths = [rng.randint(20, 300) for _ in range(203)]
        batches = fn(lengths, 8, 0)
        expect(batches is not None, "length_grouped_batches returned None: did you forget `return`?")
        batches = [list(b) for b in batches]
        flat = [int(i) for b in batches for i in b]
        expect(sorted(flat) == list(range(len(lengths))),
               "every index must appear exactly once across the batches "
               f"(got {len(flat)} indices for {len(lengths)} rows, {len(set(flat))} distinct)")
        expect(all(0 < len(b) <= 8 for b in batches), "every batch must hold 1..batch_size rows")
        short = sum(len(b) < 8 for b in batches)
        expect(short <= 1, f"{short} batches are smaller than batch_size; only one (the remainder) "
                           "may be")
        order = list(range(len(lengths)))
        random.Random(0).shuffle(order)
        random_waste = padding_fraction(lengths, [order[i:i + 8] for i in range(0, len(order), 8)])
        waste = padding_fraction(lengths, batches)
        expect(waste < 0.5 * random_waste,
               f"padding waste {waste:.1%} is not much below random batches' {random_waste:.1%}: "
               "sort (chunks of) the rows by length before cutting batches")
        again = [list(b) for b in fn(lengths, 8, 0)]
        expect(again == batches, "the same seed must give the same batches (seed your RNG)")
        other = [list(b) for b in fn(lengths, 8, 1)]
        expect(other != batches, "a different seed gives identical batches: shuffle with the seed, "
                                 "otherwise every epoch sees the same batches in the same order")
        expect(batches != sorted(batches, key=lambda b: -max(lengths[i] for i in b)),
               "batches come out sorted by length: shuffle the batch order, or training sees all "
               "the long pairs first")

    return check("length_grouped_batches", test)


# ----------------------------------------------------------------------------------------------
def check_accumulate_gradients(fn: Callable) -> bool:
    """Exercise: accumulate_gradients(model, micro_batches) leaves in .grad the gradient of the
    mean loss over ALL pairs, as one big batch would."""

    def test() -> None:
        from rmcourse.losses import pairwise_loss

        model, rows, collate = _tiny()
        model.eval()  # dropout is off anyway; eval mode makes that explicit
        sizes = (3, 3, 2)
        micro, start = [], 0
        for size in sizes:
            micro.append(collate(rows[start:start + size]))
            start += size
        model.zero_grad(set_to_none=True)
        big = collate(rows[:start])
        rewards = model(**big)
        pairwise_loss(rewards[:start], rewards[start:]).backward()
        want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        fn(model, micro)
        got = {n: p.grad for n, p in model.named_parameters()}
        missing = [n for n in want if got.get(n) is None]
        if missing:
            raise AssertionError(f"no gradient on {missing[0]}: call loss.backward() for every "
                                 "micro-batch")
        # Relative to the largest gradient anywhere: some entries are ~0 in theory (e.g. key
        # biases, which softmax ignores) and differ only by float32 noise from the padding.
        scale = max(float(w.abs().max()) for w in want.values())
        worst = max(float((got[n] - w).abs().max()) for n, w in want.items()) / scale
        if worst > 1e-2:
            dot = sum(float((got[n] * w).sum()) for n, w in want.items())
            size = dot / sum(float((w * w).sum()) for w in want.values())
            if size > 1.5:
                raise AssertionError(f"gradients are about {size:.1f}x too large: scale each "
                                     "micro-batch's mean loss by its share of the pairs "
                                     f"(b / {start}) before backward")
            raise AssertionError(
                f"accumulated gradients differ from the big batch's (relative error {worst:.2g}). "
                f"With micro-batches of {list(sizes)} pairs, weight each mean loss by b / {start} "
                f"(not 1 / {len(sizes)}) so every pair counts the same, and do not zero the "
                "gradients between micro-batches")
        model.zero_grad(set_to_none=True)

    return check("accumulate_gradients", test)
