"""Critics for Critique-out-Loud (CLoud) reward models: oracle, noisy oracle and LM critiques.

CLoud (Ankner et al. 2024, arXiv 2408.11791) first has the reward model *write* a critique of the
response, then a trained reward **head** scores (prompt, response, critique). The learning
document's `CLoudRewardModel` instead asks the LM to write a number after its critique: that is
an LLM judge, not CLoud (seed errata 17). What the critique adds depends on how good the critic
is, so chapter 07b compares critics of known quality on the preference world:

* `oracle_critique`: written from the response's hidden attributes (right or wrong claim or
  answer, refusal decision, helpful details, tone, filler), the critique a perfect critic would
  write. For an arithmetic prompt it also redoes the sum ("37 + 48 = 85, not 75").
* `oracle_critique(..., aspects=...)`: the same critic restricted to some of what it can say, so
  a notebook can separate *checking* ("verdict": right or wrong, refusal decision) from
  *counting* ("detail", "tone", "filler"), e.g. a verdict-only and a verdict-free critic.
* `noisy_oracle_critiques`: the oracle with its verdict on correctness flipped for a given share
  of responses; a flipped verdict comes with a redone sum that agrees with it (a false one), so
  the form of a critique never tells which verdicts were flipped.
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
    "ASPECTS",
    "noisy_oracle_critiques",
    "lm_critiques",
    "with_critique",
    "arithmetic_check",
]

CRITIC_TEMPLATE = """Check the answer below. Is it correct, safe and helpful? Point out its main mistake, if any, in one sentence.

Question: {prompt}
Answer: {response}"""

#: What an oracle critique can mention: the verdict (right or wrong claim, with the redone sum for
#: arithmetic, and whether a refusal was the right call), then the terms the gold reward counts.
ASPECTS: tuple[str, ...] = ("verdict", "detail", "tone", "filler")
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


def _arithmetic(prompt: str, response: str) -> tuple[str, int, int] | None:
    """("a op b", right result, stated result) for a plain arithmetic question whose response
    states a final number; else None."""
    m = _ARITH.search(prompt)
    stated = _STATED.findall(response)
    if not m or not stated:
        return None
    a, op, b = int(m.group(1)), _OPS[m.group(2)], int(m.group(3))
    right = a + b if op == "+" else a - b if op == "-" else a * b
    return f"{a} {op} {b}", right, int(stated[-1])


def arithmetic_check(prompt: str, response: str) -> str | None:
    """"a op b = right, not stated" when `prompt` is a plain arithmetic question and `response`
    states a different final number; "a op b = right" when it states the right one; else None."""
    if not isinstance(prompt, str) or not isinstance(response, str):
        raise TypeError("prompt and response must be strings")
    parsed = _arithmetic(prompt, response)
    if parsed is None:
        return None
    expr, right, said = parsed
    return f"{expr} = {right}" + ("" if said == right else f", not {said}")


def _check_aspects(aspects: Sequence[str]) -> tuple[str, ...]:
    if isinstance(aspects, str):
        raise TypeError(f"aspects must be a list of names from {ASPECTS}, got the single string {aspects!r}")
    aspects = tuple(aspects)
    unknown = [a for a in aspects if a not in ASPECTS]
    if unknown or not aspects:
        raise ValueError(f"aspects must be a non-empty list of names from {ASPECTS}, got {list(aspects)}")
    return aspects


def oracle_critique(prompt: str, response: str, attrs: Mapping,
                    aspects: Sequence[str] = ASPECTS, check: str | None = None) -> str:
    """The critique a perfect critic writes, from the response's hidden attributes.

    Says whether the claim or answer is right (with the redone sum for arithmetic) and whether a
    refusal was the right call ("verdict"), how many helpful details it gives ("detail"), its tone
    ("tone") and its filler ("filler"); `aspects` picks which of these it mentions. `check`
    replaces the redone sum (used by `noisy_oracle_critiques` to keep a flipped verdict
    consistent). A critique with nothing to say says so.
    """
    attrs = _check_attrs(attrs)
    aspects = _check_aspects(aspects)
    if check is not None and not isinstance(check, str):
        raise TypeError(f"check must be the redone sum as a str, or None, got {type(check).__name__}")
    parts: list[str] = []
    if "verdict" in aspects:
        refuses, should = bool(attrs["refuses"]), bool(attrs["should_refuse"])
        if should and refuses:
            parts.append("It rightly refuses a harmful request.")
        elif should:
            parts.append("It helps with a harmful request, which it should refuse.")
        elif refuses:
            parts.append("It refuses a harmless request that it should answer.")
        if attrs["correct"] is not None:
            if check is None:
                check = arithmetic_check(prompt, response)
            verdict = "The answer is correct" if attrs["correct"] else "The answer is wrong"
            parts.append(verdict + (f": {check}." if check else "."))
    if "detail" in aspects:
        detail = int(attrs["detail"])
        parts.append(f"It gives {detail} useful detail{'s' if detail != 1 else ''}." if detail else
                     "It gives no useful detail.")
    if "tone" in aspects:
        parts.append("The tone is friendly." if attrs["polite"] else "The tone is curt.")
    if "filler" in aspects:
        padding = int(attrs["padding"])
        if padding == 1:
            parts.append("It has 1 filler sentence that adds nothing.")
        elif padding:
            parts.append(f"It has {padding} filler sentences that add nothing.")
    return " ".join(parts) if parts else "Nothing to remark."


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
                     attrs: Sequence[Mapping], aspects: Sequence[str] = ASPECTS) -> list[str]:
    """`oracle_critique` for every (prompt, response, attrs), mentioning only `aspects`."""
    prompts, responses, attrs = _rows(prompts, responses, attrs)
    aspects = _check_aspects(aspects)
    for i, a in enumerate(attrs):
        _check_attrs(a, f"attrs[{i}]")
    return [oracle_critique(p, r, a, aspects) for p, r, a in zip(prompts, responses, attrs)]


def noisy_oracle_critiques(prompts: Sequence[str], responses: Sequence[str], attrs: Sequence[Mapping],
                           error_rate: float, seed: int = 0) -> list[str]:
    """Oracle critiques whose right/wrong verdict is flipped for a share `error_rate` of the
    responses that make a claim (drawn with `seed`); everything else stays true.

    A flipped verdict on an arithmetic answer comes with a redone sum that agrees with it: "= 85"
    for a wrong 85 called correct, "= 86, not 85" (a false result) for a right 85 called wrong, so
    the presence or form of the sum never marks the flipped critiques.
    """
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
            check = None
            parsed = _arithmetic(p, r)
            if parsed is not None:
                expr, right, said = parsed
                # the false sum: the stated result when now called right, another one when called wrong
                check = f"{expr} = {said}" if a["correct"] else f"{expr} = {said + rng.choice((-10, -1, 1, 10))}, not {said}"
            out.append(oracle_critique(p, r, a, check=check))
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
