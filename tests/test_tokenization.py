"""Truncation policy, pair formats, collation and length grouping (MiniLM tokenizer, no weights)."""
import random

import datasets
import numpy as np
import pytest
import torch

from rmcourse.models import load_tokenizer
from rmcourse.tokenization import (
    PairCollator,
    TruncationReport,
    encode_pair_texts,
    length_grouped_batches,
    length_sorted_chunks,
    pad_batch,
    padding_fraction,
    pair_layout,
    tokenize_pairs,
)

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
)


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer("minilm")


def ids_of(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"]


LONG_PROMPT = " ".join(f"word{i}" for i in range(60))  # many tokens, each position distinct


# ---------------------------------------------------------------- formats
def test_pair_format_equals_the_tokenizers_own(tok):
    prompts = ["What is the capital of France?", ""]
    responses = ["Paris is the capital.", "Nothing."]
    ids, types, report = encode_pair_texts(tok, prompts, responses, 64, return_token_type_ids=True)
    for p, r, i, t in zip(prompts, responses, ids, types):
        ref = tok(p, r)
        assert i == ref["input_ids"]
        assert t == ref["token_type_ids"]
    assert (report.n_total, report.n_truncated, report.n_dropped) == (2, 0, 0)
    layout = pair_layout(tok)
    assert layout.template == "pair" and layout.uses_token_types
    assert layout.prefix == (tok.cls_token_id,) and layout.suffix == (tok.sep_token_id,)


def test_chat_format_renders_the_template(tok):
    chat_tok = load_tokenizer("minilm")
    chat_tok.chat_template = CHATML
    prompt, response = "How are you today?", "Fine, thanks for asking."
    (ids,), report = encode_pair_texts(chat_tok, [prompt], [response], 128, template="chat")
    rendered = chat_tok.apply_chat_template(
        [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
    )
    assert ids == ids_of(chat_tok, rendered)
    assert pair_layout(chat_tok, "chat").uses_token_types is False


def test_plain_format(tok):
    (ids,), _ = encode_pair_texts(tok, ["hello"], ["world"], 32, template="plain")
    # the tokenizer's leading special token, prompt, a blank-line separator, response, no eos (BERT has none)
    assert ids[0] == tok.cls_token_id
    assert ids[1:] == ids_of(tok, "hello") + ids_of(tok, "\n\n") + ids_of(tok, "world")


# ---------------------------------------------------------------- truncation policy
def test_prompt_is_cut_from_the_left_and_response_kept(tok):
    response = "the answer is short"
    p_ids, r_ids = ids_of(tok, LONG_PROMPT), ids_of(tok, response)
    max_length = 40
    (ids,), report = encode_pair_texts(tok, [LONG_PROMPT], [response], max_length)
    assert len(ids) == max_length
    keep = max_length - 3 - len(r_ids)
    assert keep < len(p_ids)
    # kept prompt tokens are the LAST ones of the prompt
    assert ids == [tok.cls_token_id, *p_ids[-keep:], tok.sep_token_id, *r_ids, tok.sep_token_id]
    assert (report.n_total, report.n_truncated, report.n_dropped) == (1, 1, 0)


def test_response_that_does_not_fit_is_dropped(tok):
    long_response = " ".join(["reply"] * 50)
    prompts = ["short", LONG_PROMPT, "q"]
    responses = [long_response, "ok", "fine"]
    ids, report = encode_pair_texts(tok, prompts, responses, 30)
    assert ids[0] is None
    assert ids[1] is not None and len(ids[1]) == 30
    assert ids[2] == tok("q", "fine")["input_ids"]
    assert (report.n_total, report.n_truncated, report.n_dropped, report.n_kept) == (3, 1, 1, 2)


def test_response_exactly_filling_keeps_an_empty_prompt(tok):
    response = "alpha beta gamma"
    n = len(ids_of(tok, response)) + 3
    (ids,), report = encode_pair_texts(tok, ["a long prompt here"], [response], n)
    assert ids == [tok.cls_token_id, tok.sep_token_id, *ids_of(tok, response), tok.sep_token_id]
    assert report.n_truncated == 1 and report.n_dropped == 0
    (ids,), report = encode_pair_texts(tok, ["a long prompt here"], [response], n - 1)
    assert ids is None and report.n_dropped == 1


def test_report_is_readable():
    text = str(TruncationReport(200, 12, 3, max_length=128))
    assert "200 pairs" in text and "12" in text and "3 dropped" in text and "128" in text
    assert "197 kept" in text and "6.0%" in text and "1.5%" in text


# ---------------------------------------------------------------- tokenize_pairs
def _pairs():
    return datasets.Dataset.from_list([
        {"prompt": "What is two plus two?", "chosen": "Four.", "rejected": "Five, probably.", "margin": 1.0},
        {"prompt": LONG_PROMPT, "chosen": "a short answer", "rejected": " ".join(["long"] * 20), "margin": 0.5},
        {"prompt": "hi", "chosen": "hello", "rejected": " ".join(["way too long"] * 30), "margin": 0.0},
    ])


def test_tokenize_pairs_columns_and_counts(tok):
    out, report = tokenize_pairs(_pairs(), tok, 40)
    assert (report.n_total, report.n_truncated, report.n_dropped) == (3, 1, 1)
    assert len(out) == 2
    assert out["prompt"] == ["What is two plus two?", LONG_PROMPT]  # original columns kept, dropped row gone
    for col in ("chosen_input_ids", "rejected_input_ids", "chosen_token_type_ids", "rejected_token_type_ids", "length"):
        assert col in out.column_names
    row = out[0]
    assert row["chosen_input_ids"] == tok("What is two plus two?", "Four.")["input_ids"]
    assert row["length"] == max(len(row["chosen_input_ids"]), len(row["rejected_input_ids"]))


def test_both_sides_see_the_same_prompt_tokens(tok):
    out, _ = tokenize_pairs(_pairs(), tok, 40)
    row = out[1]
    c, r = row["chosen_input_ids"], row["rejected_input_ids"]
    sep = tok.sep_token_id
    c_prompt, r_prompt = c[1 : c.index(sep)], r[1 : r.index(sep)]
    assert c_prompt == r_prompt
    assert c_prompt == ids_of(tok, LONG_PROMPT)[-len(c_prompt):]
    assert len(r) == 40 and len(c) < 40  # the longer response decided the cut


def test_tokenize_pairs_accepts_a_list(tok):
    out, report = tokenize_pairs([{"prompt": "", "chosen": "yes", "rejected": "no"}], tok, 16)
    assert len(out) == 1 and report.n_dropped == 0


# ---------------------------------------------------------------- collator
def test_collator_stacks_chosen_then_rejected_and_pads_dynamically(tok):
    out, _ = tokenize_pairs(_pairs(), tok, 40)
    rows = [out[i] for i in range(len(out))]
    batch = PairCollator(tok)(rows)
    lengths = [len(r["chosen_input_ids"]) for r in rows] + [len(r["rejected_input_ids"]) for r in rows]
    assert batch["input_ids"].shape == (4, max(lengths))
    assert batch["input_ids"].dtype == torch.long and batch["attention_mask"].dtype == torch.long
    assert batch["attention_mask"].sum(1).tolist() == lengths
    n_pad = int((batch["attention_mask"] == 0).sum())
    assert n_pad == sum(max(lengths) - n for n in lengths)
    assert batch["input_ids"][1, : lengths[1]].tolist() == rows[1]["chosen_input_ids"]
    assert batch["input_ids"][3, : lengths[3]].tolist() == rows[1]["rejected_input_ids"]
    assert (batch["input_ids"][batch["attention_mask"] == 0] == tok.pad_token_id).all()
    assert batch["token_type_ids"].shape == batch["input_ids"].shape
    assert batch["token_type_ids"][0, : lengths[0]].tolist() == rows[0]["chosen_token_type_ids"]
    assert batch["margin"].dtype == torch.float32 and batch["margin"].tolist() == [1.0, 0.5]


def test_collator_pad_to_and_no_margin(tok):
    ds = _pairs().remove_columns("margin")
    out, _ = tokenize_pairs(ds, tok, 40)
    batch = PairCollator(tok, pad_to=512)([out[0], out[1]])
    assert batch["input_ids"].shape == (4, 512)
    assert "margin" not in batch
    real = int(batch["attention_mask"].sum())
    assert real == sum(len(out[i][f"{s}_input_ids"]) for s in ("chosen", "rejected") for i in range(2))


def test_collator_left_padding(tok):
    out, _ = tokenize_pairs(_pairs(), tok, 40)
    batch = PairCollator(tok, padding_side="left")([out[0], out[1]])
    mask = batch["attention_mask"]
    assert (mask[:, -1] == 1).all()  # every row ends with a real token
    assert mask[0, 0] == 0
    n = len(out[0]["chosen_input_ids"])
    assert batch["input_ids"][0, -n:].tolist() == out[0]["chosen_input_ids"]


def test_collator_bad_inputs(tok):
    out, _ = tokenize_pairs(_pairs(), tok, 40)
    collate = PairCollator(tok)
    with pytest.raises(ValueError, match="empty batch"):
        collate([])
    with pytest.raises(ValueError, match="no 'chosen_input_ids'"):
        collate([{"prompt": "x"}])
    rows = [dict(out[0]), dict(out[1])]
    rows[1]["margin"] = None
    with pytest.raises(ValueError, match="row 1 has no margin"):
        collate(rows)
    with pytest.raises(ValueError, match="more than pad_to=8"):
        PairCollator(tok, pad_to=8)([out[0]])
    with pytest.raises(ValueError, match="more than max_length=8"):
        PairCollator(tok, max_length=8)([out[0]])
    with pytest.raises(ValueError, match="chosen_token_type_ids"):
        collate([{"chosen_input_ids": [1, 2], "rejected_input_ids": [1]}])
    with pytest.raises(ValueError, match="padding_side"):
        PairCollator(tok, padding_side="middle")
    with pytest.raises(ValueError, match="pad_to"):
        PairCollator(tok, pad_to=0)
    with pytest.raises(TypeError, match="tokenizer"):
        PairCollator("minilm")


def test_pad_batch(tok):
    b = pad_batch(tok, [[5, 6, 7], [8]], padding_side="left")
    assert b["input_ids"].tolist() == [[5, 6, 7], [tok.pad_token_id, tok.pad_token_id, 8]]
    assert b["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    with pytest.raises(ValueError, match="empty sequence in row 1"):
        pad_batch(tok, [[5], []])


# ---------------------------------------------------------------- length grouping
def test_length_grouped_batches_cover_every_index_once():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(1003)]
    batches = length_grouped_batches(lengths, 16, seed=1, mega_batch_mult=10)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(1003))
    assert all(1 <= len(b) <= 16 for b in batches)
    assert sum(len(b) < 16 for b in batches) <= (1003 // 160) + 1  # only mega-batch tails are short


def test_length_grouping_reduces_padding():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(2000)]
    grouped = length_grouped_batches(lengths, 16, seed=3)
    idx = list(range(2000))
    random.Random(3).shuffle(idx)
    plain = [idx[s : s + 16] for s in range(0, 2000, 16)]
    assert padding_fraction(lengths, grouped) < 0.1
    assert padding_fraction(lengths, plain) > 0.3
    assert padding_fraction(lengths, plain, pad_to=512) > padding_fraction(lengths, plain)


def test_length_grouping_is_seeded_and_shuffled():
    lengths = list(range(400))
    a = length_grouped_batches(lengths, 8, seed=0)
    assert a == length_grouped_batches(lengths, 8, seed=0)
    assert a != length_grouped_batches(lengths, 8, seed=1)
    # batch order is shuffled: not sorted by length across the epoch
    firsts = [lengths[b[0]] for b in a]
    assert firsts != sorted(firsts) and firsts != sorted(firsts, reverse=True)
    ordered = length_grouped_batches(lengths, 8, shuffle=False)
    assert ordered[0] == list(range(399, 391, -1))


def test_length_grouping_bad_inputs():
    with pytest.raises(ValueError, match="lengths is empty"):
        length_grouped_batches([], 4)
    with pytest.raises(ValueError, match="batch_size"):
        length_grouped_batches([1, 2], 0)
    with pytest.raises(ValueError, match=r"lengths\[1\] is negative"):
        length_grouped_batches([1, -2], 2)
    with pytest.raises(TypeError, match=r"lengths\[0\]"):
        length_grouped_batches(["3"], 2)


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "prompts, responses, max_length, err, msg",
    [
        ([], [], 32, ValueError, "prompts is empty"),
        (["a", "b"], ["x"], 32, ValueError, "prompts has 2 texts but responses has 1"),
        (["a"], [3], 32, TypeError, "responses at row 0 must be a str"),
        ("a", ["x"], 32, TypeError, "prompts must be a list"),
        (["a", "b"], ["x", "  "], 32, ValueError, "empty text in responses at row 1"),
        (["a"], ["x"], 3, ValueError, "leaves no room"),
        (["a"], ["x"], 4096, ValueError, "exceeds the model's limit of 512"),
        (["a"], ["x"], 32.0, TypeError, "max_length must be an int"),
    ],
)
def test_encode_bad_inputs(tok, prompts, responses, max_length, err, msg):
    with pytest.raises(err, match=msg):
        encode_pair_texts(tok, prompts, responses, max_length)


def test_other_bad_inputs(tok):
    with pytest.raises(ValueError, match="unknown template 'xml'"):
        encode_pair_texts(tok, ["a"], ["b"], 32, template="xml")
    with pytest.raises(ValueError, match="has no chat template"):
        encode_pair_texts(tok, ["a"], ["b"], 32, template="chat")
    with pytest.raises(TypeError, match="tokenizer"):
        encode_pair_texts(None, ["a"], ["b"], 32)
    with pytest.raises(ValueError, match="missing column 'rejected'"):
        tokenize_pairs(datasets.Dataset.from_list([{"prompt": "a", "chosen": "b"}]), tok, 32)
    with pytest.raises(ValueError, match="empty text in column 'chosen' at row 0"):
        tokenize_pairs([{"prompt": "a", "chosen": "", "rejected": "c"}], tok, 32)
    with pytest.raises(ValueError, match="empty"):
        tokenize_pairs([], tok, 32)
    with pytest.raises(TypeError, match="datasets.Dataset"):
        tokenize_pairs({"prompt": ["a"]}, tok, 32)


# ---------------------------------------------------------------- length-sorted forward chunks
@pytest.mark.parametrize("side", ["right", "left"])
def test_length_sorted_chunks_cover_the_batch_and_trim_each_chunk(tok, side):
    seqs = [[101] + [1000 + i] * n + [102] for i, n in enumerate([3, 20, 7, 1, 15, 9, 2])]
    types = [[0] * len(s) for s in seqs]
    batch = pad_batch(tok, seqs, types, padding_side=side)
    chunks = length_sorted_chunks(batch, 3, padding_side=side)
    rows = torch.cat([r for r, _ in chunks])
    assert sorted(rows.tolist()) == list(range(len(seqs)))  # every row once
    assert [len(r) for r, _ in chunks] == [3, 3, 1]
    assert rows.tolist() == [1, 4, 5, 2, 0, 6, 3]  # longest first
    for r, sub in chunks:
        assert set(sub) == {"input_ids", "attention_mask", "token_type_ids"}
        width = max(len(seqs[i]) for i in r.tolist())
        assert sub["input_ids"].shape == (len(r), width)  # trimmed to its own longest row
        for k, i in enumerate(r.tolist()):  # each row keeps exactly its tokens, on its side
            real = sub["input_ids"][k][sub["attention_mask"][k].bool()].tolist()
            assert real == seqs[i]
    padded = sum(len(r) * sub["input_ids"].shape[1] for r, sub in chunks)
    assert padded < batch["input_ids"].numel()  # the point: fewer padded positions


def test_length_sorted_chunks_bad_inputs(tok):
    batch = pad_batch(tok, [[101, 7, 102], [101, 102]])
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        length_sorted_chunks(batch, 0)
    with pytest.raises(ValueError, match="padding_side"):
        length_sorted_chunks(batch, 2, padding_side="middle")
    with pytest.raises(ValueError, match="pop per-pair columns such as 'margin'"):
        length_sorted_chunks({**batch, "margin": torch.zeros(1)}, 2)
    with pytest.raises(ValueError, match="no 'attention_mask'"):
        length_sorted_chunks({"input_ids": batch["input_ids"]}, 2)


def test_collator_refuses_token_ids_that_a_csv_round_trip_turned_into_text(tok):
    rows, _ = tokenize_pairs([{"prompt": "Hi?", "chosen": "Hello.", "rejected": "Go away."}], tok, 32)
    row = dict(rows[0])
    good = PairCollator(tok)([row])
    row_np = {k: (np.asarray(v) if k.endswith("_ids") else v) for k, v in row.items()}
    assert torch.equal(PairCollator(tok)([row_np])["input_ids"], good["input_ids"])  # arrays are fine
    row["chosen_input_ids"] = str(row["chosen_input_ids"])  # what pandas.read_csv gives back
    with pytest.raises(TypeError, match="row 0: 'chosen_input_ids' is text.*CSV round trip"):
        PairCollator(tok)([row])
    row["chosen_input_ids"] = [101.5, 102]
    with pytest.raises(TypeError, match="token ids are whole numbers"):
        PairCollator(tok)([row])
