"""Print the preference world's statistics as markdown: how new its test split is, and its baselines.

    .venv/bin/python tools/world_report.py [--seed 0] [--n-test 400] [--n-train 2000]

Per section and novelty of ``pairs("test", n_test)``: n, the accuracy of the rule "the answer with
more words wins", the share of response sentences found verbatim in ``pairs("train", n_train)``
and the share of prompt cores found there; then train label agreement with gold and
corr(padding, gold) per split. Every number here is also asserted in tests/test_world.py.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--n-train", type=int, default=2000)
    args = parser.parse_args(argv)

    from rmcourse.world import PreferenceWorld, length_gold_correlation, verbatim_overlap

    world = PreferenceWorld(args.seed)
    start = time.perf_counter()
    train = world.pairs("train", args.n_train)
    seconds = time.perf_counter() - start
    test = world.pairs("test", args.n_test)
    table = verbatim_overlap(test, train)
    frame = test.select_columns(["section", "novelty", "chosen_words", "rejected_words"]).to_pandas()
    frame["longer_wins"] = frame.chosen_words > frame.rejected_words
    rule = {**frame.groupby(["section", "novelty"]).longer_wins.mean().to_dict(),
            **{("all", v): x for v, x in frame.groupby("novelty").longer_wins.mean().items()},
            ("all", "all"): frame.longer_wins.mean()}
    print(f"PreferenceWorld({args.seed}): pairs('test', {args.n_test}) against pairs('train', {args.n_train})\n")
    print("| section | novelty | n | longer-wins accuracy | sentences verbatim in train | prompt cores in train |")
    print("|---|---|---:|---:|---:|---:|")
    for row in table.itertuples():
        print(f"| {row.section} | {row.novelty} | {row.n} | {rule[(row.section, row.novelty)]:.3f} | "
              f"{row.sentence_overlap:.3f} | {row.prompt_core_overlap:.3f} |")
    print(f"\ntrain label agreement with gold: {np.mean(train['label_correct']):.3f} "
          f"({args.n_train} pairs, generated in {seconds:.2f} s)")
    corr = {split: length_gold_correlation(world.pairs(split, args.n_train)) for split in ("train", "validation", "test")}
    pools = world.candidate_pools(400, 32)
    corr["pool"] = length_gold_correlation(pools)
    corr["pool, padding >= 3"] = length_gold_correlation(pools, min_padding=3)
    print("corr(padding, gold): " + ", ".join(f"{k} {v:+.3f}" for k, v in corr.items()))


if __name__ == "__main__":
    main()
