"""Checkers for chapter 02 (preference data). Each takes the learner's function and prints a verdict.

Each checker runs the learner's function on hand-picked inputs that expose the usual mistakes,
compares with the course's own implementation where there is one (`rmcourse.formats`,
`rmcourse.filters`, `rmcourse.tokenization`) or with the properties the task asks for (the
train/test split, the UltraFeedback binarisation), and names the first thing that is wrong.
"""
from __future__ import annotations

import builtins
from typing import Any, Callable, Sequence

import numpy as np
import torch

from rmcourse.checking import check, expect
from rmcourse.filters import text_length
from rmcourse.formats import split_hh_transcript

__all__ = [
    "check_split_hh",
    "check_cjk_length",
    "check_group_split",
    "check_collate_dynamic",
    "check_majority_vote",
    "check_binarise_ratings",
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
_GREETINGS = ("", "Hi!", "Quick question.", "Hello there, I need some help.")
_SUFFIXES = ("", "Thanks!", "Keep it short.")


def _split_key(prompt: str) -> str:
    """The checker's prompts are 'greeting|question|suffix'; the key is the question."""
    return prompt.split("|")[1]


def _prompts(n_questions: int, variants: int = 1) -> list[str]:
    """Prompts for `n_questions` questions, each in `variants` greeting/suffix wordings."""
    return [f"{_GREETINGS[v % len(_GREETINGS)]}|Question number {q}: what is {q} times {q + 3}?|"
            f"{_SUFFIXES[(q + v) % len(_SUFFIXES)]}"
            for q in range(n_questions) for v in range(variants)]


def check_group_split(fn: Callable[..., Sequence[str]]) -> bool:
    """Exercise: group_split(prompts, test_percent, key, salt) -> one "train" / "test" per prompt,
    decided by a stable hash of salt + key(prompt) alone."""

    def call(prompts: list[str], pct: int, salt: str = "rmcourse") -> list[str]:
        out = fn(list(prompts), pct, key=_split_key, salt=salt)
        expect(out is not None, "group_split returned None: did you forget `return`?")
        expect(isinstance(out, (list, tuple)) or hasattr(out, "tolist"),
               f"group_split must return a list of split names, got {type(out).__name__}")
        out = list(out.tolist() if hasattr(out, "tolist") else out)
        expect(len(out) == len(prompts),
               f"{len(prompts)} prompts but {len(out)} split names: return one per prompt")
        bad = [x for x in out if x not in ("train", "test")]
        if bad:
            raise AssertionError(f"each entry must be the string 'train' or 'test', got {bad[0]!r}")
        return out

    def test() -> None:
        # 1. Python's hash() of a str is salted per process: the split would change every run.
        calls: list[Any] = []
        real_hash = builtins.hash

        def spy(obj: Any) -> int:
            calls.append(obj)
            return real_hash(obj)

        builtins.hash = spy
        try:
            call(_prompts(20), 20)
        finally:
            builtins.hash = real_hash
        if calls:
            raise AssertionError("you called Python's built-in hash(): for strings it is randomised per "
                                 "process (PYTHONHASHSEED), so the same prompt lands in another split the "
                                 "next time Python starts; hash the UTF-8 bytes with zlib or hashlib")
        # 2. The same key, the same split; and the decision is made by key(prompt), not the prompt.
        prompts = _prompts(300, variants=3)
        duplicated = prompts + prompts[::3]  # every first wording twice
        out = call(duplicated, 20)
        first = dict(zip(duplicated[: len(prompts)], out[: len(prompts)]))
        if any(first[p] != s for p, s in zip(duplicated[len(prompts):], out[len(prompts):])):
            raise AssertionError("the same prompt, given twice, landed in both splits: decide per key with a "
                                 "hash, not per row (a random draw or the row index lets a question leak "
                                 "into train)")
        by_key: dict[str, set[str]] = {}
        for p, s in zip(prompts, out):
            by_key.setdefault(_split_key(p), set()).add(s)
        if any(len(v) > 1 for v in by_key.values()):
            raise AssertionError("two prompts with the same key (the same question, another greeting) landed "
                                 "in different splits: hash key(prompt), not the whole prompt")
        # 3. A prompt's split depends on its key alone: not on the other prompts or their order.
        whole = call(prompts, 20)
        expect(call(prompts[:150], 20) == whole[:150],
               "the split of the first 150 prompts changed when 750 more arrived: a prompt's split must "
               "depend on its own key only (shuffling the distinct keys and cutting the list moves "
               "questions between train and test whenever the data set grows)")
        expect(call(prompts[::-1], 20) == whole[::-1],
               "reversing the order of the prompts changed their splits: decide from the key alone")
        # 4. About test_percent % of the keys in test, and the edges.
        many = _prompts(3000)

        def share_in_test(pct: int) -> float:
            share = call(many, pct).count("test") / len(many)
            if abs(share - (1 - pct / 100)) < 0.04 and pct != 50:
                raise AssertionError(f"{share:.0%} of 3000 questions went to test with test_percent={pct}: "
                                     "train and test are swapped (test when bucket < test_percent)")
            return share

        share = share_in_test(20)
        expect(abs(share - 0.2) < 0.04,
               f"{share:.1%} of 3000 questions went to test with test_percent=20; expected about 20%: map "
               "each key to a bucket 0..99 that is uniform, and test when bucket < test_percent")
        expect(call(many, 0).count("test") == 0,
               "test_percent=0 must put no prompt in test (bucket < test_percent, not <=)")
        expect(call(many, 100).count("test") == len(many), "test_percent=100 must put every prompt in test")
        share = share_in_test(50)
        expect(abs(share - 0.5) < 0.04, f"{share:.1%} of 3000 questions went to test with test_percent=50; "
                                        "expected about 50%")
        # 5. The salt gives an independent split.
        a, b = call(many, 20, salt="experiment-a"), call(many, 20, salt="experiment-b")
        moved = sum(x != y for x, y in zip(a, b)) / len(many)
        expect(moved > 0.1, f"changing the salt moved only {moved:.0%} of the questions: hash salt + key, so "
                            "that another salt gives an independent split (about 32% move at 20%)")
        # 6. Bad input.
        for pct in (150, -5):
            try:
                fn(_prompts(3), pct, key=_split_key, salt="rmcourse")
            except ValueError:
                continue
            raise AssertionError(f"test_percent={pct} must raise ValueError: it is a percentage from 0 to 100")

    return check("group_split", test)


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
    """Exercise: majority_vote(votes) -> (label, majority_agreement) for a bool matrix
    [pairs, annotators]. Majority agreement is the share voting with the majority (>= 0.5), not the
    chapter's `agreement` column (the share voting with the released label, which can be 0.2)."""

    def call(votes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = fn(votes)
        expect(isinstance(out, tuple) and len(out) == 2,
               "majority_vote must return a (label, majority_agreement) tuple")
        label = np.asarray(out[0])
        agreement = np.asarray(out[1], dtype=float)
        expect(label.shape == (votes.shape[0],) and agreement.shape == (votes.shape[0],),
               f"for {votes.shape[0]} pairs got shapes {label.shape} and {agreement.shape}, "
               f"expected ({votes.shape[0]},) each: one label and one majority agreement per pair "
               "(reduce axis=1)")
        return label.astype(bool), agreement

    def test() -> None:
        votes = np.array([[1, 1, 1, 0, 1], [0, 0, 1, 0, 0], [1, 0, 1, 0, 1]], dtype=bool)
        label, agreement = call(votes)
        expect(label.tolist() == [True, False, True],
               f"labels {label.tolist()}, expected [True, False, True] (True = most annotators prefer A)")
        if np.allclose(agreement, [0.8, 0.2, 0.6]):
            raise AssertionError("you returned the share voting for A; majority agreement is the share "
                                 "voting WITH THE MAJORITY label (so always >= 0.5)")
        expect(np.allclose(agreement, [0.8, 0.8, 0.6]),
               f"majority agreement {agreement.tolist()}, expected [0.8, 0.8, 0.6]")
        rng = np.random.default_rng(0)
        big = rng.random((200, 7)) < 0.6
        label, agreement = call(big)
        share_a = big.mean(axis=1)
        expect(np.array_equal(label, share_a > 0.5), "labels disagree with the majority on random votes")
        expect(np.allclose(agreement, np.maximum(share_a, 1 - share_a)),
               "majority agreement disagrees with the share of votes for the majority on random votes")

    return check("majority_vote", test)


# ----------------------------------------------------------------------------------------------
_PAIR_KEYS = ("prompt", "chosen", "rejected", "score_chosen", "score_rejected")


def _rated_rows(n: int, seed: int) -> list[dict]:
    """`n` UltraFeedback-like rows with unique prompts: 4 completions each, mostly distinct scores
    in a random order; every 10th row ties at the top (two 9s), every 20th row is all ties."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        if i % 20 == 7:
            scores = [5.0] * 4
        elif i % 10 == 3:
            scores = [9.0, 9.0, *rng.choice(np.arange(1.0, 9.0), size=2, replace=False)]
        else:
            scores = list(rng.choice(np.arange(1.0, 11.0), size=4, replace=False))
        order = rng.permutation(4)
        scores = [float(scores[j]) for j in order]
        rows.append({"prompt": f"Prompt {i}: explain topic {i * 7 % 97}.",
                     "completions": [f"answer {k} to prompt {i}" for k in range(4)],
                     "scores": scores})
    return rows


def check_binarise_ratings(fn: Callable[..., tuple[Any, Any]]) -> bool:
    """Exercise: binarise_ratings(rows, seed) -> (pairs, n_dropped), the Zephyr / UltraFeedback
    binarisation: chosen = the highest score, rejected = one of the strictly lower-scored
    completions drawn at random from a generator seeded by `seed`; rows with no lower score dropped."""

    def call(rows: list[dict], seed: int) -> tuple[list[dict], int]:
        out = fn([dict(r, completions=list(r["completions"]), scores=list(r["scores"])) for r in rows], seed=seed)
        expect(out is not None, "binarise_ratings returned None: did you forget `return pairs, n_dropped`?")
        expect(isinstance(out, tuple) and len(out) == 2,
               f"binarise_ratings must return a (pairs, n_dropped) tuple, got {type(out).__name__}")
        pairs, n_dropped = out
        expect(isinstance(pairs, (list, tuple)), f"pairs must be a list of dicts, got {type(pairs).__name__}")
        for pair in pairs:
            expect(isinstance(pair, dict), f"each pair must be a dict, got {type(pair).__name__}")
            missing = [k for k in _PAIR_KEYS if k not in pair]
            if missing:
                raise AssertionError(f"a pair has no {missing[0]!r} key: each pair is a dict with "
                                     f"{', '.join(_PAIR_KEYS)}")
        expect(isinstance(n_dropped, (int, np.integer)) and not isinstance(n_dropped, bool),
               f"n_dropped must be an int, got {type(n_dropped).__name__}")
        return list(pairs), int(n_dropped)

    def locate(rows: list[dict], pairs: list[dict]) -> list[tuple[dict, int, int]]:
        """(row, chosen index, rejected index) per pair, checking texts and scores on the way."""
        by_prompt = {r["prompt"]: r for r in rows}
        found = []
        for pair in pairs:
            row = by_prompt.get(pair["prompt"])
            expect(row is not None, f"a pair has prompt {pair['prompt']!r}, which is no row's prompt: "
                                    "copy the row's prompt into its pair")
            texts = row["completions"]
            for side in ("chosen", "rejected"):
                expect(pair[side] in texts, f"pair[{side!r}] = {pair[side]!r} is not one of its row's "
                                            "completions: store the completion text, not its index or score")
            c, r = texts.index(pair["chosen"]), texts.index(pair["rejected"])
            for side, k in (("chosen", c), ("rejected", r)):
                expect(float(pair[f"score_{side}"]) == row["scores"][k],
                       f"score_{side} is {pair[f'score_{side}']!r} but that completion's score is "
                       f"{row['scores'][k]}: store the score of the completion you picked")
            found.append((row, c, r))
        return found

    def test() -> None:
        # 0. Bad input names the problem.
        try:
            fn([{"prompt": "p", "completions": ["a", "b"], "scores": [1.0]}], seed=0)
        except ValueError:
            pass
        else:
            raise AssertionError("a row with 2 completions and 1 score must raise ValueError: the scores "
                                 "no longer say which completion they rate")
        # 1. Four hand-made rows: one clear, one all-tie, one tie at the top, one single completion.
        hand = [
            {"prompt": "clear", "completions": ["c0", "c1", "c2", "c3"], "scores": [6.0, 9.0, 3.0, 7.0]},
            {"prompt": "all tie", "completions": ["t0", "t1", "t2", "t3"], "scores": [5.0, 5.0, 5.0, 5.0]},
            {"prompt": "top tie", "completions": ["u0", "u1", "u2", "u3"], "scores": [8.0, 2.0, 8.0, 4.0]},
            {"prompt": "single", "completions": ["s0"], "scores": [7.0]},
        ]
        pairs, n_dropped = call(hand, seed=0)
        if any(p["prompt"] in ("all tie", "single") for p in pairs):
            raise AssertionError("a row whose completions all have the same score (or that has one completion) "
                                 "gave a pair: its 'rejected' is as good as its 'chosen', a pair with no "
                                 "preference in it; drop such rows and count them in n_dropped")
        expect(len(pairs) == 2, f"4 rows (one all-tie, one with a single completion) gave {len(pairs)} pairs, "
                                "expected 2: one pair per row that has a lower-scored completion")
        expect(n_dropped == 2, f"n_dropped = {n_dropped}, expected 2: count the rows that gave no pair "
                               "(all scores tie, or fewer than two completions)")
        locate(hand, pairs)
        clear = next(p for p in pairs if p["prompt"] == "clear")
        if clear["chosen"] == "c2":
            raise AssertionError("chosen is the LOWEST-scored completion: chosen and rejected are swapped "
                                 "(chosen = the highest score)")
        expect(clear["chosen"] == "c1", f"for scores [6, 9, 3, 7] chosen is {clear['chosen']!r}, expected "
                                        "'c1' (score 9): chosen is the completion with the highest score, "
                                        "wherever it sits in the list")
        top_tie = next(p for p in pairs if p["prompt"] == "top tie")
        if top_tie["chosen"] == "u2":
            raise AssertionError("for scores [8, 2, 8, 4] chosen is 'u2', the LAST of the two best: on a tie "
                                 "at the top the spec takes the first one, as max() and np.argmax pick it "
                                 "(a reversed scan or `>=` while looping keeps the last)")
        # 2. Many rows: properties of every pair and of the random draw.
        rows = _rated_rows(900, seed=1)
        pairs, n_dropped = call(rows, seed=0)
        n_all_tie = sum(len(set(r["scores"])) == 1 for r in rows)
        located = locate(rows, pairs)
        for row, c, r in located:
            best = max(row["scores"])
            expect(row["scores"][c] == best, f"chosen has score {row['scores'][c]} but its row's best is "
                                             f"{best}: chosen must be a highest-scored completion")
            if c == r:
                raise AssertionError("rejected is the chosen completion itself: you drew from ALL the "
                                     "completions, the best included; draw only among the other completions "
                                     "that score lower")
            if row["scores"][r] == best:
                raise AssertionError(f"rejected ties the chosen score ({best}) in a row with two best "
                                     "completions: a tie carries no preference. Draw among the completions "
                                     "scoring strictly LOWER than the best (the released H4 script allowed "
                                     "such ties; Argilla's re-binarisation filters them out)")
        expect(len(set(p["prompt"] for p in pairs)) == len(pairs), "two pairs came from the same row: "
                                                                   "make one pair per prompt")
        expect(n_dropped == n_all_tie, f"n_dropped = {n_dropped}, but {n_all_tie} of the {len(rows)} rows "
                                       "have all scores tied: count exactly the rows that gave no pair")
        expect(len(pairs) == len(rows) - n_all_tie, f"{len(rows)} rows, {n_all_tie} of them all-tie, gave "
                                                    f"{len(pairs)} pairs; expected {len(rows) - n_all_tie}")
        # Where the rejected one ranks among the lower-scored completions, and where it sits in the row.
        rank_counts, slot_counts, n3 = np.zeros(3), np.zeros(3), 0
        for row, c, r in located:
            lower = [k for k, s in enumerate(row["scores"]) if s < row["scores"][c]]
            if len(lower) != 3:
                continue
            n3 += 1
            by_score = sorted(lower, key=lambda k: -row["scores"][k])
            rank_counts[by_score.index(r)] += 1
            slot_counts[lower.index(r)] += 1
        ranks, slots = rank_counts / n3, slot_counts / n3
        if ranks[2] > 0.9:
            raise AssertionError(f"rejected is the LOWEST-scored completion in {ranks[2]:.0%} of the rows: that "
                                 "is not the recipe. Best-vs-worst pairs are the easiest ones (the widest score "
                                 "gap); Zephyr / UltraFeedback binarized pick one of the lower completions AT "
                                 "RANDOM, so many pairs are close calls the model can learn from")
        if ranks[0] > 0.9:
            raise AssertionError(f"rejected is the runner-up (second-best score) in {ranks[0]:.0%} of the rows: "
                                 "pick one of the lower-scored completions at random, not by rank")
        if slots.max() > 0.9:
            raise AssertionError(f"rejected sits at the same position among the lower completions in "
                                 f"{slots.max():.0%} of the rows: the draw repeats itself. Make ONE generator "
                                 "from the seed before the loop, not a new one per row")
        expect(np.all(np.abs(ranks - 1 / 3) < 0.08),
               f"among 3 lower-scored completions, rejected was the 2nd/3rd/4th best in {ranks[0]:.0%} / "
               f"{ranks[1]:.0%} / {ranks[2]:.0%} of {n3} rows; a uniform draw gives about 33% each")
        # 3. Seeded: the same seed, the same pairs; another seed, other draws.
        again, _ = call(rows, seed=0)
        if again != pairs:
            raise AssertionError("the same seed gave different pairs on a second call: take all randomness "
                                 "from a generator made from `seed` (np.random.default_rng(seed) or "
                                 "random.Random(seed)), not from the global np.random / random state")
        other, _ = call(rows, seed=1)
        expect(other != pairs, "seed=0 and seed=1 gave identical pairs: the seed argument is ignored "
                               "(build the generator from `seed`, not from a fixed number)")

    return check("binarise_ratings", test)
