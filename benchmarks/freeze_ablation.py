"""Chapter 03's CPU recipe with and without freezing MiniLM's embeddings and lowest layers.

    python benchmarks/freeze_ablation.py                    # 3 seeds x (0, 2) frozen layers
    python benchmarks/freeze_ablation.py --seeds 0 1 2 3 --frozen 0 2 4

Each run is `rmcourse.course_models.train_course_reward_model` with the chapter-03 recipe
(`course_recipe()`), changing only the seed (head initialisation and batch order) and
`frozen_layers`; nothing is saved. Reported: training seconds (wall clock of the training call),
training pairs/s, and accuracy on the recipe's clean test split, overall and per section. The
table backs the sentence in chapter 03 (and `course_recipe`'s docstring) on what freezing costs.
Timings vary with the machine and its load; run it on a quiet machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import platform
import statistics
import time

import torch


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds (default: 0 1 2)")
    p.add_argument("--frozen", type=int, nargs="+", default=[0, 2],
                   help="frozen layer counts to compare (default: 0 2)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from rmcourse.course_models import course_recipe, course_splits, train_course_reward_model
    from rmcourse.metrics import per_section_accuracy, score_pairs

    base = course_recipe(progress=False)
    splits = course_splits(base)
    rows = []
    for frozen in args.frozen:
        for seed in args.seeds:
            recipe = dataclasses.replace(base, frozen_layers=frozen,
                                         config=dataclasses.replace(base.config, seed=seed))
            start = time.perf_counter()
            model, result = train_course_reward_model(recipe, save=False, progress=False,
                                                      splits=splits)
            wall = time.perf_counter() - start
            chosen, rejected = score_pairs(model, splits["test"], batch_size=32)
            table = per_section_accuracy(splits["test"], chosen, rejected).set_index("section")
            row = {"frozen": frozen, "seed": seed, "train_s": result.train_seconds, "wall_s": wall,
                   "pairs_s": result.pairs_per_second, **table["accuracy"].to_dict()}
            rows.append(row)
            print(f"frozen {frozen} seed {seed}: train {row['train_s']:.1f} s, "
                  f"{row['pairs_s']:.1f} pairs/s, test accuracy {row['all']:.3f}", flush=True)

    sections = ["chat", "chat_hard", "safety", "reasoning"]
    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{base.n_train} training pairs, {base.n_test} test pairs\n")
    print("| frozen layers | seed | train s | pairs/s | test acc | " + " | ".join(sections) + " |")
    print("|---" * (5 + len(sections)) + "|")
    for r in rows:
        print(f"| {r['frozen']} | {r['seed']} | {r['train_s']:.1f} | {r['pairs_s']:.1f} | "
              f"{r['all']:.3f} | " + " | ".join(f"{r[s]:.2f}" for s in sections) + " |")
    print()
    for frozen in args.frozen:
        mine = [r for r in rows if r["frozen"] == frozen]
        print(f"frozen {frozen}: mean train {statistics.mean(r['train_s'] for r in mine):.1f} s, "
              f"test accuracy {min(r['all'] for r in mine):.3f}-{max(r['all'] for r in mine):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
