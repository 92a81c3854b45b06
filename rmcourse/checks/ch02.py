"""Checkers for chapter 02 (preference data). Each takes the learner's function and prints a verdict.

Every checker compares against the course's own implementation (`rmcourse.formats`,
`rmcourse.filters`, `rmcourse.tokenization`) on hand-picked inputs that expose the usual
mistakes, and names the first thing that is wrong.
"""
from __future__ import annotations

import difflib
from typing import Any, Callable

import numpy as np
import torch

from rmcourse.checking import check, expect
from rmcourse.filters import text_length
from rmcourse.formats import split_hh_transcript

__all__ = [
    "check_split_hh",
    "check_cjk_length",
    "check_is_near_duplicate",
    "check_collate_dynamic",
    "check_majority_vote",
]

SEED_CHOSEN = "反向传播是一种用于训练神经网络的优化算法。它通过计算损失函数相对于网络参数的梯度，然后使用梯度下降更新参数..."
SEED_REJECTED = "反向传播就是把错误从后面传到前面，然后调整权重。"


# ----------------------------------------------------------------------------------------------
def check_split_hh(fn: Callable[[str], tuple[str, str]]) -> bool:
    """Exercise: split_hh(transcript) -> (prompt, response) for one HH-RLHF transcript."""

    def call(text: str) -> tuple[str, str]:
        out = fn(text)
        expect(out is not None, "split_hh returned None: did you forget `return prompt, response`?")
        expect(isinstance(out, tuple) and len(out) == 2,
               f"split_hh must return a (prompt, response) tuple, got {type(out).__name__}")
        expect(all(isinstance(x, str) for x in out), "prompt and response must both be str")
        return out

    def test() -> None:
        single = "\n\nHuman: What is 2+2?\n\nAssistant: 2+2 equals 4."
        prompt, response = call(single)
        want = split_hh_transcript(single)
        expect(response == want[1], f"response of a one-turn transcript is {response!r}, expected "
                                    f"{want[1]!r} (the text after the last '\\n\\nAssistant:', stripped)")
        expect(prompt == want[0], f"prompt is {prompt!r}, expected {want[0]!r}: keep everything up to "
                                  "and including '\\n\\nAssistant:', without the leading newlines")
        multi = ("\n\nHuman: Hi\n\nAssistant: Hello! How can I help?"
                 "\n\nHuman: Name a prime.\n\nAssistant: 7 is prime.")
        prompt, response = call(multi)
        want = split_hh_transcript(multi)
        if response.startswith("Hello!"):
            raise AssertionError("you split at the FIRST '\\n\\nAssistant:'; in a multi-turn "
                                 "dialogue the response is the LAST assistant turn (use str.rfind)")
        expect((prompt, response) == want, f"multi-turn split gave {(prompt, response)!r}, expected {want!r}")
        try:
            fn("\n\nHuman: hello, is anyone there?")
        except ValueError:
            pass
        else:
            raise AssertionError("a transcript with no '\\n\\nAssistant:' turn must raise ValueError, "
                                 "not return a made-up split")

    return check("split_hh", test)


# ----------------------------------------------------------------------------------------------
def check_cjk_length(fn: Callable[[str], int]) -> bool:
    """Exercise: cjk_length(text) -> int: one unit per CJK character, whitespace words otherwise."""

    def call(text: str) -> int:
        out = fn(text)
        expect(out is not None, "cjk_length returned None: did you forget `return`?")
        expect(isinstance(out, (int, np.integer)) and not isinstance(out, bool),
               f"cjk_length({text!r}) returned {type(out).__name__}, expected an int")
        return int(out)

    def test() -> None:
        for text in ("reward models score responses", "", "  spaced   out  "):
            want = text_length(text, unit="auto")
            got = call(text)
            expect(got == want, f"cjk_length({text!r}) = {got}, expected {want} whitespace words")
        got = call(SEED_REJECTED)
        want = text_length(SEED_REJECTED, unit="auto")
        if got == 1:
            raise AssertionError("the seed's Chinese answer counts as 1: that is the seed's bug "
                                 "(str.split() finds no spaces in Chinese); count each CJK character")
        if got == len(SEED_REJECTED):
            raise AssertionError(f"cjk_length counted every character ({got}), including the CJK "
                                 "punctuation '，' and '。'; punctuation is not a unit")
        expect(got == want, f"cjk_length of the seed's rejected answer = {got}, expected {want} "
                            "(one per Chinese character, punctuation not counted)")
        expect(call(SEED_CHOSEN) == text_length(SEED_CHOSEN, unit="auto"),
               f"cjk_length of the seed's chosen answer = {call(SEED_CHOSEN)}, expected "
               f"{text_length(SEED_CHOSEN, unit='auto')}")
        mixed = "BERT模型 works well"
        got = call(mixed)
        expect(got == 5, f"cjk_length({mixed!r}) = {got}, expected 5: 'BERT' is a word, 模 and 型 "
                         "count one each, then 'works' and 'well' (a CJK character ends a Latin word)")
        expect(call("カタカナ") == 4, "Japanese kana count one unit per character too (use is_cjk)")
        expect(call("好。好") == 2, "'好。好' has 2 units: CJK punctuation separates, it is not a word")

    return check("cjk_length", test)


# ----------------------------------------------------------------------------------------------
def check_is_near_duplicate(fn: Callable[..., bool]) -> bool:
    """Exercise: is_near_duplicate(chosen, rejected, max_similarity=0.8) -> True to DROP the pair."""

    def call(a: str, b: str, m: float) -> bool:
        out = fn(a, b, max_similarity=m)
        expect(out is not None, "is_near_duplicate returned None: did you forget `return`?")
        expect(isinstance(out, (bool, np.bool_)), f"is_near_duplicate returned {type(out).__name__}, expected bool")
        return bool(out)

    def test() -> None:
        same = "Paris is the capital of France."
        expect(call(same, same, 0.8), "identical responses must count as near-duplicates (ratio 1.0)")
        expect(not call("Paris is the capital of France.", "I do not know, sorry.", 0.8),
               "two clearly different responses were flagged as near-duplicates")
        expect(call("Paris is the capital of France.", "I do not know, sorry.", 0.0),
               "with max_similarity=0 every pair must be flagged: did you ignore the max_similarity argument?")
        ratio = difflib.SequenceMatcher(None, "abcd", "abcx").ratio()  # 0.75
        expect(call("abcd", "abcx", 0.75), f"ratio {ratio} with max_similarity=0.75 must be flagged: "
                                           "a pair is dropped when ratio >= max_similarity")
        expect(not call("abcd", "abcx", 0.76), f"ratio {ratio} with max_similarity=0.76 must NOT be "
                                               "flagged: did you ignore the max_similarity argument?")
        near = ("The largest ocean on Earth is the Pacific. There are five named oceans.",
                "The largest ocean on Earth is the Atlantic. There are five named oceans.")
        want = difflib.SequenceMatcher(None, *near).ratio() >= 0.8
        expect(call(*near, 0.8) == want, "a one-word change in a long sentence has a ratio above 0.8 "
                                         "and must be flagged; use difflib.SequenceMatcher(None, a, b).ratio()")

    return check("is_near_duplicate", test)


# ----------------------------------------------------------------------------------------------
def check_collate_dynamic(fn: Callable[..., dict]) -> bool:
    """Exercise: collate_dynamic(chosen_ids, rejected_ids, pad_id) -> {"input_ids", "attention_mask"}."""

    def test() -> None:
        chosen = [[101, 7, 8, 102], [101, 9, 102]]
        rejected = [[101, 5, 102], [101, 4, 4, 4, 4, 102]]
        out = fn(chosen, rejected, pad_id=0)
        expect(isinstance(out, dict), f"collate_dynamic must return a dict, got {type(out).__name__}")
        for key in ("input_ids", "attention_mask"):
            expect(key in out, f"the batch has no {key!r} key")
            expect(isinstance(out[key], torch.Tensor), f"batch[{key!r}] must be a torch.Tensor")
            expect(out[key].dtype == torch.long, f"batch[{key!r}] has dtype {out[key].dtype}, expected torch.long")
        ids, mask = out["input_ids"], out["attention_mask"]
        expect(ids.shape[0] == 4, f"input_ids has {ids.shape[0]} rows for 2 pairs; stack the 2 chosen "
                                  "then the 2 rejected sequences (4 rows, one forward pass)")
        if ids.shape[1] == 512:
            raise AssertionError("you padded to 512 (the seed's bug): pad to the longest sequence in the batch")
        expect(ids.shape[1] == 6, f"input_ids is {ids.shape[1]} wide, expected 6 = the longest sequence "
                                  "among ALL rows (chosen and rejected share one batch)")
        want = torch.tensor([[101, 7, 8, 102, 0, 0], [101, 9, 102, 0, 0, 0],
                             [101, 5, 102, 0, 0, 0], [101, 4, 4, 4, 4, 102]])
        if torch.equal(ids, want[[0, 2, 1, 3]]):
            raise AssertionError("rows are interleaved (c0, r0, c1, r1); put all chosen rows first, then "
                                 "all rejected rows, so rewards[:B] and rewards[B:] line up")
        expect(torch.equal(ids, want), f"input_ids\n{ids}\nexpected (right padding with pad_id)\n{want}")
        expect(torch.equal(mask, (want != 0).long()), "attention_mask must be 1 on real tokens and 0 on padding")
        out = fn([[1, 2]], [[3, 4, 5]], pad_id=9)
        expect(out["input_ids"].tolist() == [[1, 2, 9], [3, 4, 5]],
               f"with pad_id=9 got {out['input_ids'].tolist()}: use the pad_id argument, not 0")

    return check("collate_dynamic", test)


# ----------------------------------------------------------------------------------------------
def check_majority_vote(fn: Callable[[np.ndarray], tuple[Any, Any]]) -> bool:
    """Exercise: majority_vote(votes) -> (label, agreement) for a bool matrix [pairs, annotators]."""

    def call(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = fn(votes)
        expect(isinstance(out, tuple) and len(out) == 2,
               "majority_vote must return a (label, agreement) tuple")
        label = np.asarray(out[0])
        agreement = np.asarray(out[1], dtype=float)
        expect(label.shape == (votes.shape[0],) and agreement.shape == (votes.shape[0],),
               f"for {votes.shape[0]} pairs got shapes {label.shape} and {agreement.shape}, "
               f"expected ({votes.shape[0]},) each: one label and one agreement per pair (reduce axis=1)")
        return label.astype(bool), agreement

    def test() -> None:
        votes = np.array([[1, 1, 1, 0, 1], [0, 0, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=bool)
        label, agreement = call(votes)
        expect(label.tolist() == [True, False, True],
               f"labels {label.tolist()}, expected [True, False, True] (True = most annotators prefer A)")
        if np.allclose(agreement, [0.8, 0.2, 0.6]):
            raise AssertionError("agreement is the share voting for A; it must be the share voting "
                                 "WITH THE MAJORITY label (so always >= 0.5)")
        expect(np.allclose(agreement, [0.8, 0.8, 0.6]),
               f"agreement {agreement.tolist()}, expected [0.8, 0.8, 0.6]")
        rng = np.random.default_rng(0)
        big = rng.random((200, 7)) < 0.6
        label, agreement = call(big)
        share_a = big.mean(axis=1)
        expect(np.array_equal(label, share_a > 0.5), "labels disagree with the majority on random votes")
        expect(np.allclose(agreement, np.maximum(share_a, 1 - share_a)),
               "agreement disagrees with the share of votes for the majority on random votes")

    return check("majority_vote", test)
