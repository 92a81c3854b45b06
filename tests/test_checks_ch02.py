"""Each chapter-02 checker must accept a correct solution and reject typical mistakes by name."""
from __future__ import annotations

import difflib

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


# --- is_near_duplicate --------------------------------------------------------------------------
def good_near_dup(chosen, rejected, max_similarity=0.8):
    return difflib.SequenceMatcher(None, chosen, rejected).ratio() >= max_similarity


def test_is_near_duplicate_checker(capsys):
    ok, out = verdict(ch02.check_is_near_duplicate, good_near_dup, capsys)
    assert ok and out.startswith("✅")

    strict = lambda a, b, max_similarity=0.8: difflib.SequenceMatcher(None, a, b).ratio() > max_similarity  # noqa: E731
    ok, out = verdict(ch02.check_is_near_duplicate, strict, capsys)
    assert not ok and "ratio >= max_similarity" in out

    fixed = lambda a, b, max_similarity=0.8: difflib.SequenceMatcher(None, a, b).ratio() >= 0.8  # noqa: E731
    ok, out = verdict(ch02.check_is_near_duplicate, fixed, capsys)
    assert not ok and "ignore the max_similarity" in out

    exact = lambda a, b, max_similarity=0.8: a == b  # noqa: E731
    ok, out = verdict(ch02.check_is_near_duplicate, exact, capsys)
    assert not ok and "must be flagged" in out

    ok, out = verdict(ch02.check_is_near_duplicate, todo, capsys)
    assert not ok and out.startswith("⏳")


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
