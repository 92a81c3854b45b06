"""Each chapter-02 checker must accept a correct solution and reject typical mistakes by name."""
from __future__ import annotations

import hashlib
import random
import zlib

import numpy as np
import torch

from rmcourse.checks import ch02
from rmcourse.filters import is_cjk, text_length
from rmcourse.formats import split_hh_transcript


def verdict(checker, fn, capsys):
    ok = checker(fn)
    return ok, capsys.readouterr().out


def todo(*args, **kwargs):
    raise NotImplementedError("Exercise")


# --- split_hh -----------------------------------------------------------------------------------
def test_split_hh_checker(capsys):
    ok, out = verdict(ch02.check_split_hh, split_hh_transcript, capsys)
    assert ok and out.startswith("✅")

    def first_turn(text):
        cut = text.find("\n\nAssistant:")
        if cut < 0:
            raise ValueError("no assistant")
        end = cut + len("\n\nAssistant:")
        return text[:end].lstrip(), text[end:].strip()

    ok, out = verdict(ch02.check_split_hh, first_turn, capsys)
    assert not ok and "FIRST" in out and "rfind" in out

    def no_error(text):
        cut = text.rfind("\n\nAssistant:")
        end = cut + len("\n\nAssistant:")
        return text[:end].lstrip(), text[end:].strip()

    ok, out = verdict(ch02.check_split_hh, no_error, capsys)
    assert not ok and "must raise ValueError" in out

    def keeps_space(text):
        prompt, response = split_hh_transcript(text)
        return prompt, " " + response

    ok, out = verdict(ch02.check_split_hh, keeps_space, capsys)
    assert not ok and "stripped" in out

    ok, out = verdict(ch02.check_split_hh, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- cjk_length ---------------------------------------------------------------------------------
def test_cjk_length_checker(capsys):
    ok, out = verdict(ch02.check_cjk_length, lambda t: text_length(t, unit="auto"), capsys)
    assert ok and out.startswith("✅")

    ok, out = verdict(ch02.check_cjk_length, lambda t: len(t.split()), capsys)
    assert not ok and "seed's bug" in out

    def counts_punct(text):
        n = sum(1 for ch in text if is_cjk(ch) or (not ch.isspace() and ord(ch) > 0x2FFF))
        rest = "".join(" " if ord(ch) > 0x2FFF else ch for ch in text)
        return n + len(rest.split())

    ok, out = verdict(ch02.check_cjk_length, counts_punct, capsys)
    assert not ok and "punctuation" in out

    def glued_latin(text):  # counts CJK chars but leaves 'BERT模型' as an extra word
        return sum(is_cjk(ch) for ch in text) + len(text.split())

    ok, out = verdict(ch02.check_cjk_length, glued_latin, capsys)
    assert not ok and "cjk_length" in out

    ok, out = verdict(ch02.check_cjk_length, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- group_split --------------------------------------------------------------------------------
def good_split(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
    if isinstance(test_percent, bool) or not isinstance(test_percent, int) or not 0 <= test_percent <= 100:
        raise ValueError(f"test_percent must be an int from 0 to 100, got {test_percent!r}")
    return ["test" if zlib.crc32((salt + key(p)).encode("utf-8")) % 100 < test_percent else "train"
            for p in prompts]


def test_group_split_checker(capsys):
    ok, out = verdict(ch02.check_group_split, good_split, capsys)
    assert ok and out.startswith("✅")

    def sha_split(prompts, test_percent, key=lambda p: p, salt="rmcourse"):  # another stable hash is fine
        if not 0 <= test_percent <= 100:
            raise ValueError("test_percent")
        buckets = [int.from_bytes(hashlib.sha256(f"{salt}|{key(p)}".encode()).digest()[:8], "big") % 100
                   for p in prompts]
        return ["test" if b < test_percent else "train" for b in buckets]

    ok, out = verdict(ch02.check_group_split, sha_split, capsys)
    assert ok and out.startswith("✅")

    def python_hash(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        if not 0 <= test_percent <= 100:
            raise ValueError("test_percent")
        return ["test" if hash(salt + key(p)) % 100 < test_percent else "train" for p in prompts]

    ok, out = verdict(ch02.check_group_split, python_hash, capsys)
    assert not ok and "PYTHONHASHSEED" in out

    def per_row(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        if not 0 <= test_percent <= 100:
            raise ValueError("test_percent")
        rng = np.random.default_rng(0)
        return ["test" if rng.random() < test_percent / 100 else "train" for _ in prompts]

    ok, out = verdict(ch02.check_group_split, per_row, capsys)
    assert not ok and "per key" in out

    def whole_prompt(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        return good_split(prompts, test_percent, key=lambda p: p, salt=salt)

    ok, out = verdict(ch02.check_group_split, whole_prompt, capsys)
    assert not ok and "hash key(prompt)" in out

    def shuffle_and_cut(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        if not 0 <= test_percent <= 100:
            raise ValueError("test_percent")
        keys = sorted({key(p) for p in prompts})
        random.Random(salt).shuffle(keys)
        test = set(keys[: round(len(keys) * test_percent / 100)])
        return ["test" if key(p) in test else "train" for p in prompts]

    ok, out = verdict(ch02.check_group_split, shuffle_and_cut, capsys)
    assert not ok and "arrived" in out

    def swapped(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        return ["train" if s == "test" else "test" for s in good_split(prompts, test_percent, key, salt)]

    ok, out = verdict(ch02.check_group_split, swapped, capsys)
    assert not ok and "swapped" in out

    def at_most(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        if not 0 <= test_percent <= 100:
            raise ValueError("test_percent")
        return ["test" if zlib.crc32((salt + key(p)).encode()) % 100 <= test_percent else "train" for p in prompts]

    ok, out = verdict(ch02.check_group_split, at_most, capsys)
    assert not ok and "not <=" in out

    def unsalted(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        return good_split(prompts, test_percent, key, salt="")

    ok, out = verdict(ch02.check_group_split, unsalted, capsys)
    assert not ok and "salt" in out

    def no_validation(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        return ["test" if zlib.crc32((salt + key(p)).encode()) % 100 < test_percent else "train" for p in prompts]

    ok, out = verdict(ch02.check_group_split, no_validation, capsys)
    assert not ok and "ValueError" in out

    def booleans(prompts, test_percent, key=lambda p: p, salt="rmcourse"):
        return [s == "test" for s in good_split(prompts, test_percent, key, salt)]

    ok, out = verdict(ch02.check_group_split, booleans, capsys)
    assert not ok and "'train' or 'test'" in out

    ok, out = verdict(ch02.check_group_split, todo, capsys)
    assert not ok and out.startswith("⏳")


def test_group_split_checker_restores_builtin_hash(capsys):
    import builtins

    before = builtins.hash
    ch02.check_group_split(good_split)
    ch02.check_group_split(todo)
    capsys.readouterr()
    assert builtins.hash is before


# --- collate_dynamic ----------------------------------------------------------------------------
def good_collate(chosen_ids, rejected_ids, pad_id):
    seqs = list(chosen_ids) + list(rejected_ids)
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return {"input_ids": ids, "attention_mask": mask}


def test_collate_dynamic_checker(capsys):
    ok, out = verdict(ch02.check_collate_dynamic, good_collate, capsys)
    assert ok and out.startswith("✅")

    def pad512(c, r, pad_id):
        seqs = list(c) + list(r)
        ids = torch.full((len(seqs), 512), pad_id, dtype=torch.long)
        for i, s in enumerate(seqs):
            ids[i, : len(s)] = torch.tensor(s)
        return {"input_ids": ids, "attention_mask": (ids != pad_id).long()}

    ok, out = verdict(ch02.check_collate_dynamic, pad512, capsys)
    assert not ok and "512" in out

    def interleaved(c, r, pad_id):
        seqs = [s for pair in zip(c, r) for s in pair]
        half = good_collate(seqs[:len(seqs) // 2], seqs[len(seqs) // 2:], pad_id)
        return half

    ok, out = verdict(ch02.check_collate_dynamic, interleaved, capsys)
    assert not ok and "interleaved" in out

    def zero_pad(c, r, pad_id):
        return good_collate(c, r, 0)

    ok, out = verdict(ch02.check_collate_dynamic, zero_pad, capsys)
    assert not ok and "pad_id" in out

    def floats(c, r, pad_id):
        out = good_collate(c, r, pad_id)
        return {k: v.float() for k, v in out.items()}

    ok, out = verdict(ch02.check_collate_dynamic, floats, capsys)
    assert not ok and "torch.long" in out

    ok, out = verdict(ch02.check_collate_dynamic, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- majority_vote ------------------------------------------------------------------------------
def good_majority(votes):
    share = votes.mean(axis=1)
    label = share > 0.5
    return label, np.where(label, share, 1 - share)


def test_majority_vote_checker(capsys):
    ok, out = verdict(ch02.check_majority_vote, good_majority, capsys)
    assert ok and out.startswith("✅")

    ok, out = verdict(ch02.check_majority_vote, lambda v: (v.mean(1) > 0.5, v.mean(1)), capsys)
    assert not ok and "WITH THE MAJORITY" in out

    ok, out = verdict(ch02.check_majority_vote, lambda v: (v.mean(0) > 0.5, v.mean(0)), capsys)
    assert not ok and "axis=1" in out

    ok, out = verdict(ch02.check_majority_vote, lambda v: (v[:, 3], np.ones(len(v))), capsys)
    assert not ok and "labels" in out

    ok, out = verdict(ch02.check_majority_vote, todo, capsys)
    assert not ok and out.startswith("⏳")


# --- binarise_ratings ---------------------------------------------------------------------------
def _check_row(row):
    if len(row["completions"]) != len(row["scores"]):
        raise ValueError(f"row {row['prompt']!r}: {len(row['completions'])} completions but "
                         f"{len(row['scores'])} scores")


def _pair(row, c, r):
    return {"prompt": row["prompt"], "chosen": row["completions"][c], "rejected": row["completions"][r],
            "score_chosen": row["scores"][c], "score_rejected": row["scores"][r]}


def make_binarise(pick_chosen=None, pick_rejected=None, keep_all_ties=False, rng_factory=None,
                  count_dropped=None, validate=True):
    """A binarise_ratings built from parts, so each test swaps exactly one part for a mistake."""

    def binarise(rows, seed=0):
        rng = rng_factory(seed) if rng_factory else np.random.default_rng(seed)
        pairs, dropped = [], 0
        for row in rows:
            if validate:
                _check_row(row)
            scores = row["scores"]
            c = pick_chosen(scores) if pick_chosen else int(np.argmax(scores))
            lower = [k for k, s in enumerate(scores) if s < scores[c]]
            if not lower and not (keep_all_ties and len(scores) > 1):
                dropped += 1
                continue
            r = pick_rejected(scores, c, lower, rng, seed) if pick_rejected else int(rng.choice(lower))
            pairs.append(_pair(row, c, r))
        return pairs, (count_dropped(dropped, pairs) if count_dropped else dropped)

    return binarise


good_binarise = make_binarise()


def test_binarise_checker_accepts_correct_solutions(capsys):
    ok, out = verdict(ch02.check_binarise_ratings, good_binarise, capsys)
    assert ok and out.startswith("✅")

    def python_random(rows, seed=0):  # random.Random(seed) is as good as numpy's generator
        rng = random.Random(seed)
        pairs, dropped = [], 0
        for row in rows:
            _check_row(row)
            best = max(row["scores"])
            c = row["scores"].index(best)
            lower = [k for k, s in enumerate(row["scores"]) if s < best]
            if not lower:
                dropped += 1
                continue
            pairs.append(_pair(row, c, rng.choice(lower)))
        return pairs, dropped

    ok, out = verdict(ch02.check_binarise_ratings, python_random, capsys)
    assert ok and out.startswith("✅")


def test_binarise_checker_rejects_typical_mistakes(capsys):
    def rejected_lowest(scores, c, lower, rng, seed):
        return int(np.argmin(scores))

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=rejected_lowest), capsys)
    assert not ok and "LOWEST-scored completion in" in out and "AT RANDOM" in out

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_chosen=lambda s: 0), capsys)
    assert not ok and "highest score" in out

    def last_of_tied_best(scores):  # a `>=` scan keeps the last of the tied best
        return max(k for k, s in enumerate(scores) if s == max(scores))

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_chosen=last_of_tied_best), capsys)
    assert not ok and "the LAST of the two best" in out

    def swapped(rows, seed=0):  # sorted ascending and took the ends the wrong way round
        rng = np.random.default_rng(seed)
        pairs, dropped = [], 0
        for row in rows:
            _check_row(row)
            worst = int(np.argmin(row["scores"]))
            higher = [k for k, s in enumerate(row["scores"]) if s > row["scores"][worst]]
            if not higher:
                dropped += 1
                continue
            pairs.append(_pair(row, worst, int(rng.choice(higher))))
        return pairs, dropped

    ok, out = verdict(ch02.check_binarise_ratings, swapped, capsys)
    assert not ok and "swapped" in out

    def other_completion(scores, c, lower, rng, seed):  # the others, ties with the best included
        return int(rng.choice([k for k in range(len(scores)) if k != c]))

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=other_completion,
                                                                 keep_all_ties=True), capsys)
    assert not ok and "no preference" in out

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=other_completion), capsys)
    assert not ok and "strictly LOWER" in out

    def with_replacement(scores, c, lower, rng, seed):
        return int(rng.integers(len(scores)))

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=with_replacement), capsys)
    assert not ok and "the chosen completion itself" in out

    def runner_up(scores, c, lower, rng, seed):
        return max(lower, key=lambda k: scores[k])

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=runner_up), capsys)
    assert not ok and "runner-up" in out

    def reseeded_per_row(scores, c, lower, rng, seed):
        return int(np.random.default_rng(seed).choice(lower))

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(pick_rejected=reseeded_per_row), capsys)
    assert not ok and "ONE generator" in out

    unseeded = make_binarise(rng_factory=lambda seed: np.random.default_rng())
    ok, out = verdict(ch02.check_binarise_ratings, unseeded, capsys)
    assert not ok and "same seed gave different pairs" in out

    fixed = make_binarise(rng_factory=lambda seed: np.random.default_rng(1234))
    ok, out = verdict(ch02.check_binarise_ratings, fixed, capsys)
    assert not ok and "seed argument is ignored" in out

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(count_dropped=lambda d, pairs: 0), capsys)
    assert not ok and "n_dropped = 0" in out

    ok, out = verdict(ch02.check_binarise_ratings, make_binarise(validate=False), capsys)
    assert not ok and "ValueError" in out

    def no_scores(rows, seed=0):
        pairs, dropped = good_binarise(rows, seed)
        return [{k: p[k] for k in ("prompt", "chosen", "rejected")} for p in pairs], dropped

    ok, out = verdict(ch02.check_binarise_ratings, no_scores, capsys)
    assert not ok and "'score_chosen'" in out

    def indices(rows, seed=0):
        pairs, dropped = good_binarise(rows, seed)
        for p, row in zip(pairs, [r for r in rows if len(set(r["scores"])) > 1]):
            p["chosen"] = row["completions"].index(p["chosen"])
        return pairs, dropped

    ok, out = verdict(ch02.check_binarise_ratings, indices, capsys)
    assert not ok and "not one of its row's completions" in out

    ok, out = verdict(ch02.check_binarise_ratings, todo, capsys)
    assert not ok and out.startswith("⏳")


def test_binarise_checker_does_not_mutate_learner_visible_state(capsys):
    # The checker hands the learner copies: a learner that sorts rows in place cannot corrupt later checks.
    def sorts_in_place(rows, seed=0):
        for row in rows:
            _check_row(row)
            order = sorted(range(len(row["scores"])), key=lambda k: -row["scores"][k])
            row["scores"] = [row["scores"][k] for k in order]
            row["completions"] = [row["completions"][k] for k in order]
        return good_binarise(rows, seed)

    ok, out = verdict(ch02.check_binarise_ratings, sorts_in_place, capsys)
    assert ok and out.startswith("✅")
