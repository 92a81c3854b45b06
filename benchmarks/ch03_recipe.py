"""Chapter 03's CPU recipe, varied: pooling, training pairs, learning rate, frozen layers, seeds.

    python benchmarks/ch03_recipe.py --pooling first mean --seeds 0 1 2
    python benchmarks/ch03_recipe.py --n-train 256 512 768 --lr 3e-4 1e-4 --pooling mean
    python benchmarks/ch03_recipe.py --frozen 0 2 --pooling mean --json artifacts/ablation.json

Each run is `rmcourse.course_models.train_course_reward_model` on the chapter-03 recipe
(`course_recipe()`) with the listed fields replaced (every combination of the lists), nothing
saved. Every model is scored on the same clean test pairs (`--n-test`, default 400: 100 of them
on novel topics), next to two baselines on those pairs: the rule "the answer with more words
wins" and chance. Reported per run: training seconds (`TrainResult.train_seconds`), test
accuracy overall, per section and in-distribution vs novel; then per setting the mean over
seeds, and the accuracy gain over the length rule with a 95% bootstrap interval (pairs
resampled; each pair's correctness averaged over the seeds first). Timings move with the
machine's load: compare rows of one run only.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import platform
import time

import numpy as np
import torch

SECTIONS = ["chat", "chat_hard", "safety", "reasoning"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--pooling", nargs="+", choices=["first", "mean"], help="default: the recipe's")
    p.add_argument("--n-train", type=int, nargs="+", help="training pairs (default: the recipe's)")
    p.add_argument("--lr", type=float, nargs="+", help="peak learning rate (default: the recipe's)")
    p.add_argument("--frozen", type=int, nargs="+", help="frozen lower layers (default: the recipe's)")
    p.add_argument("--batch-size", type=int, nargs="+", help="pairs per step (default: the recipe's)")
    p.add_argument("--epochs", type=float, nargs="+", help="epochs (default: the recipe's)")
    p.add_argument("--patience", type=int, nargs="+",
                   help="early_stopping_patience, 0 = none (default: the recipe's); with a "
                        "patience the best-validated weights are restored at the end")
    p.add_argument("--eval-every", type=int, nargs="+", help="validation interval in steps "
                   "(default: the recipe's)")
    p.add_argument("--group-by-length", type=int, nargs="+", choices=[0, 1],
                   help="1 = length-grouped batches, 0 = random batches (default: the recipe's)")
    p.add_argument("--n-test", type=int, default=400, help="clean test pairs (default 400)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--json", help="write every run (with per-pair correctness) to this file")
    return p.parse_args(argv)


def _correct_by_length(test) -> np.ndarray:
    from rmcourse.filters import text_length

    return np.array([text_length(c, "auto") > text_length(r, "auto")
                     for c, r in zip(test["chosen"], test["rejected"])], dtype=float)


def _slices(test, correct: np.ndarray) -> dict:
    out = {"all": float(correct.mean())}
    for column, values in (("section", SECTIONS), ("novelty", ["in-distribution", "novel"])):
        labels = np.asarray(test[column])
        for value in values:
            out[value] = float(correct[labels == value].mean())
    return out


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import transformers

    from rmcourse.bootstrap import paired_difference_ci
    from rmcourse.course_models import course_recipe, course_splits, train_course_reward_model
    from rmcourse.metrics import score_pairs

    base = course_recipe(progress=False)
    base = dataclasses.replace(base, n_test=args.n_test)
    splits = course_splits(base)
    test = splits["test"]
    length_correct = _correct_by_length(test)
    print(f"length rule on {len(test)} test pairs: {_slices(test, length_correct)}", flush=True)

    grid = {"pooling": args.pooling or [base.pooling],
            "n_train": args.n_train or [base.n_train],
            "lr": args.lr or [base.config.lr],
            "frozen_layers": args.frozen or [base.frozen_layers],
            "batch_size": args.batch_size or [base.config.batch_size],
            "epochs": args.epochs or [base.config.epochs],
            "patience": args.patience or [base.config.early_stopping_patience or 0],
            "eval_every": args.eval_every or [base.config.eval_every],
            "group_by_length": args.group_by_length or [int(base.config.group_by_length)]}
    runs = []
    train_cache = {base.n_train: splits["train"]}
    for values in itertools.product(*grid.values()):
        setting = dict(zip(grid, values))
        for seed in args.seeds:
            config = dataclasses.replace(base.config, seed=seed, lr=setting["lr"],
                                         batch_size=setting["batch_size"],
                                         epochs=setting["epochs"],
                                         early_stopping_patience=setting["patience"] or None,
                                         eval_every=setting["eval_every"],
                                         group_by_length=bool(setting["group_by_length"]))
            recipe = dataclasses.replace(base, pooling=setting["pooling"],
                                         n_train=setting["n_train"],
                                         frozen_layers=setting["frozen_layers"], config=config)
            if recipe.n_train not in train_cache:
                train_cache[recipe.n_train] = course_splits(recipe)["train"]
            data = {"train": train_cache[recipe.n_train], "val": splits["val"]}
            start = time.perf_counter()
            model, result = train_course_reward_model(recipe, save=False, progress=False,
                                                      splits=data)
            wall = time.perf_counter() - start
            chosen, rejected = score_pairs(model, test, batch_size=64)
            correct = (chosen > rejected).numpy().astype(float)
            row = {**setting, "seed": seed, "train_s": result.train_seconds, "wall_s": wall,
                   "best_step": result.best_step, "n_steps": result.n_steps,
                   "restored_best": result.restored_best,
                   "val_loss_last": float(result.history["val_loss"].dropna().iloc[-1]),
                   "loss_first_quarter": float(result.history["loss"].iloc[: result.n_steps // 4].mean()),
                   "loss_last_quarter": float(result.history["loss"].iloc[-(result.n_steps // 4):].mean()),
                   "best_val_accuracy": result.best_val_accuracy,
                   **_slices(test, correct), "correct": correct.tolist()}
            runs.append(row)
            print(f"{setting} seed {seed}: train {row['train_s']:.1f} s, test {row['all']:.3f} "
                  f"(novel {row['novel']:.3f}), best val step {row['best_step']}/{row['n_steps']}, "
                  f"train loss {row['loss_first_quarter']:.3f} -> {row['loss_last_quarter']:.3f} "
                  f"(first/last quarter), final val loss {row['val_loss_last']:.3f}", flush=True)
            del model

    print(f"\nmachine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} "
          f"threads; torch {torch.__version__}, transformers {transformers.__version__}; "
          f"{len(test)} clean test pairs\n")
    names = list(grid)
    cols = ["all", *SECTIONS, "in-distribution", "novel"]
    print("| " + " | ".join(names) + " | seeds | train s | " + " | ".join(cols) +
          " | gain over length rule [95% CI] |")
    print("|---" * (len(names) + 3 + len(cols)) + "|")
    print("| " + " | ".join("length rule" if i == 0 else "" for i in range(len(names))) +
          " | | | " + " | ".join(f"{_slices(test, length_correct)[c]:.3f}" for c in cols) + " | |")
    for values in itertools.product(*grid.values()):
        mine = [r for r in runs if all(r[k] == v for k, v in zip(names, values))]
        per_pair = np.mean([r["correct"] for r in mine], axis=0)
        gain = paired_difference_ci(per_pair, length_correct, n_boot=4000)
        print("| " + " | ".join(str(v) for v in values) + f" | {len(mine)} | "
              f"{np.mean([r['train_s'] for r in mine]):.1f} | " +
              " | ".join(f"{np.mean([r[c] for r in mine]):.3f}" for c in cols) + f" | {gain} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"length_rule": length_correct.tolist(), "runs": runs,
                       "novelty": list(test["novelty"]), "section": list(test["section"])}, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
