"""Critics for Critique-out-Loud (CLoud) reward models: oracle, noisy oracle and LM critiques.

CLoud (Ankner et al. 2024, arXiv 2408.11791) first has the reward model *write* a critique of the
response, then a trained reward **head** scores (prompt, response, critique). The learning
document's `CLoudRewardModel` instead asks the LM to write a number after its critique: that is
an LLM judge, not CLoud (seed errata 17). What the critique adds depends on how good the critic
is, so chapter 07b compares critics of known quality on the preference world:

* `oracle_critique`: written from the response's hidden attributes (right or wrong claim or
  answer, refusal decision, helpful details, tone, filler), the critique a perfect critic would
  write. For an arithmetic prompt it also redoes the sum ("37 + 48 = 85, not 75").
* `noisy_oracle_critiques`: the oracle with its verdict on correctness flipped for a given share
  of responses (a mediocre critic).
* `lm_critiques`: the critiques a decoder LM writes itself (greedy, cached).

`with_critique` joins a response and its critique into the text the reward head reads.
"""
from __future__ import annotations

import random
import re
from typing import Any, Mapping, Sequence

__all__ = [
    "CRITIC_TEMPLATE",
    "oracle_critique",
    "oracle_critiques",
    "noisy_oracle_critiques",
    "lm_critiques",
    "with_critique",
    "arithmetic_check",
]

CRITIC_TEMPLATE = """Check the answer below. Is it correct, safe and helpful? Point out its main mistake, if any, in one sentence.

Question: {prompt}
Answer: {response}"""

_ATTR_KEYS = ("correct", "refuses", "detail", "polite", "padding", "should_refuse")
_ARITH = re.compile(r"(\d+)\s*(\+|-|\*|plus|minus|times)\s*(\d+)")
_OPS = {"+": "+", "plus": "+", "-": "-", "minus": "-", "*": "*", "times": "*"}
_STATED = re.compile(r"(?:answer is|result is|gives|makes|that is)\s+(-?\d+)", re.IGNORECASE)


def _check_attrs(attrs: Any, where: str = "attrs") -> Mapping:
    from rmcourse.linear_reward import _check_attribute_values

    if not isinstance(attrs, Mapping):
        raise TypeError(f"{where} must be a mapping of hidden attributes, got {type(attrs).__name__}")
    missing = [k for k in _ATTR_KEYS if k not in attrs]
    if missing:
        raise ValueError(f"{where} is missing {missing} (need {', '.join(_ATTR_KEYS)})")
    # "False" or "3" as text would be read as True or crash int(): the world's own checks
    _check_attribute_values(attrs, where, _ATTR_KEYS)
    return attrs


def arithmetic_check(prompt: str, response: str) -> str | None:
    """"a op b = right, not stated" when `prompt` is a plain arithmetic question and `response`
    states a different final number; "a op b = right" when it states the right one; else None."""
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise TypeError("prompt and response must be strings")
    m = _ARITH.search(prompt)
    stated = _STATED.findall(response)
    if not m or not stated:
        return None
    a, op, b = int(m.group(1)), _OPS[m.group(2)], int(m.group(3))
    right = a + b if op == "+" else a - b if op == "-" else a * b
    said = int(stated[-1])
    return f"{a} {op} {b} = {right}" + ("" if said == right else f", not {said}")


def oracle_critique(prompt: str, response: str, attrs: Mapping) -> str:
    """The critique a perfect critic writes, from the response's hidden attributes.

    Says whether the claim or answer is right (with the redone sum for arithmetic), whether a
    refusal was the right call, how many helpful details it gives, its tone and its filler.
    """
    attrs = _check_attrs(attrs)
    parts: list[str] = []
    refuses, should = bool(attrs["refuses"]), bool(attrs["should_refuse"])
    if should and refuses:
        parts.append("It rightly refuses a harmful request.")
    elif should:
        parts.append("It helps with a harmful request, which it should refuse.")
    elif refuses:
        parts.append("It refuses a harmless request that it should answer.")
    if attrs["correct"] is not None:
        check = arithmetic_check(prompt, response)
        if attrs["correct"]:
            parts.append("The answer is correct" + (f": {check}." if check else "."))
        else:
            parts.append("The answer is wrong" + (f": {check}." if check else "."))
    detail = int(attrs["detail"])
    parts.append(f"It gives {detail} useful detail{'s' if detail != 1 else ''}." if detail else
                 "It gives no useful detail.")
    parts.append("The tone is friendly." if attrs["polite"] else "The tone is curt.")
    padding = int(attrs["padding"])
    if padding:
        parts.append(f"It has {padding} filler sentence{'s' if padding != 1 else ''} that add nothing.")
    return " ".join(parts)


def _rows(prompts: Sequence[str], responses: Sequence[str], attrs: Sequence[Mapping]):
    for name, value in (("prompts", prompts), ("responses", responses)):
        if isinstance(value, str):
            raise TypeError(f"{name} must be a list of strings, got a single string")
        if value is None or isinstance(value, (bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    if isinstance(attrs, (Mapping, str, bytes)) or attrs is None or not hasattr(attrs, "__iter__"):
        raise TypeError("attrs must be a list of attribute dicts (one per response), got "
                        f"{type(attrs).__name__}")
    prompts, responses, attrs = list(prompts), list(responses), list(attrs)
    if not len(prompts) == len(responses) == len(attrs):
        raise ValueError(f"{len(prompts)} prompts, {len(responses)} responses and {len(attrs)} "
                         "attribute dicts: they must line up")
    return prompts, responses, attrs


def oracle_critiques(prompts: Sequence[str], responses: Sequence[str],
                     attrs: Sequence[Mapping]) -> list[str]:
    """`oracle_critique` for every (prompt, response, attrs)."""
    prompts, responses, attrs = _rows(prompts, responses, attrs)
    for i, a in enumerate(attrs):
        _check_attrs(a, f"attrs[{i}]")
    return [oracle_critique(p, r, a) for p, r, a in zip(prompts, responses, attrs)]


def noisy_oracle_critiques(prompts: Sequence[str], responses: Sequence[str], attrs: Sequence[Mapping],
                           error_rate: float, seed: int = 0) -> list[str]:
    """Oracle critiques whose right/wrong verdict is flipped for a share `error_rate` of the
    responses that make a claim (drawn with `seed`); everything else stays true."""
    if isinstance(error_rate, bool) or not isinstance(error_rate, (int, float)) or not 0 <= error_rate <= 1:
        hint = " (a fraction, not a percentage)" if isinstance(error_rate, (int, float)) and 1 < error_rate <= 100 else ""
        raise ValueError(f"error_rate must be a number in [0, 1], got {error_rate!r}{hint}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int (it seeds Python's random.Random), got {type(seed).__name__}")
    prompts, responses, attrs = _rows(prompts, responses, attrs)
    rng = random.Random(seed)
    out = []
    for i, (p, r, a) in enumerate(zip(prompts, responses, attrs)):
        a = dict(_check_attrs(a, f"attrs[{i}]"))
        if a["correct"] is not None and rng.random() < error_rate:
            a["correct"] = not a["correct"]
            out.append(oracle_critique("", r, a))  # no prompt: the redone sum would give it away
        else:
            out.append(oracle_critique(p, r, a))
    return out


def lm_critiques(lm, prompts: Sequence[str], responses: Sequence[str], max_new_tokens: int = 24,
                 batch_size: int = 32, template: str = CRITIC_TEMPLATE, progress: bool = False) -> list[str]:
    """Critiques written by a causal LM (greedy, cached under artifacts/): its own view of each
    response, whatever its quality. An empty generation becomes "(no critique)"."""
    from rmcourse.generative import _check_lm, chat_texts, generate

    _check_lm(lm)
    texts = chat_texts(lm, template, prompts, responses)
    out = generate(lm, texts, max_new_tokens=max_new_tokens, batch_size=batch_size, progress=progress)
    return [c if c.strip() else "(no critique)" for c in out]


def with_critique(responses: Sequence[str], critiques: Sequence[str] | None) -> list[str]:
    """The text a critique-conditioned reward head reads: response, then "Critique: ...".
    `critiques=None` returns the responses unchanged (the no-critique baseline)."""
    if isinstance(responses, str):
        raise TypeError("responses must be a list of strings, got a single string")
    responses = list(responses)
    if critiques is None:
        return responses
    if isinstance(critiques, str):
        raise TypeError("critiques must be a list of strings, got a single string")
    critiques = list(critiques)
    if len(critiques) != len(responses):
        raise ValueError(f"{len(responses)} responses but {len(critiques)} critiques")
    for i, c in enumerate(critiques):
        if c is not None and not isinstance(c, str):
            raise TypeError(f"critique {i} must be a str, got {type(c).__name__}")
        if not isinstance(c, str) or not c.strip():
            raise ValueError(f"critique {i} is empty: a critic that says nothing should say so")
    return [f"{r}\n\nCritique: {c}" for r, c in zip(responses, critiques)]
