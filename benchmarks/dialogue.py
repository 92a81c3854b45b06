"""The preference world's pairs as multi-turn HH-RLHF-style dialogues, for benchmarking.

Real dialogue preference data (Anthropic HH-RLHF, Bai et al. 2022, arXiv 2204.05862) is a
transcript: several "Human:" / "Assistant:" exchanges, then the two candidate last assistant turns.
The shared history is most of the tokens; the part that decides the label is short. The preference
world's own pairs have one-sentence prompts, so a benchmark on them alone never measures that
regime. `render_dialogues` keeps each world pair's label, final question and two answers, and puts
earlier exchanges in front of the question (other prompts of the same split with their chosen
answers, like a conversation that drifts), until the prompt has a drawn target of
`min_prompt_tokens`..`max_prompt_tokens` tokens. Rows go through the course's own HH-RLHF adapter
(`rmcourse.formats.from_hh_rlhf`), so the prompt is the dialogue text up to the last
"Assistant:" and chosen / rejected are the final answers.

    from benchmarks.dialogue import render_dialogues
    dialogue = render_dialogues(world.pairs("train", 1000), tokenizer, seed=0)

Deterministic: the same pairs, tokenizer and seed give the same transcripts.
"""
from __future__ import annotations

import random
from typing import Any

HUMAN, ASSISTANT = "\n\nHuman: ", "\n\nAssistant: "
KEEP_COLUMNS = ("id", "section", "subset", "novelty", "chosen_gold", "rejected_gold", "margin")


def _n_tokens(tokenizer: Any, texts: list[str]) -> list[int]:
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def render_dialogues(pairs: Any, tokenizer: Any, min_prompt_tokens: int = 100,
                     max_prompt_tokens: int = 250, seed: int = 0, max_tries: int = 8):
    """HH-style multi-turn versions of `pairs` (canonical world pairs), as canonical pairs.

    For each pair a target prompt length is drawn uniformly from
    [`min_prompt_tokens`, `max_prompt_tokens`] (tokens of `tokenizer`, counted on the canonical
    prompt "Human: ...\\n\\nAssistant: ...\\n\\nHuman: <question>\\n\\nAssistant:"). Earlier
    exchanges, each another pair's prompt and chosen answer, are put in front of the question
    while the prompt is shorter than its target and the next exchange still fits under
    `max_prompt_tokens` (up to `max_tries` candidates per slot). Columns `id`, `section`,
    `subset`, `novelty`, golds and `margin` are kept where present; `n_turns` (human turns in the
    prompt) and `prompt_tokens` are added.
    """
    from datasets import Dataset

    from rmcourse.formats import from_hh_rlhf

    for name in ("prompt", "chosen", "rejected"):
        if name not in pairs.column_names:
            raise ValueError(f"pairs has no column {name!r}")
    if not 0 < min_prompt_tokens <= max_prompt_tokens:
        raise ValueError(f"need 0 < min_prompt_tokens <= max_prompt_tokens, got "
                         f"{min_prompt_tokens}, {max_prompt_tokens}")
    n = len(pairs)
    if n < 2:
        raise ValueError("need at least 2 pairs: the history turns come from the other pairs")
    prompts, chosen, rejected = pairs["prompt"], pairs["chosen"], pairs["rejected"]
    # WordPiece / BPE pre-tokenizers split on whitespace, so a transcript's token count is the
    # sum of its parts' counts (checked on the final text below).
    exchange = _n_tokens(tokenizer, [f"Human: {p}{ASSISTANT}{c}" for p, c in zip(prompts, chosen)])
    question = _n_tokens(tokenizer, [f"Human: {p}{ASSISTANT.rstrip()}" for p in prompts])
    separator = _n_tokens(tokenizer, ["Human: x\n\nHuman: x"])[0] - 2 * _n_tokens(tokenizer, ["Human: x"])[0]

    rows, turns, lengths = [], [], []
    for i in range(n):
        rng = random.Random(f"{seed}:{i}")
        target = rng.randint(min_prompt_tokens, max_prompt_tokens)
        history: list[int] = []
        length = question[i]
        while length < target:
            for _ in range(max_tries):
                j = rng.randrange(n)
                if j != i and j not in history and length + exchange[j] + separator <= max_prompt_tokens:
                    history.append(j)
                    length += exchange[j] + separator
                    break
            else:
                break  # nothing short enough: stop with what fits
        context = "".join(f"{HUMAN}{prompts[j]}{ASSISTANT}{chosen[j]}" for j in history)
        head = f"{context}{HUMAN}{prompts[i]}{ASSISTANT}"
        rows.append({"chosen": head + chosen[i], "rejected": head + rejected[i]})
        turns.append(len(history) + 1)
    out = from_hh_rlhf(rows)
    lengths = _n_tokens(tokenizer, list(out["prompt"]))
    for name in KEEP_COLUMNS:
        if name in pairs.column_names:
            out = out.add_column(name, list(pairs[name]))
    return out.add_column("n_turns", turns).add_column("prompt_tokens", lengths)


def describe(ds) -> dict:
    """Prompt-length summary of a rendered set: min / median / max tokens, share in 100-250."""
    import statistics

    lengths = list(ds["prompt_tokens"])
    return {"n": len(lengths), "min": min(lengths), "median": statistics.median(lengths),
            "max": max(lengths), "mean_turns": statistics.mean(ds["n_turns"]),
            "share_100_250": sum(100 <= x <= 250 for x in lengths) / len(lengths)}


def _demo() -> None:  # python benchmarks/dialogue.py: print one transcript and the summary
    from rmcourse.models import load_tokenizer
    from rmcourse.world import PreferenceWorld

    tokenizer = load_tokenizer("minilm")
    ds = render_dialogues(PreferenceWorld(seed=0).pairs("train", 200), tokenizer)
    print(ds[0]["prompt"], "\n--- chosen:", ds[0]["chosen"], "\n--- rejected:", ds[0]["rejected"])
    print(describe(ds))


if __name__ == "__main__":
    _demo()
