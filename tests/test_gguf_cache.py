"""The GGUF file converted once into a transformers folder: same tensors, same tokenizer, atomic."""
from __future__ import annotations

import collections
import os
from pathlib import Path

import pytest
import torch

from rmcourse import gguf_cache, models


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch):
    """A tiny stand-in GGUF file and a stand-in converter that writes the needed files."""
    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path / "artifacts"))
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tiny.gguf").write_bytes(b"not really gguf")
    calls = []

    def fake_convert(folder_, gguf_file, out, sha):
        calls.append(gguf_file)
        for name in gguf_cache._NEEDED:
            (Path(out) / name).write_text(sha)

    monkeypatch.setattr(gguf_cache, "_convert", fake_convert)
    return folder, calls


def test_converted_once_then_reused(fake_gguf):
    folder, calls = fake_gguf
    first = gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    again = gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    assert first == again and calls == ["tiny.gguf"]
    assert first.name.startswith("tiny-" + models.file_sha256(folder / "tiny.gguf")[:16])
    # no temporary folder is left beside it
    assert [p.name for p in first.parent.iterdir()] == [first.name]


def test_a_changed_file_gets_its_own_folder(fake_gguf):
    folder, calls = fake_gguf
    first = gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    (folder / "tiny.gguf").write_bytes(b"another file under the same name")
    second = gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    assert second != first and len(calls) == 2


def test_a_folder_that_lost_a_file_is_made_again(fake_gguf):
    folder, calls = fake_gguf
    made = gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    (made / gguf_cache.WEIGHTS_FILE).unlink()
    assert gguf_cache.converted_gguf_folder(folder, "tiny.gguf") == made
    assert len(calls) == 2 and (made / gguf_cache.WEIGHTS_FILE).is_file()


def test_an_interrupted_conversion_leaves_nothing(fake_gguf, monkeypatch):
    folder, _ = fake_gguf

    def dies_halfway(folder_, gguf_file, out, sha):
        (Path(out) / gguf_cache.WEIGHTS_FILE).write_text("half")
        raise KeyboardInterrupt

    monkeypatch.setattr(gguf_cache, "_convert", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    base = Path(os.environ["RMCOURSE_ARTIFACTS"]).joinpath(*gguf_cache.CACHE_PARTS)
    assert list(base.iterdir()) == []


def test_an_unwritable_cache_names_the_way_out(fake_gguf, monkeypatch):
    folder, _ = fake_gguf

    def disk_full(folder_, gguf_file, out, sha):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(gguf_cache, "_convert", disk_full)
    with pytest.raises(OSError, match="RMCOURSE_ARTIFACTS"):
        gguf_cache.converted_gguf_folder(folder, "tiny.gguf")


def test_a_full_disk_is_refused_before_writing(fake_gguf, monkeypatch):
    folder, calls = fake_gguf
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(gguf_cache.shutil, "disk_usage", lambda p: usage(1 << 40, 1 << 40, 10 << 20))
    with pytest.raises(OSError, match="MiB are free"):
        gguf_cache.converted_gguf_folder(folder, "tiny.gguf")
    assert calls == []


def test_a_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file"):
        gguf_cache.converted_gguf_folder(tmp_path, "absent.gguf")


def test_the_converted_smollm2_equals_the_gguf_file(tmp_path, monkeypatch):
    """Bit-identical weights for both model classes (the seeded reward head included) and the
    same tokenizer, against a load straight from the GGUF file."""
    from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                              AutoTokenizer)

    monkeypatch.setenv("RMCOURSE_ARTIFACTS", str(tmp_path))
    folder, gguf_file = models.bundled_model_path("smollm2")

    def reward_model(source, **kw):
        config = models.gguf_config(folder, gguf_file)
        config.num_labels, config.pad_token_id = 1, 0
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(3)
            return AutoModelForSequenceClassification.from_pretrained(
                source, config=config, dtype=torch.float32, **kw)

    with models.quiet_transformers(), models._gguf_parsed_once():  # one parse for the whole test
        converted = gguf_cache.converted_gguf_folder(folder, gguf_file)
        pairs = [
            (AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file, dtype=torch.float32,
                                                  config=models.gguf_config(folder, gguf_file)),
             AutoModelForCausalLM.from_pretrained(converted, dtype=torch.float32,
                                                  config=models.gguf_config(folder, gguf_file))),
            (reward_model(folder, gguf_file=gguf_file), reward_model(converted)),
        ]
        direct_tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    cached_tok = AutoTokenizer.from_pretrained(converted)
    for direct, cached in pairs:
        a, b = direct.state_dict(), cached.state_dict()
        assert a.keys() == b.keys()
        assert [k for k in a if not torch.equal(a[k], b[k])] == []
    texts = ["Hello world!", "  two spaces\tand a tab\n", "中文 émoji 🙂 <|im_end|> x",
             "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>"]
    for text in texts:
        ids = direct_tok(text)["input_ids"]
        assert cached_tok(text)["input_ids"] == ids
        assert cached_tok.decode(ids) == direct_tok.decode(ids)
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    assert (cached_tok.apply_chat_template(chat, tokenize=False)
            == direct_tok.apply_chat_template(chat, tokenize=False))
    assert cached_tok.special_tokens_map == direct_tok.special_tokens_map
    assert len(cached_tok) == len(direct_tok)
