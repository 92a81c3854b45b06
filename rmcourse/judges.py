"""LLM-as-a-judge: judging prompts, a score parser that never guesses, the expected score from
digit probabilities, position-debiased pairwise verdicts, and Self-Rewarding's pair builder.

The learning document's `SelfRewardingModel` asks for a 1-10 score and calls an `extract_score`
it never defines; an unparseable judgement would come back as None and `candidates.sort(...)`
would raise a TypeError (seed errata 16). Self-Rewarding Language Models (Yuan et al. 2024,
arXiv 2401.10020) instead use an additive 5-point rubric whose judgement ends in
"Score: <total points>", sample N = 4 candidates per prompt, and keep the highest- and
lowest-scored candidates as a preference pair, dropping the prompt when the two scores are equal.

Two ways to read a score from a judge LM:

* generate the judgement and **parse** it (`parse_score`): a small model often writes no score,
  or a number that is not the score; the parser returns None then, and callers count and drop
  those judgements rather than inventing a value;
* put "Score: " in the assistant's mouth and read the **expected score** from the next-token
  probabilities of the digits (`expected_score`, as G-Eval does: Liu et al. 2023,
  arXiv 2303.16634). Deterministic, never unparseable, and it uses the whole distribution rather
  than one sampled digit.

Pairwise judging shows both answers at once and reads p("A") against p("B"). LLM judges prefer a
position (Zheng et al. 2023, arXiv 2306.05685, "position bias"). Judge both orders: Zheng et al.
call a winner only when both orders agree (a tie otherwise); Wang et al. 2023 (arXiv 2305.17926,
balanced position calibration) average the two, as `debiased_preference` does.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from rmcourse.bootstrap import as_numbers
from rmcourse.world_text import FILLER as _WORLD_FILLER

__all__ = [
    "SEED_JUDGE_TEMPLATE",
    "SEED_JUDGE_TEMPLATE_ZH",
    "RUBRIC_JUDGE_TEMPLATE",
    "PAIRWISE_TEMPLATE",
    "SCORE_PREFIX",
    "fill_template",
    "format_judge_prompt",
    "parse_score",
    "ParsedScores",
    "parse_scores",
    "naive_first_number",
    "FILLER_SENTENCES",
    "add_filler",
    "expected_score",
    "judge_score_logprobs",
    "judge_expected_scores",
    "judge_generate",
    "pairwise_first_probability",
    "debiased_preference",
    "position_flip_rate",
    "SelfRewardingPairs",
    "best_vs_worst_pairs",
]

# The learning document's judge prompt (kept verbatim) and its English translation.
SEED_JUDGE_TEMPLATE_ZH = """请作为一个AI助手评判者，评估以下回答的质量。
从1-10分评分，考虑有用性、准确性和完整性。

用户问题: {prompt}
AI回答: {response}

评分和理由:"""

SEED_JUDGE_TEMPLATE = """Please act as an AI assistant judge and evaluate the quality of the answer below.
Score it from 1 to 10, considering helpfulness, accuracy and completeness.

User question: {prompt}
AI answer: {response}

Score and reasoning:"""

# Adapted from Figure 2 of Yuan et al. (2024), the LLM-as-a-Judge prompt of Self-Rewarding LMs.
RUBRIC_JUDGE_TEMPLATE = """Review the user's question and the corresponding response using the additive 5-point scoring system described below. Points are accumulated based on the satisfaction of each criterion:
- Add 1 point if the response is relevant and provides some information related to the user's inquiry, even if it is incomplete or contains some irrelevant content.
- Add another point if the response addresses a substantial portion of the user's question, but does not completely resolve the query or provide a direct answer.
- Award a third point if the response answers the basic elements of the user's question in a useful way, regardless of whether it seems to have been written by an AI Assistant or if it has elements typically found in blogs or search results.
- Grant a fourth point if the response is clearly written from an AI Assistant's perspective, addressing the user's question directly and comprehensively, and is well-organized and helpful, even if there is slight room for improvement in clarity, conciseness or focus.
- Bestow a fifth point for a response that is impeccably tailored to the user's question by an AI Assistant, without extraneous information, reflecting expert knowledge, and demonstrating a high-quality, engaging, and insightful answer.

User: {prompt}
<response>{response}</response>

After examining the user's instruction and the response:
- Briefly justify your total score, up to 100 words.
- Conclude with the score using the format: "Score: <total points>\""""

PAIRWISE_TEMPLATE = """Which response answers the user's question better? Judge correctness first, then helpfulness.

Question: {prompt}

Response A: {a}

Response B: {b}

Reply with one letter: A or B."""

SCORE_PREFIX = "Score: "

# "Score: N" (also "**Score**: N", "Score = N", "Score: **N**"): the form the rubric asks for.
_SCORE_STATED = re.compile(r"\bscore\b\s*\**\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?",
                           re.IGNORECASE)
# "score is N", "score of N", "Score N": read only when no "Score:" form is present, so a later
# "a score of 5 needs..." does not override the concluding "Score: 3".
_SCORE_MENTIONED = re.compile(r"\bscore\b\s*(?:is|of)?\s*\**\s*(\d+(?:\.\d+)?)(?:\s*(?:/|out of)\s*(\d+))?",
                              re.IGNORECASE)
_OUT_OF = re.compile(r"(\d+(?:\.\d+)?)\s*(?:/|out of)\s*(\d+)", re.IGNORECASE)
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def _check_str(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}")
    return value


def _check_scale(low: float, high: float) -> tuple[float, float]:
    for name, v in (("low", low), ("high", high)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise TypeError(f"{name} must be a finite number, got {v!r}")
    if not low < high:
        raise ValueError(f"the scale needs low < high, got low={low}, high={high}")
    return float(low), float(high)


_FIELD = re.compile(r"\{(\w+)\}")


def fill_template(template: str, **fields: str) -> str:
    """`template` with each `{name}` replaced by `fields[name]`, in one pass.

    One pass, not chained `str.replace` calls: a filled-in text is never searched again, so an
    answer that contains "{b}" or "{response}" (code does) stays as written instead of receiving
    another field's text. Braces that name no given field are left alone (no `str.format`
    escaping needed). Every given field must appear in the template.
    """
    _check_str(template, "template")
    for name, value in fields.items():
        _check_str(value, name)
    missing = [name for name in fields if "{" + name + "}" not in template]
    if missing:
        raise ValueError("template must contain the field(s) " + ", ".join("{" + m + "}" for m in missing))
    return _FIELD.sub(lambda m: fields.get(m.group(1), m.group(0)), template)


def format_judge_prompt(template: str, prompt: str, response: str) -> str:
    """`template` with the user's `prompt` and the judged `response` filled in."""
    _check_str(template, "template")
    _check_str(prompt, "prompt")
    _check_str(response, "response")
    if "{prompt}" not in template or "{response}" not in template:
        raise ValueError("template must contain the fields {prompt} and {response}")
    if not response.strip():
        raise ValueError("response is empty: there is nothing to judge")
    return fill_template(template, prompt=prompt, response=response)


def parse_score(text: str, low: float = 0, high: float = 5) -> float | None:
    """The score a judgement states, or None when it states none in [low, high].

    Reads the LAST "Score: N" (the rubric asks to conclude with it; markdown such as
    "**Score**: N" is allowed; "Score: 4/5" reads 4 when the denominator is `high`); failing
    that, the last "score is N" / "score of N"; failing that, the last "N/high" or
    "N out of high". Any other number in the text (a sum quoted from the answer, a list index)
    is never taken for the score. A stated score outside the scale, or over another
    denominator ("Score: 4/10" on 0-5), returns None: it is not a valid judgement.
    """
    text = _check_str(text, "text")
    low, high = _check_scale(low, high)
    candidates: list[tuple[float, float | None]] = []
    for pattern in (_SCORE_STATED, _SCORE_MENTIONED):
        candidates = [(float(m.group(1)), float(m.group(2)) if m.group(2) else None)
                      for m in pattern.finditer(text)]
        if candidates:
            break
    if not candidates:
        candidates = [(float(m.group(1)), float(m.group(2))) for m in _OUT_OF.finditer(text)
                      if float(m.group(2)) == high]
    if not candidates:
        return None
    value, denominator = candidates[-1]
    if denominator is not None and denominator != high:
        return None  # "Score: 7/10" on a 0-5 scale is not a score on this scale
    if not low <= value <= high:
        return None
    return value


@dataclass(frozen=True)
class ParsedScores:
    """Parsed judgements: `scores[i]` is a number or None; `n_unparsed` counts the Nones."""

    scores: list[float | None]
    n_unparsed: int

    @property
    def parse_rate(self) -> float:
        return 1.0 - self.n_unparsed / len(self.scores) if self.scores else float("nan")


def parse_scores(texts: Sequence[str], low: float = 0, high: float = 5) -> ParsedScores:
    """`parse_score` on every judgement, with the count of those it could not parse."""
    if isinstance(texts, str):
        raise TypeError("texts must be a list of judgements, got a single string")
    if texts is None or isinstance(texts, (bytes, dict)) or not hasattr(texts, "__iter__"):
        raise TypeError(f"texts must be a list of judgements (strings), got {type(texts).__name__}")
    _check_scale(low, high)
    scores = []
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] must be a str (a judgement), got {type(t).__name__}")
        scores.append(parse_score(t, low, high))
    return ParsedScores(scores=scores, n_unparsed=sum(s is None for s in scores))


def naive_first_number(text: str) -> float | None:
    """The pitfall parser: the first number anywhere in the judgement (do not use)."""
    m = _NUMBER.search(_check_str(text, "text"))
    return float(m.group(0)) if m else None


# Sentences that add length and nothing else (for measuring verbosity bias): the preference
# world's own filler, worth 0 in its gold reward; content-neutral, with no assistant-style closers
# ("let me know if...") that a rubric's "AI Assistant perspective" point could reward.
FILLER_SENTENCES: tuple[str, ...] = tuple(_WORLD_FILLER)


def add_filler(response: str, n: int, seed: int = 0) -> str:
    """`response` with `n` distinct filler sentences (from `FILLER_SENTENCES`, the preference
    world's filler) appended: the same content, only longer. Deterministic for a given seed."""
    import random

    _check_str(response, "response")
    if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= len(FILLER_SENTENCES):
        raise ValueError(f"n must be an int in 0..{len(FILLER_SENTENCES)}, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (it seeds Python's random.Random), got {type(seed).__name__}")
    extra = random.Random(seed).sample(FILLER_SENTENCES, n)
    return " ".join([response.rstrip()] + extra)


def expected_score(logprobs: Any, values: Sequence[float] | None = None) -> torch.Tensor:
    """E[score] under the judge's next-token distribution restricted to the score tokens.

    `logprobs` [N, K] are log p(token_k | "... Score: ") for the K score tokens (e.g. "0".."5"),
    `values` their scores (default 0..K-1). The K probabilities are renormalised to sum to 1
    (a softmax over the K log-probs), then averaged against `values`. Returns float32 [N].
    """
    checked = as_numbers(logprobs, "logprobs", ndim=None, allow_empty=True, finite=False)
    lp = torch.as_tensor(logprobs, dtype=torch.float32)
    if lp.ndim != 2 or lp.shape[1] < 2:
        raise ValueError(f"logprobs must be [N, K] with K >= 2 score tokens, got shape {tuple(lp.shape)}")
    if bool(torch.isnan(lp).any()):
        raise ValueError("logprobs contain NaN")
    if bool((lp > 1e-6).any()):
        raise ValueError("logprobs must be <= 0 (log-probabilities, not logits or probabilities)")
    dead = np.flatnonzero(np.all(np.isneginf(checked), axis=1))
    if dead.size:
        raise ValueError(f"row {int(dead[0])} of logprobs is -inf for every score token: no "
                         "probability to average")
    if values is not None:
        # text, None, NaN: refused before torch reads them
        as_numbers(values, "values", ndim=None)
    v = torch.arange(lp.shape[1], dtype=torch.float32) if values is None else torch.as_tensor(values, dtype=torch.float32)
    if v.shape != (lp.shape[1],):
        raise ValueError(f"{v.numel()} values for {lp.shape[1]} score tokens")
    return torch.softmax(lp, dim=1) @ v


def judge_score_logprobs(lm, prompts: Sequence[str], responses: Sequence[str],
                         template: str | None = None, scale: Sequence[int] = range(6),
                         batch_size: int = 16, progress: bool = False) -> torch.Tensor:
    """log p(digit | judging prompt, "Score: ") for each (prompt, response): float32 [N, len(scale)].

    The chat prompt is `template` (default: the 5-point rubric) with the assistant's reply
    started as "Score: ", so the next token is the score. `scale` lists the single-digit scores.
    """
    from rmcourse.generative import _check_lm, next_token_logprobs

    _check_lm(lm)
    template = RUBRIC_JUDGE_TEMPLATE if template is None else template
    prompts, responses = _paired_texts(prompts, responses)
    scale = _check_digits(scale)
    if any(not 0 <= s <= 9 for s in scale) or len(set(scale)) != len(scale) or len(scale) < 2:
        raise ValueError(f"scale must list distinct single digits, got {scale}")
    texts = [lm.chat(format_judge_prompt(template, p, r), SCORE_PREFIX) for p, r in zip(prompts, responses)]
    return next_token_logprobs(lm, texts, [str(s) for s in scale], batch_size=batch_size, progress=progress)


def judge_expected_scores(lm, prompts: Sequence[str], responses: Sequence[str],
                          template: str | None = None, scale: Sequence[int] = range(6),
                          batch_size: int = 16, progress: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """(expected score, probability mass on the score digits) for each (prompt, response).

    See `judge_score_logprobs`; the mass tells how much the judge wanted to write anything
    other than a digit after "Score: ".
    """
    from rmcourse.generative import _check_lm

    _check_lm(lm)
    scale = _check_digits(scale)
    lp = judge_score_logprobs(lm, prompts, responses, template, scale, batch_size, progress)
    return expected_score(lp, scale), lp.exp().sum(dim=1)


def judge_generate(lm, prompts: Sequence[str], responses: Sequence[str], template: str,
                   max_new_tokens: int = 48, batch_size: int = 16, progress: bool = False) -> list[str]:
    """Greedy judgements (text) of each (prompt, response) under `template`."""
    from rmcourse.generative import _check_lm, generate

    _check_lm(lm)
    prompts, responses = _paired_texts(prompts, responses)
    texts = [lm.chat(format_judge_prompt(template, p, r)) for p, r in zip(prompts, responses)]
    return generate(lm, texts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)


def _check_digits(scale: Any) -> list[int]:
    if isinstance(scale, (str, bytes)) or not hasattr(scale, "__iter__"):
        raise TypeError(f"scale must be a list of single-digit ints such as range(6), got "
                        f"{type(scale).__name__} {scale!r}")
    out = []
    for s in scale:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"scale must list ints (single digits), got {type(s).__name__} {s!r}")
        out.append(int(s))
    return out


def _paired_texts(prompts: Sequence[str], responses: Sequence[str],
                  name: str = "responses") -> tuple[list[str], list[str]]:
    """Both as lists of str of one length; errors call the second list `name`."""
    from rmcourse.generative import pair_lists

    try:
        prompts, responses = pair_lists(prompts, responses)
    except (TypeError, ValueError) as err:
        if name == "responses":
            raise
        raise type(err)(re.sub(r"\bresponses\b", name, str(err))) from None
    if not prompts:
        raise ValueError("no (prompt, response) pairs to judge")
    return prompts, responses


def pairwise_first_probability(lm, prompts: Sequence[str], first: Sequence[str], second: Sequence[str],
                               template: str = PAIRWISE_TEMPLATE, batch_size: int = 16,
                               progress: bool = False) -> torch.Tensor:
    """p("A") / (p("A") + p("B")): how strongly the judge prefers the answer shown FIRST, as A."""
    from rmcourse.generative import _check_lm, next_token_logprobs, two_way_share

    _check_lm(lm)
    if not isinstance(template, str):
        raise TypeError(f"template must be a str, got {type(template).__name__}")
    prompts, first = _paired_texts(prompts, first, "first")
    _, second = _paired_texts(prompts, second, "second")
    for field_ in ("{prompt}", "{a}", "{b}"):
        if field_ not in template:
            raise ValueError(f"template must contain the field {field_}")
    texts = [lm.chat(fill_template(template, prompt=p, a=a, b=b))
             for p, a, b in zip(prompts, first, second)]
    lp = next_token_logprobs(lm, texts, ["A", "B"], batch_size=batch_size, progress=progress)
    return two_way_share(lp[:, 0], lp[:, 1])  # p("A") over p("A") + p("B")


def _probabilities(values: Any, name: str) -> np.ndarray:
    """Checked only (the caller converts as before): numbers in [0, 1], no text, no NaN."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().double().numpy()
    arr = as_numbers(values, name, ndim=None, allow_empty=True, finite=False)
    flat = arr.reshape(-1)
    bad = np.flatnonzero(np.isnan(flat) | (flat < 0) | (flat > 1))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name} must hold probabilities in [0, 1], got {flat[i]} at index {i} "
                         "(percentages? divide by 100; log-probabilities? exponentiate)")
    return arr


def debiased_preference(p_ab: Any, p_ba: Any) -> torch.Tensor:
    """P(a better than b) from both orders: the mean of p_A(a, b) and 1 - p_A(b, a).

    `p_ab` is the probability that the answer shown first wins when a is first; `p_ba` the same
    with b first. A judge that always prefers position A gives 0.5: no preference, as it should.
    """
    _probabilities(p_ab, "p_ab")
    _probabilities(p_ba, "p_ba")
    x = torch.as_tensor(p_ab, dtype=torch.float32)
    y = torch.as_tensor(p_ba, dtype=torch.float32)
    if x.shape != y.shape:
        raise ValueError(f"p_ab {tuple(x.shape)} and p_ba {tuple(y.shape)} differ in shape")
    if bool(((x < 0) | (x > 1) | (y < 0) | (y > 1)).any()) or bool(torch.isnan(x).any() or torch.isnan(y).any()):
        raise ValueError("probabilities must lie in [0, 1]")
    return 0.5 * (x + (1.0 - y))


def position_flip_rate(p_ab: Any, p_ba: Any) -> float:
    """Share of pairs whose verdict changes when the two answers swap places.

    A consistent judge that picks a when a is first (p_ab > 0.5) picks a again when a is second
    (p_ba < 0.5). A flip = the same POSITION wins both times (or a tie at 0.5 in either order).
    Both are probabilities in [0, 1] (`pairwise_first_probability`): percentages, log-probabilities
    and NaN are refused, since each would count as a flip.
    """
    _probabilities(p_ab, "p_ab")
    _probabilities(p_ba, "p_ba")
    x = torch.as_tensor(p_ab, dtype=torch.float32)
    y = torch.as_tensor(p_ba, dtype=torch.float32)
    if x.shape != y.shape or x.ndim != 1 or x.numel() == 0:
        raise ValueError("p_ab and p_ba must be 1-D and of the same non-zero length")
    consistent = ((x > 0.5) & (y < 0.5)) | ((x < 0.5) & (y > 0.5))
    return float(1.0 - consistent.float().mean())


@dataclass(frozen=True)
class SelfRewardingPairs:
    """Best-vs-worst pairs built from judged candidate pools, and what was dropped."""

    pairs: list[dict]
    n_prompts: int
    n_unparsed: int            # judgements dropped because no score could be read
    n_dropped_tie: int         # prompts whose best and worst scores were equal
    n_dropped_too_few: int     # prompts left with fewer than 2 scored candidates

    def __len__(self) -> int:
        return len(self.pairs)


def best_vs_worst_pairs(prompts: Sequence[str], candidates: Sequence[Sequence[str]],
                        scores: Sequence[Sequence[float | None]]) -> SelfRewardingPairs:
    """Self-Rewarding's preference pairs: per prompt, the highest- vs the lowest-scored candidate.

    Unparseable judgements (None) are dropped and counted, never replaced by a made-up score;
    a prompt with fewer than two scored candidates, or whose best and worst scores are equal,
    yields no pair (Yuan et al. 2024 discard ties). Among equal top (bottom) scores the first
    (last) candidate is kept. Each pair dict: prompt, chosen, rejected, chosen_score,
    rejected_score, chosen_index, rejected_index, prompt_index.
    """
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, got a single string")
    for name, value in (("prompts", prompts), ("candidates", candidates), ("scores", scores)):
        if isinstance(value, (str, bytes)):
            raise TypeError(f"{name} must be a list (one entry per prompt), got a single string")
        if value is None or isinstance(value, dict) or not hasattr(value, "__len__"):
            raise TypeError(f"{name} must be a list (one entry per prompt), got {type(value).__name__}")
    for name, value in (("candidates", candidates), ("scores", scores)):
        for i, item in enumerate(value):
            if isinstance(item, (str, bytes)):
                raise TypeError(f"{name}[{i}] must be a list ({'the candidate texts' if name == 'candidates' else 'one score per candidate'} "
                                f"of prompt {i}), got a single string: wrap it in a list")
            if not hasattr(item, "__len__"):
                raise TypeError(f"{name}[{i}] must be a list ({'the candidate texts' if name == 'candidates' else 'one score per candidate'} "
                                f"of prompt {i}), got {type(item).__name__} {item!r}")
    prompts = list(prompts)
    if len(candidates) != len(prompts) or len(scores) != len(prompts):
        raise ValueError(f"{len(prompts)} prompts, {len(candidates)} candidate lists and "
                         f"{len(scores)} score lists: they must line up")
    pairs: list[dict] = []
    unparsed = ties = too_few = 0
    for i, (prompt, cands, sc) in enumerate(zip(prompts, candidates, scores)):
        if isinstance(cands, str) or len(cands) != len(sc):
            raise ValueError(f"prompt {i}: {len(cands)} candidates but {len(sc)} scores")
        kept = []
        for j, s in enumerate(sc):
            if s is None:
                unparsed += 1
                continue
            if isinstance(s, bool) or not isinstance(s, (int, float, np.integer, np.floating)):
                raise TypeError(f"prompt {i}, candidate {j}: score must be a number or None, got {s!r}")
            if math.isnan(float(s)):  # float(s): np.float32 NaN is not a Python float
                unparsed += 1
                continue
            kept.append((float(s), j))
        if len(kept) < 2:
            too_few += 1
            continue
        best = max(kept, key=lambda t: (t[0], -t[1]))
        worst = min(kept, key=lambda t: (t[0], -t[1]))
        if best[0] == worst[0]:
            ties += 1
            continue
        if best[1] == worst[1]:  # cannot happen with finite scores; a pair of one answer is no pair
            raise RuntimeError(f"prompt {i}: chosen and rejected are the same candidate {best[1]}")
        pairs.append({"prompt": prompt, "chosen": cands[best[1]], "rejected": cands[worst[1]],
                      "chosen_score": best[0], "rejected_score": worst[0],
                      "chosen_index": best[1], "rejected_index": worst[1], "prompt_index": i})
    return SelfRewardingPairs(pairs=pairs, n_prompts=len(prompts), n_unparsed=unparsed,
                              n_dropped_tie=ties, n_dropped_too_few=too_few)
