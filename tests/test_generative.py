"""rmcourse.generative: next-token log-probs with a shared prefix, greedy generation, the cache.

Most tests use a tiny random Llama with SmolLM2's tokenizer (fast, same code paths); one test
loads the real bundled SmolLM2.
"""
import json

import pytest
import torch

from _tiny_causal_lm import make_tiny_lm

from rmcourse import generative
from rmcourse.generative import (
    CausalLM,
    cached_call,
    common_prefix_length,
    generate,
    load_causal_lm,
    next_token_logprobs,
    single_token_id,
    two_way_share,
    yes_probability,
)


@pytest.fixture(scope="module")
def tiny(one_thread):
    return make_tiny_lm()


@pytest.fixture(autouse=True)
def private_artifacts(tmp_path, monkeypatch):
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path / "artifacts"))


def full_forward_logprobs(lm, text, ids):
    enc = lm.tokenizer(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        logits = lm.model(**enc).logits[0, -1]
    return torch.log_softmax(logits.float(), -1)[ids]


TEXTS = [
    "Judge the answer with the rubric below and give a score from zero to five points. Q: 2+2? A: 4",
    "Judge the answer with the rubric below and give a score from zero to five points. Q: capital of France? A: Lyon, I think.",
    "Judge the answer with the rubric below and give a score from zero to five points. Q: hi",
]


def test_shared_prefix_and_left_padding_give_each_text_its_own_forward(tiny):
    cands = ["0", "1", "2", "3", "4", "5"]
    ids = [single_token_id(tiny, c) for c in cands]
    prefix, rows = generative._encode(tiny, TEXTS)
    assert len(prefix) >= generative._MIN_SHARED_PREFIX and len({len(r) for r in rows}) == 3
    got = next_token_logprobs(tiny, TEXTS, cands, batch_size=2, cache=False)
    for i, text in enumerate(TEXTS):
        assert torch.allclose(got[i], full_forward_logprobs(tiny, text, ids), atol=1e-4)
    assert bool((got <= 0).all()) and got.shape == (3, 6)


def test_no_shared_prefix_works_too(tiny):
    texts = ["Apples are red.", "Why is the sky blue? Explain it to me please."]
    ids = [single_token_id(tiny, "Yes")]
    got = next_token_logprobs(tiny, texts, ["Yes"], cache=False)
    for i, text in enumerate(texts):
        assert torch.allclose(got[i], full_forward_logprobs(tiny, text, ids), atol=1e-4)


def test_identical_texts_still_have_a_token_to_read(tiny):
    got = next_token_logprobs(tiny, [TEXTS[0], TEXTS[0]], ["A", "B"], cache=False)
    assert torch.allclose(got[0], got[1])


def test_generate_matches_transformers_greedy(tiny):
    ours = generate(tiny, TEXTS, max_new_tokens=6, batch_size=2, cache=False)
    for text, out in zip(TEXTS, ours):
        enc = tiny.tokenizer(text, return_tensors="pt", add_special_tokens=False)
        ref = tiny.model.generate(**enc, max_new_tokens=6, do_sample=False,
                                  pad_token_id=tiny.tokenizer.pad_token_id)
        want = tiny.tokenizer.decode(ref[0, enc.input_ids.shape[1]:], skip_special_tokens=True).strip()
        assert out == want


def test_results_are_cached_by_every_setting(tiny, monkeypatch):
    calls = []
    real = generative._next_token_logprobs

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(generative, "_next_token_logprobs", counting)
    a = next_token_logprobs(tiny, TEXTS, ["A", "B"])
    b = next_token_logprobs(tiny, TEXTS, ["A", "B"])
    assert torch.equal(a, b) and len(calls) == 1
    next_token_logprobs(tiny, TEXTS, ["B", "A"])
    next_token_logprobs(tiny, TEXTS[:2], ["A", "B"])
    assert len(calls) == 3


def test_cached_call_recomputes_a_damaged_file(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return [1, 2, 3]

    assert cached_call("unit", {"k": 1}, compute) == [1, 2, 3]
    files = list((tmp_path / "artifacts" / generative.CACHE_FOLDER).glob("unit-*.json"))
    assert len(files) == 1 and json.loads(files[0].read_text())["value"] == [1, 2, 3]
    files[0].write_text("{not json")
    assert cached_call("unit", {"k": 1}, compute) == [1, 2, 3] and len(calls) == 2
    assert cached_call("unit", {"k": 1}, compute) == [1, 2, 3] and len(calls) == 2
    with pytest.raises(ValueError, match="namespace"):
        cached_call("bad name", {}, compute)
    with pytest.raises(TypeError, match="key must be a dict"):
        cached_call("unit", ["k"], compute)


def test_common_prefix_length():
    assert common_prefix_length([[1, 2, 3], [1, 2, 4], [1, 2]]) == 2
    assert common_prefix_length([[5], [6]]) == 0
    assert common_prefix_length([]) == 0


def test_yes_probability_is_the_normalised_share():
    lp_yes = torch.log(torch.tensor([0.3, 0.01, 1e-30]))
    lp_no = torch.log(torch.tensor([0.1, 0.03, 1e-30]))
    p = yes_probability(lp_yes, lp_no)
    assert torch.allclose(p, torch.tensor([0.75, 0.25, 0.5]), atol=1e-5)
    with pytest.raises(ValueError, match="<= 0"):
        yes_probability(torch.tensor([0.3]), torch.tensor([0.1]))  # probabilities, not logs
    with pytest.raises(ValueError, match="shape"):
        yes_probability(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        yes_probability(torch.tensor([float("nan")]), torch.tensor([-1.0]))
    # the same share under the name a pairwise judge's "A" vs "B" reads better with
    assert torch.equal(two_way_share(lp_yes, lp_no), p)
    with pytest.raises(ValueError, match="logp_first"):
        two_way_share(torch.zeros(2), torch.zeros(3))


def test_bad_inputs_name_the_problem(tiny):
    with pytest.raises(TypeError, match="single string"):
        next_token_logprobs(tiny, "one text", ["A"])
    with pytest.raises(ValueError, match="empty"):
        next_token_logprobs(tiny, [], ["A"])
    with pytest.raises(ValueError, match=r"empty text in texts\[1\]"):
        next_token_logprobs(tiny, ["ok", "  "], ["A"])
    with pytest.raises(ValueError, match="not one"):
        next_token_logprobs(tiny, ["ok"], ["Yes please"])
    with pytest.raises(ValueError, match="repeat"):
        next_token_logprobs(tiny, ["ok"], ["A", "A"])
    with pytest.raises(ValueError, match="batch_size"):
        next_token_logprobs(tiny, ["ok"], ["A"], batch_size=0)
    with pytest.raises(TypeError, match="CausalLM"):
        next_token_logprobs(object(), ["ok"], ["A"])
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(tiny, ["ok"], max_new_tokens=0)
    with pytest.raises(ValueError, match="non-empty"):
        tiny.chat("   ")
    with pytest.raises(ValueError, match="not a bundled decoder"):
        load_causal_lm("minilm")


def test_chat_puts_the_prefix_in_the_assistants_mouth(tiny):
    text = tiny.chat("Rate it.", "Score: ")
    assert text.endswith("<|im_start|>assistant\nScore: ") and "<|im_start|>user\nRate it.<|im_end|>" in text


def test_real_smollm2_is_loaded_once_as_a_causal_lm():
    lm = load_causal_lm("smollm2", device="cpu")
    assert type(lm.model).__name__ == "LlamaForCausalLM"
    assert lm.tokenizer.pad_token_id != lm.tokenizer.eos_token_id
    assert len(lm.sha256) == 64
    assert load_causal_lm("smollm2", device="cpu") is lm
    # another bf16 setting gets its own CausalLM on the same weights and leaves `lm` as it was
    other = load_causal_lm("smollm2", device="cpu", bf16=not lm.bf16)
    assert other is not lm and other.bf16 == (not lm.bf16) and other.model is lm.model
    assert lm.settings()["bf16"] != other.settings()["bf16"]
    assert load_causal_lm("smollm2", device="cpu", bf16=lm.bf16) is lm
    assert load_causal_lm("smollm2", device="cpu", bf16=other.bf16) is other
    lp = next_token_logprobs(lm, [lm.chat("Reply with Yes or No: is water wet?")], ["Yes", "No"], cache=False)
    assert lp.shape == (1, 2) and float(lp.exp().sum()) > 0.5  # an instruct model answers Yes/No here
