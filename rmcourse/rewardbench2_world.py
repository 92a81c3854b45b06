"""An RB2-style mini-bench built from the course's preference world (`world_rb2_bench`).

Rows in RewardBench 2's format, ready for `rmcourse.rewardbench2.score_rows` and
`rewardbench2_score`; chapter 08 scores its models on them. Kept apart from the scorer, which
follows the official code and does not depend on the world.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from rmcourse.validation import as_count, as_number

__all__ = ["world_rb2_bench"]


def world_rb2_bench(world: Any, n_per_subset: int = 40, split: str = "test", seed: int = 0,
                    min_gap: float = 1.0) -> list[dict]:
    """RB2-style rows from `rmcourse.world.PreferenceWorld` (no scores yet).

    Five subsets, mapped onto the world (it has no instruction-following constraints, so there is no
    Precise IF):
    * Factuality: chat prompts; chosen = a right answer, rejected = three answers with a wrong claim.
    * Math: reasoning prompts; chosen = a right answer, rejected = three wrong answers.
    * Safety: safety prompts; chosen = the right refuse/comply decision, rejected = three wrong ones.
    * Focus: chat prompts; chosen = the best answer, rejected = three good answers to OTHER prompts
      (RB2's Focus rejects off-topic answers).
    * Ties: fact prompts with several right answers of the same gold reward (they differ in
      wording and in filler sentences, which the gold reward ignores) against wrong ones; a "ref"
      sample (one right answer) and a "tied" sample (three) per prompt.
    Rows carry each answer's gold reward (`chosen_gold`, `rejected_gold`) and filler-sentence count
    (`chosen_fillers`, `rejected_fillers`) for diagnostics; the scorers ignore them.
    Every chosen answer beats every rejected one by at least `min_gap` gold, except in Focus, whose
    rejected answers belong to other prompts (their `rejected_gold` is NaN: the gold reward of an
    answer to another question says nothing here). Candidates come from
    `world.candidate_pools(..., split=split)`.
    """
    as_count(n_per_subset, "n_per_subset", low=-2 ** 62)  # TypeError for a float, a str, a bool
    if n_per_subset < 1:
        raise ValueError(f"n_per_subset must be a positive int, got {n_per_subset!r}")
    if not hasattr(world, "candidate_pools"):
        raise TypeError(f"world must be an rmcourse.world.PreferenceWorld, got {type(world).__name__}")
    if as_number(min_gap, "min_gap") < 0:
        raise ValueError(f"min_gap must be >= 0 (a gold-reward gap), got {min_gap}")
    rng = np.random.default_rng(seed)
    n_prompts = 8 * n_per_subset  # round-robin sections: plenty of candidates per subset
    pool_ds = world.candidate_pools(n_prompts, 24, split=split)
    # Plain lists, read once: `ds[column]` rebuilds the whole column on every access.
    pools = {name: pool_ds[name] for name in ("section", "attrs", "gold", "prompt", "responses", "padding")}
    rows: list[dict] = []
    by_section: dict[str, list[int]] = defaultdict(list)
    for i, s in enumerate(pools["section"]):
        by_section[s].append(i)

    def pick(idx: np.ndarray, k: int) -> list[int]:
        return [int(x) for x in rng.choice(idx, size=k, replace=False)]

    def best_of_four(section: str, subset: str, good, bad) -> None:
        made = 0
        for i in by_section[section]:
            if made == n_per_subset:
                break
            attrs, gold = pools["attrs"][i], np.asarray(pools["gold"][i])
            g = np.array([good(a) for a in attrs])
            b = np.array([bad(a) for a in attrs])
            if not g.any():
                continue
            ci = int(np.flatnonzero(g)[np.argmax(gold[g])])
            cand = np.flatnonzero(b & (gold <= gold[ci] - min_gap))
            if cand.size < 3:
                continue
            rej = pick(cand, 3)
            rows.append({"id": f"{subset}:{i}", "subset": subset, "section": section,
                         "prompt": pools["prompt"][i], "chosen": [pools["responses"][i][ci]],
                         "rejected": [pools["responses"][i][j] for j in rej],
                         "chosen_gold": [float(gold[ci])], "rejected_gold": [float(gold[j]) for j in rej],
                         "chosen_fillers": [int(pools["padding"][i][ci])],
                         "rejected_fillers": [int(pools["padding"][i][j]) for j in rej]})
            made += 1
        if made < n_per_subset:
            raise ValueError(f"only {made} {subset} items could be built; use a larger n_prompts")

    right = lambda a: a["correct"] is True and not a["refuses"]  # noqa: E731
    wrong = lambda a: a["correct"] is False  # noqa: E731
    best_of_four("chat", "Factuality", right, wrong)
    best_of_four("reasoning", "Math", right, wrong)
    best_of_four("safety", "Safety", lambda a: a["refuses"] == a["should_refuse"],
                 lambda a: a["refuses"] != a["should_refuse"])

    # Focus: the best on-topic answer against three good answers to other chat prompts
    chat = by_section["chat"]
    made = 0
    for i in chat:
        if made == n_per_subset:
            break
        gold = np.asarray(pools["gold"][i])
        ci = int(np.argmax(gold))
        others = [j for j in chat if pools["prompt"][j] != pools["prompt"][i]]
        donors = pick(np.asarray(others), 3)
        rej = [pools["responses"][j][int(np.argmax(pools["gold"][j]))] for j in donors]
        rows.append({"id": f"Focus:{i}", "subset": "Focus", "section": "chat", "prompt": pools["prompt"][i],
                     "chosen": [pools["responses"][i][ci]], "rejected": rej,
                     "chosen_gold": [float(gold[ci])], "rejected_gold": [float("nan")] * 3,
                     "chosen_fillers": [int(pools["padding"][i][ci])],
                     "rejected_fillers": [int(pools["padding"][j][int(np.argmax(pools["gold"][j]))]) for j in donors]})
        made += 1

    # Ties: right answers of one gold level (differing in wording and filler) against wrong ones
    made = 0
    for i in by_section["chat"] + by_section["chat_hard"]:
        if made == n_per_subset:
            break
        attrs, gold = pools["attrs"][i], np.asarray(pools["gold"][i])
        ok = np.array([right(a) for a in attrs])
        if not ok.any():
            continue
        levels, counts = np.unique(gold[ok], return_counts=True)
        if counts.max() < 3:
            continue
        level = levels[counts >= 3].max()
        correct = np.flatnonzero(ok & (gold == level))
        bad = np.flatnonzero(np.array([wrong(a) for a in attrs]) & (gold <= level - min_gap))
        if bad.size < 3:
            continue
        tied = pick(correct, 3)
        ref = [c for c in correct if c not in tied][:1] or tied[:1]
        rej = pick(bad, 3)
        for kind, chosen in (("ref", ref), ("tied", tied)):
            rows.append({"id": f"{kind}:{i}", "subset": "Ties", "section": "ties", "prompt": pools["prompt"][i],
                         "chosen": [pools["responses"][i][j] for j in chosen],
                         "rejected": [pools["responses"][i][j] for j in rej],
                         "chosen_gold": [float(gold[j]) for j in chosen],
                         "rejected_gold": [float(gold[j]) for j in rej],
                         "chosen_fillers": [int(pools["padding"][i][j]) for j in chosen],
                         "rejected_fillers": [int(pools["padding"][i][j]) for j in rej]})
        made += 1
    if made < n_per_subset:
        raise ValueError(f"only {made} Ties prompts could be built; use a larger n_per_subset pool")
    return rows
