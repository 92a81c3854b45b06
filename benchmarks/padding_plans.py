"""Computed token positions per real token, for the batching plans of `bench_vs_trl.py`.

    python benchmarks/padding_plans.py            # both data sets, batches of 16 pairs

For the same 1024 training pairs and token ids as `bench_vs_trl.py` (seed 0 shuffles): random
batches padded to their longest row (TRL, and rmcourse with `forward_chunk_size=None`),
length-grouped batches (`length_grouped_batches`, `group_by_length=True`), and random batches
whose 32 rows are sorted by length and padded chunk by chunk (`length_sorted_chunks`, the
trainer's CPU default, chunks of 8). 1.00 would be no padding at all.
"""
from __future__ import annotations

import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/dialogue.py

BATCH, CHUNK = 16, 8


def positions_per_token(lengths: list[int], groups: list[list[int]]) -> float:
    """Padded positions / real tokens when each group of rows is padded to its longest row."""
    from rmcourse.tokenization import padding_fraction

    return 1.0 / (1.0 - padding_fraction(lengths, groups))


def main() -> int:
    from rmcourse.models import load_tokenizer
    from rmcourse.tokenization import length_grouped_batches, tokenize_pairs
    from rmcourse.world import PreferenceWorld

    tokenizer = load_tokenizer("minilm")
    for name, max_length in (("world", 128), ("dialogue", 256)):
        ds = PreferenceWorld(seed=0).pairs("train", 1024)
        if name == "dialogue":
            from dialogue import render_dialogues

            ds = render_dialogues(ds, tokenizer, seed=0)
        tok, _ = tokenize_pairs(ds.select_columns(["prompt", "chosen", "rejected"]), tokenizer,
                                max_length)
        n = len(tok)
        # row i is pair i's chosen side, row n + i its rejected side
        lengths = [len(x) for x in tok["chosen_input_ids"]] + [len(x) for x in tok["rejected_input_ids"]]
        order = list(range(n))
        random.Random(0).shuffle(order)
        random_batches = [order[k:k + BATCH] for k in range(0, n, BATCH)]
        grouped = length_grouped_batches([max(lengths[i], lengths[n + i]) for i in range(n)], BATCH, seed=0)

        def rows(batch):
            return [*batch, *(n + i for i in batch)]

        def chunks(batch):
            by_length = sorted(rows(batch), key=lambda r: -lengths[r])
            return [by_length[k:k + CHUNK] for k in range(0, len(by_length), CHUNK)]

        plans = {"random batches, one stacked forward": [rows(b) for b in random_batches],
                 "length-grouped batches, one stacked forward": [rows(b) for b in grouped],
                 f"random batches, length-sorted chunks of {CHUNK} rows":
                     [c for b in random_batches for c in chunks(b)]}
        print(f"{name} ({n} pairs, max_length {max_length}):")
        for plan, groups in plans.items():
            print(f"  {plan:48s} {positions_per_token(lengths, groups):.2f} positions per real token")
    return 0


if __name__ == "__main__":
    sys.exit(main())
